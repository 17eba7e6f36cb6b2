"""Building the client's paragraphs from a WLK snapshot."""

from __future__ import annotations

from aymurai.transcription.transcript import build_paragraphs
from aymurai.transcription.wlk_protocol import StatusSnapshot, TranscriptLine


def _snapshot(
    lines: list[TranscriptLine], buffer: str = "", diarization: str = ""
) -> StatusSnapshot:
    return StatusSnapshot(
        status="active_transcription",
        lines=tuple(lines),
        buffer_transcription=buffer,
        buffer_diarization=diarization,
    )


def test_build_paragraphs_skips_silence_and_strips_text() -> None:
    """Silence lines disappear; text is stripped; speaker ids follow speaker numbers."""
    snapshot = _snapshot(
        [
            TranscriptLine(1, " Hello", 0.0, 2.0, "es"),
            TranscriptLine(-2, "", 2.0, 6.0),
            TranscriptLine(2, " Bye ", 6.0, 7.0),
            TranscriptLine(1, "   ", 7.0, 8.0),
        ]
    )
    paragraphs = build_paragraphs(snapshot, tail_end=8.0)
    assert [(p.paragraph_id, p.speaker_no, p.speaker_id, p.text) for p in paragraphs] == [
        ("p0", 1, "speaker-1", "Hello"),
        ("p1", 2, "speaker-2", "Bye"),
    ]
    assert paragraphs[0].language == "es"
    assert paragraphs[0].speaker_name is None


def test_build_paragraphs_tail_joins_the_last_paragraph() -> None:
    """Uncommitted words (diarization buffer, then transcription buffer) extend the last line."""
    snapshot = _snapshot(
        [TranscriptLine(1, " one two", 0.0, 2.0)], buffer=" four", diarization=" three"
    )
    [paragraph] = build_paragraphs(snapshot, tail_end=3.0)
    assert paragraph.text == "one two three four"


def test_build_paragraphs_tail_after_silence_starts_a_paragraph() -> None:
    """After a pause, the tail is a new paragraph starting where the silence ended."""
    snapshot = _snapshot(
        [TranscriptLine(2, " first", 0.0, 1.0), TranscriptLine(-2, "", 1.0, 5.0)], buffer=" later"
    )
    paragraphs = build_paragraphs(snapshot, tail_end=6.5)
    assert [(p.text, p.speaker_no, p.start, p.end) for p in paragraphs] == [
        ("first", 2, 0.0, 1.0),
        ("later", 2, 5.0, 6.5),
    ]


def test_build_paragraphs_tail_only() -> None:
    """Words with no committed line yet still reach the reader."""
    [paragraph] = build_paragraphs(_snapshot([], buffer=" hi"), tail_end=1.0)
    assert (paragraph.text, paragraph.speaker_no, paragraph.start, paragraph.end) == (
        "hi",
        1,
        0.0,
        1.0,
    )


def test_build_paragraphs_nothing_yet() -> None:
    """No snapshot or an empty one gives no paragraphs."""
    assert build_paragraphs(None, tail_end=0.0) == []
    assert build_paragraphs(_snapshot([]), tail_end=0.0) == []


def test_build_paragraphs_tail_extends_the_last_paragraph_end() -> None:
    """Uncommitted words joined to the last paragraph move its end to where WLK has heard."""
    snapshot = _snapshot([TranscriptLine(1, " one two", 0.0, 2.0)], buffer=" three")
    [paragraph] = build_paragraphs(snapshot, tail_end=3.25)
    assert (paragraph.start, paragraph.end) == (0.0, 3.25)
    [committed] = build_paragraphs(snapshot, tail_end=1.5)
    assert committed.end == 2.0  # never shortened by the tail


def test_build_paragraphs_drops_punctuation_only_text() -> None:
    """Lines and tails without a letter or digit (Whisper's '. . . .') are not paragraphs."""
    snapshot = _snapshot(
        [
            TranscriptLine(1, " Hello", 0.0, 2.0),
            TranscriptLine(-2, "", 2.0, 8.0),
            TranscriptLine(1, " . . . .", 2.5, 7.5),
            TranscriptLine(1, " ¿Año 2?", 8.0, 9.0),
        ],
        buffer=" ...",
    )
    paragraphs = build_paragraphs(snapshot, tail_end=10.0)
    assert [(p.paragraph_id, p.text) for p in paragraphs] == [("p0", "Hello"), ("p1", "¿Año 2?")]
    assert paragraphs[-1].end == 9.0


def test_build_paragraphs_punctuation_line_keeps_the_pause_boundary() -> None:
    """A dropped '. . .' line after a pause does not glue the next tail to the text before it."""
    snapshot = _snapshot(
        [
            TranscriptLine(1, " first", 0.0, 1.0),
            TranscriptLine(-2, "", 1.0, 6.0),
            TranscriptLine(1, " . .", 1.5, 5.5),
        ],
        buffer=" later",
    )
    paragraphs = build_paragraphs(snapshot, tail_end=7.0)
    assert [(p.text, p.start, p.end) for p in paragraphs] == [
        ("first", 0.0, 1.0),
        ("later", 6.0, 7.0),
    ]


def test_build_paragraphs_keeps_punctuation_only_when_asked() -> None:
    """TRANSCRIBE_KEEP_PUNCTUATION_ONLY=true keeps the hallucinated lines and tails."""
    snapshot = _snapshot([TranscriptLine(1, " . . .", 0.0, 2.0)], buffer=" …")
    [paragraph] = build_paragraphs(snapshot, tail_end=3.0, keep_punctuation_only=True)
    assert paragraph.text == ". . . …"
