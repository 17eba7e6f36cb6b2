"""The pure renderers, checked with the `srt` and `webvtt-py` parsers."""

from __future__ import annotations

import io
import json
import uuid

import pytest
import srt  # type: ignore[import-untyped]
import webvtt

from aymurai.transcription.formats import (
    format_clock,
    format_srt_time,
    format_vtt_time,
    is_diarized,
    plain_text,
    render,
    render_json,
    render_srt,
    render_txt,
    render_vtt,
)
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

DOC_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def make_paragraph(
    index: int,
    start: float,
    end: float,
    text: str,
    *,
    speaker_no: int = 1,
    speaker_name: str | None = None,
) -> ASRParagraph:
    return ASRParagraph(
        paragraph_id=f"p{index}",
        speaker_no=speaker_no,
        speaker_id=f"speaker-{speaker_no}",
        speaker_name=speaker_name,
        start=start,
        end=end,
        text=text,
        language="es",
    )


def make_document(*paragraphs: ASRParagraph) -> ASRDocument:
    end = max((p.end for p in paragraphs), default=0.0)
    return ASRDocument(
        document_id=DOC_ID, document=list(paragraphs), current_time=end, total_time=end
    )


SAMPLE = make_document(
    make_paragraph(0, 0.0, 2.5, "f440 f440"),
    make_paragraph(1, 2.5, 61.25, "f880", speaker_no=2),
    make_paragraph(2, 3600.0, 3725.125, "f1000 f440", speaker_name="Jueza Pérez"),
    make_paragraph(3, 36000.5, 36001.0, "  after   ten\nhours ", speaker_no=3),
)


def test_format_clock_hours_beyond_one_day() -> None:
    """Clock times keep counting hours past 24 and floor to whole seconds."""
    assert format_clock(0) == "00:00:00"
    assert format_clock(3725.9) == "01:02:05"
    assert format_clock(30 * 3600) == "30:00:00"
    assert format_clock(-1.0) == "00:00:00"


def test_format_subtitle_times_round_to_milliseconds() -> None:
    """SRT uses a comma, WebVTT a dot, both rounded to the millisecond."""
    assert format_srt_time(3725.1236) == "01:02:05,124"
    assert format_vtt_time(3725.1236) == "01:02:05.124"
    assert format_vtt_time(59.9996) == "00:01:00.000"


def test_render_txt_one_line_per_paragraph_with_speaker() -> None:
    """Plain text is `[HH:MM:SS] Speaker N: text`, with the speaker's name when set."""
    assert render_txt(SAMPLE).splitlines() == [
        "[00:00:00] Speaker 1: f440 f440",
        "[00:00:02] Speaker 2: f880",
        "[01:00:00] Jueza Pérez: f1000 f440",
        "[10:00:00] Speaker 3: after ten hours",
    ]


def test_render_json_round_trips_the_document() -> None:
    """JSON output parses back into the same ASRDocument."""
    text = render_json(SAMPLE)
    assert ASRDocument.model_validate_json(text) == SAMPLE
    assert json.loads(text)["document_id"] == str(DOC_ID)


def test_render_srt_parses_with_srt() -> None:
    """SRT output is valid for the `srt` parser, cue times and texts intact."""
    subtitles = list(srt.parse(render_srt(SAMPLE)))
    assert [s.index for s in subtitles] == [1, 2, 3, 4]
    assert [s.content for s in subtitles] == [
        "Speaker 1: f440 f440",
        "Speaker 2: f880",
        "Jueza Pérez: f1000 f440",
        "Speaker 3: after ten hours",
    ]
    assert subtitles[2].start.total_seconds() == 3600.0
    assert subtitles[2].end.total_seconds() == 3725.125
    assert subtitles[3].start.total_seconds() == 36000.5


def test_render_vtt_parses_with_webvtt() -> None:
    """WebVTT output is valid for webvtt-py, hours beyond one included."""
    captions = webvtt.from_string(render_vtt(SAMPLE)).captions
    assert [(c.start, c.end) for c in captions] == [
        ("00:00:00.000", "00:00:02.500"),
        ("00:00:02.500", "00:01:01.250"),
        ("01:00:00.000", "01:02:05.125"),
        ("10:00:00.500", "10:00:01.000"),
    ]
    assert captions[2].text == "Jueza Pérez: f1000 f440"


def test_render_vtt_escapes_markup_and_arrows() -> None:
    """Cue text cannot break the cue: `<`, `&` and `-->` are escaped."""
    document = make_document(make_paragraph(0, 0, 1, "a --> b <i> & c"))
    text = render_vtt(document)
    assert "a --&gt; b &lt;i&gt; &amp; c" in text
    (caption,) = webvtt.from_string(text).captions
    assert caption.end == "00:00:01.000"


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt"])
def test_render_empty_document_is_valid(fmt: str) -> None:
    """A document with no paragraphs renders to a valid, empty file."""
    text = render(make_document(), fmt)  # type: ignore[arg-type]
    if fmt == "srt":
        assert list(srt.parse(text)) == []
    elif fmt == "vtt":
        assert webvtt.from_buffer(io.StringIO(text)).captions == []
    else:
        assert text == ""


def test_render_subtitles_skip_empty_text_and_fix_bad_times() -> None:
    """Empty paragraphs get no cue; an end before the start is clamped to the start."""
    document = make_document(
        make_paragraph(0, 1.0, 2.0, "   "),
        make_paragraph(1, 5.0, 4.0, "f440"),
        make_paragraph(2, -0.5, 0.5, "f880"),
    )
    subtitles = list(srt.parse(render_srt(document)))
    assert [(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles] == [
        (5.0, 5.0),
        (0.0, 0.5),
    ]
    captions = webvtt.from_string(render_vtt(document)).captions
    assert [c.start for c in captions] == ["00:00:05.000", "00:00:00.000"]


def test_render_blank_speaker_name_falls_back_to_number() -> None:
    """A whitespace-only speaker name is treated as unset."""
    document = make_document(make_paragraph(0, 0, 1, "f440", speaker_no=4, speaker_name=" "))
    assert render_txt(document) == "[00:00:00] Speaker 4: f440\n"


def test_render_subtitles_without_speaker_labels() -> None:
    """label_speakers=False (OpenAI API, undiarized): cues carry the words only."""
    subtitles = list(srt.parse(render_srt(SAMPLE, label_speakers=False)))
    assert [s.content for s in subtitles] == ["f440 f440", "f880", "f1000 f440", "after ten hours"]
    captions = webvtt.from_string(render_vtt(SAMPLE, label_speakers=False)).captions
    assert [c.text for c in captions] == [s.content for s in subtitles]


def test_plain_text_and_is_diarized() -> None:
    """Plain text is every word single-spaced; one unnamed speaker is not diarized."""
    assert plain_text(SAMPLE) == "f440 f440 f880 f1000 f440 after ten hours"
    assert plain_text(make_document()) == ""
    assert is_diarized(SAMPLE)
    assert not is_diarized(
        make_document(make_paragraph(0, 0, 1, "a"), make_paragraph(1, 1, 2, "b"))
    )
    named = make_document(make_paragraph(0, 0, 1, "a", speaker_name="Ana"))
    assert is_diarized(named)
