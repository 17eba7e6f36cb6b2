"""Append-only committed-text deltas from successive WLK snapshots."""

from __future__ import annotations

import uuid

from aymurai.transcription.formats import plain_text
from aymurai.transcription.schemas import ASRDocument
from aymurai.transcription.text_deltas import CommittedTextDeltas, committed_text
from aymurai.transcription.transcript import build_paragraphs
from aymurai.transcription.wlk_protocol import StatusSnapshot, TranscriptLine


def _snapshot(*texts: str, buffer: str = "", diarization: str = "") -> StatusSnapshot:
    lines = []
    for index, text in enumerate(texts):
        speaker = -2 if text == "<pause>" else 1 + index % 2
        lines.append(TranscriptLine(speaker, "" if speaker == -2 else text, index, index + 1.0))
    return StatusSnapshot(
        status="active_transcription",
        lines=tuple(lines),
        buffer_transcription=buffer,
        buffer_diarization=diarization,
    )


def _final_text(snapshot: StatusSnapshot) -> str:
    paragraphs = build_paragraphs(snapshot, tail_end=10.0)
    return plain_text(ASRDocument(document_id=uuid.uuid4(), document=paragraphs))


def _run(snapshots: list[StatusSnapshot], final: StatusSnapshot) -> tuple[list[str], str, bool]:
    deltas = CommittedTextDeltas()
    sent = [deltas.advance(committed_text(s)) for s in snapshots]
    finish = deltas.finish(_final_text(final))
    return [d for d in [*sent, finish.delta] if d], finish.text, finish.consistent


def test_committed_text_leaves_out_buffers_and_silence() -> None:
    """Only the words of speech lines count, single-spaced; buffers are volatile."""
    snapshot = _snapshot(" Hello  there", "<pause>", " world ", buffer=" maybe", diarization=" x")
    assert committed_text(snapshot) == "Hello there world"
    assert committed_text(None) == ""


def test_deltas_append_with_spaces_between_words() -> None:
    """Deltas carry the separating space, and concatenate to the done text."""
    snapshots = [
        _snapshot(" one", buffer=" two"),
        _snapshot(" one two three"),
        _snapshot(" one two three four", "<pause>", " five six"),
    ]
    sent, text, consistent = _run(snapshots, snapshots[-1])
    assert sent == ["one two", " three four five", " six"]
    assert "".join(sent) == text == "one two three four five six"
    assert consistent


def test_deltas_never_send_the_volatile_buffer() -> None:
    """A hypothesis in the buffer that WLK later replaces never goes out."""
    snapshots = [
        _snapshot(" the cat", buffer=" sat on"),
        _snapshot(" the cat", buffer=" sang"),
        _snapshot(" the cat sang loudly"),
    ]
    sent, text, _ = _run(snapshots, _snapshot(" the cat sang loudly"))
    assert not any("sat" in d or " on" in d for d in sent)
    assert "".join(sent) == text == "the cat sang loudly"


def test_deltas_hold_the_last_committed_word_until_more_follows() -> None:
    """The newest committed word may still be extended (sub-word tokens): it waits."""
    deltas = CommittedTextDeltas()
    assert deltas.advance("Hello wor") == "Hello"
    assert deltas.advance("Hello world") == ""
    assert deltas.advance("Hello world again") == " world"
    finish = deltas.finish("Hello world again.")
    assert (finish.delta, finish.text, finish.consistent) == (" again.", "Hello world again.", True)


def test_deltas_never_emit_words_the_final_text_drops() -> None:
    """Re-split lines are no change; revised committed text is not sent until it settles."""
    snapshots = [
        _snapshot(" a b c"),
        _snapshot(" a", " b c d"),  # diarization moved "b c" to another line: same text
        _snapshot(" a x y z"),  # WLK revised committed text: nothing can be sent
        _snapshot(" a b c d e f"),
    ]
    final = _snapshot(" a b c d e f g")
    sent, text, consistent = _run(snapshots, final)
    final_words = text.split()
    streamed_words = "".join(sent).split()
    assert streamed_words == final_words[: len(streamed_words)]
    assert "x" not in streamed_words
    assert "".join(sent) == text and consistent


def test_deltas_send_the_end_of_stream_commit_last() -> None:
    """0.2.17 leaves the last words in its buffers: the final text's tail is the last delta."""
    snapshots = [_snapshot(" one two three", buffer=" four")]
    final = _snapshot(" one two three", diarization=" four", buffer=" five")
    sent, text, consistent = _run(snapshots, final)
    assert sent == ["one two", " three four five"]
    assert "".join(sent) == text and consistent


def test_deltas_finish_reports_a_final_text_that_drops_sent_words() -> None:
    """A final text that contradicts what was sent is reported, never patched with new words."""
    deltas = CommittedTextDeltas()
    assert deltas.advance("alpha beta gamma") == "alpha beta"
    finish = deltas.finish("alpha gamma")
    assert (finish.delta, finish.text, finish.consistent) == ("", "alpha gamma", False)


def test_deltas_finish_with_nothing_sent_sends_everything() -> None:
    """A short file may go straight to the end: the whole text is one delta."""
    deltas = CommittedTextDeltas()
    assert deltas.advance("") == ""
    assert deltas.advance("single") == ""
    finish = deltas.finish("single")
    assert (finish.delta, finish.consistent) == ("single", True)
    empty = CommittedTextDeltas().finish("")
    assert (empty.delta, empty.text, empty.consistent) == ("", "", True)
