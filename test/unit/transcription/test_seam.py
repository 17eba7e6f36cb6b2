"""Seam merge: seek point, ownership by estimated word time, shifting, buffers, repeated resumes."""

from __future__ import annotations

import uuid

import pytest

from aymurai.transcription.pipeline import resume_point_of
from aymurai.transcription.schemas import ASRDocument, ASRParagraph, speaker_id_for
from aymurai.transcription.seam import (
    Seam,
    SeamMerger,
    join_at_seam,
    lines_before,
    lines_from,
    plan_seam,
)
from aymurai.transcription.wlk_protocol import SILENCE_SPEAKER, StatusSnapshot, TranscriptLine


def line(text: str, start: float, end: float, speaker: int = 1) -> TranscriptLine:
    return TranscriptLine(speaker=speaker, text=text, start=start, end=end)


def silence(start: float, end: float) -> TranscriptLine:
    return TranscriptLine(speaker=SILENCE_SPEAKER, text="", start=start, end=end)


def snap(*lines: TranscriptLine, buffer: str = "", diarization: str = "") -> StatusSnapshot:
    return StatusSnapshot(
        status="active_transcription",
        lines=lines,
        buffer_transcription=buffer,
        buffer_diarization=diarization,
    )


def words_of(snapshot: StatusSnapshot | None) -> list[str]:
    assert snapshot is not None
    text = " ".join(item.text for item in snapshot.lines)
    return (text + " " + snapshot.buffer_diarization + snapshot.buffer_transcription).split()


def test_plan_seam_seeks_overlap_before_last_line_end() -> None:
    """Seek = L − overlap, midpoint halfway between seek and L."""
    assert plan_seam(10.0, overlap_seconds=2.0) == Seam(seek_seconds=8.0, midpoint_seconds=9.0)


def test_plan_seam_never_seeks_before_the_start() -> None:
    """A failure before 2 s of lines resumes from 0; the midpoint is halfway to L."""
    assert plan_seam(1.0, overlap_seconds=2.0) == Seam(seek_seconds=0.0, midpoint_seconds=0.5)
    assert plan_seam(0.0, overlap_seconds=2.0) == Seam(seek_seconds=0.0, midpoint_seconds=0.0)


def test_plan_seam_zero_overlap_seeks_at_the_line_end() -> None:
    """With no overlap the new session starts exactly where the lines ended."""
    assert plan_seam(7.5, overlap_seconds=0.0) == Seam(seek_seconds=7.5, midpoint_seconds=7.5)


def test_lines_before_keeps_words_whose_centre_precedes_the_midpoint() -> None:
    """Four words over 0–4 s have centres 0.5, 1.5, 2.5, 3.5: a midpoint of 2.6 keeps three."""
    kept = lines_before([line(" a b c d", 0.0, 4.0)], 2.6)
    assert kept == (line(" a b c", 0.0, 3.0),)


def test_lines_from_keeps_words_at_or_after_the_midpoint() -> None:
    """The new session keeps the words the earlier ones do not, with their estimated start."""
    kept = lines_from([line(" a b c d", 0.0, 4.0)], 2.6)
    assert kept == (line(" d", 3.0, 4.0),)


def test_word_centre_exactly_on_the_midpoint_goes_to_the_new_session() -> None:
    """A centre equal to the midpoint is owned by the new session, never by both or neither."""
    whole = [line(" a b c d", 0.0, 4.0)]
    assert lines_before(whole, 1.5) == (line(" a", 0.0, 1.0),)
    assert lines_from(whole, 1.5) == (line(" b c d", 1.0, 4.0),)


@pytest.mark.parametrize("midpoint", [0.0, 0.3, 1.0, 1.25, 2.0, 2.5, 3.99, 4.0, 9.0])
def test_split_neither_loses_nor_doubles_a_word(midpoint: float) -> None:
    """Before + from always gives back every word exactly once, in order."""
    lines = [line(" one two", 0.0, 1.0), silence(1.0, 2.5), line(" three four five", 2.5, 4.0)]
    before = lines_before(lines, midpoint)
    after = lines_from(lines, midpoint)
    words = " ".join(item.text for item in (*before, *after)).split()
    assert words == ["one", "two", "three", "four", "five"]


def test_repeated_words_are_kept_on_both_sides() -> None:
    """Ownership is by time, not text: "no no no no" across a seam keeps all four."""
    lines = [line(" no no no no", 0.0, 4.0)]
    before = lines_before(lines, 2.0)
    after = lines_from(lines, 2.0)
    assert [item.text for item in before + after] == [" no no", " no no"]


def test_cutting_twice_keeps_estimated_times() -> None:
    """A line cut at one seam and again at a later one gives the same words as one cut."""
    whole = [line(" a b c d e f", 0.0, 6.0)]
    once = lines_before(whole, 3.5)
    assert lines_before(once, 2.2) == lines_before(whole, 2.2)


def test_silence_lines_are_cut_at_the_midpoint() -> None:
    """A pause across the midpoint ends there for earlier sessions and starts there for the new."""
    pause = [silence(2.0, 6.0)]
    assert lines_before(pause, 3.0) == (silence(2.0, 3.0),)
    assert lines_from(pause, 3.0) == (silence(3.0, 6.0),)
    assert lines_before(pause, 1.0) == ()
    assert lines_from(pause, 7.0) == ()


def test_merger_is_the_identity_before_any_resume() -> None:
    """A job that never fails publishes WLK's snapshots untouched."""
    merger = SeamMerger()
    original = snap(line(" a b", 0.0, 1.0), buffer=" c")
    assert merger.merge(original, processed_seconds=1.5) is original
    assert merger.merge(None) is None
    assert merger.offset_seconds == 0.0


def test_merger_resume_seeks_from_the_last_line_not_the_buffers() -> None:
    """L is the end of the last line; buffered words are re-transcribed by the next session."""
    merger = SeamMerger()
    before = snap(line(" a b c d e f g h", 0.0, 4.0), buffer=" i j")
    seam = merger.resume(merger.merge(before), sent_seconds=8.0, overlap_seconds=2.0)
    assert seam == Seam(seek_seconds=2.0, midpoint_seconds=3.0)
    assert merger.offset_seconds == 2.0
    # The new session hears audio from 2 s: "e f" (2–3 s) belong to the earlier session.
    after = snap(line(" e f g h i j", 0.0, 3.0), buffer=" k")
    merged = merger.merge(after, processed_seconds=3.5)
    assert merged is not None
    assert words_of(merged) == list("abcdefghijk")
    # One speaker speaks on across the seam: one line, as one session would have made it.
    assert merged.lines == (line(" a b c d e f g h i j", 0.0, 5.0),)


def test_merger_includes_silence_lines_in_the_resume_point() -> None:
    """A trailing pause counts towards L (silence lines included)."""
    merger = SeamMerger()
    before = snap(line(" a b", 0.0, 1.0), silence(1.0, 5.0))
    seam = merger.resume(before, sent_seconds=6.0, overlap_seconds=2.0)
    assert seam == Seam(seek_seconds=3.0, midpoint_seconds=4.0)


def test_merger_never_resumes_beyond_the_audio_sent() -> None:
    """A line end past the audio the session received (0.2.17 wall-clock pause) is capped."""
    merger = SeamMerger()
    before = snap(line(" a b", 0.0, 1.0), silence(1.0, 50.0))
    seam = merger.resume(before, sent_seconds=6.0, overlap_seconds=2.0)
    assert seam.seek_seconds == 4.0


def test_merger_drops_new_buffer_words_before_the_midpoint() -> None:
    """Buffer words are spread between the session's last line and its progress."""
    merger = SeamMerger()
    merger.resume(snap(line(" a b c d", 0.0, 4.0)), sent_seconds=4.0, overlap_seconds=2.0)
    # Seek 2 s, midpoint 3 s. Nothing in lines yet; buffer "c d" spread over 2–4 s (file time).
    merged = merger.merge(snap(buffer=" c d"), processed_seconds=2.0)
    assert words_of(merged) == ["a", "b", "c", "d"]
    assert merged is not None and merged.buffer_transcription == " d"


def test_merger_handles_a_second_resume() -> None:
    """Two failures: kept words of both earlier sessions stay, nothing is doubled."""
    merger = SeamMerger()
    first = snap(line(" w0 w1 w2 w3 w4 w5 w6 w7 w8 w9", 0.0, 10.0))
    merger.resume(first, sent_seconds=12.0, overlap_seconds=2.0)  # seek 8, midpoint 9
    second = snap(line(" w8 w9 w10 w11 w12 w13", 0.0, 6.0))  # 8–14 s
    merged = merger.merge(second, processed_seconds=6.0)
    merger.resume(merged, sent_seconds=7.0, overlap_seconds=2.0)  # L 14: seek 12, midpoint 13
    assert merger.offset_seconds == 12.0
    third = snap(line(" w12 w13 w14 w15", 0.0, 4.0))  # 12–16 s
    final = merger.merge(third, processed_seconds=4.0)
    assert words_of(final) == [f"w{i}" for i in range(16)]


def test_merger_session_failing_before_any_line_does_not_move_back() -> None:
    """A session that fails at once resumes from what earlier sessions kept, not before."""
    merger = SeamMerger()
    merger.resume(snap(line(" a b c d", 0.0, 4.0)), sent_seconds=4.0, overlap_seconds=2.0)
    kept = merger.merge(None)
    seam = merger.resume(kept, sent_seconds=0.0, overlap_seconds=2.0)
    # Kept lines end at 3 s (the earlier midpoint): the next session seeks 1 s.
    assert seam == Seam(seek_seconds=1.0, midpoint_seconds=2.0)
    after = merger.merge(snap(line(" b c d", 0.0, 3.0)), processed_seconds=3.0)
    assert words_of(after) == ["a", "b", "c", "d"]


def test_merger_keeps_speakers_per_session() -> None:
    """Speaker numbers are not remapped across a seam (they are per session)."""
    merger = SeamMerger()
    merger.resume(
        snap(line(" a b", 0.0, 2.0, speaker=2), line(" c d", 2.0, 4.0, speaker=1)),
        sent_seconds=4.0,
        overlap_seconds=2.0,
    )
    merged = merger.merge(snap(line(" c d e", 0.0, 3.0, speaker=2)), processed_seconds=3.0)
    assert merged is not None
    assert [(item.speaker, item.text) for item in merged.lines] == [
        (2, " a b"),
        (1, " c"),
        (2, " d e"),
    ]


def test_merger_joins_the_line_cut_at_the_seam_with_the_new_sessions_words() -> None:
    """The cut line goes on with the new session's words: its end covers them (issue 10 clamp)."""
    merger = SeamMerger()
    before = snap(line(" a b c d", 0.0, 4.0), silence(4.0, 5.0), line(" e f", 5.0, 7.0))
    merger.resume(before, sent_seconds=7.0, overlap_seconds=2.0)  # seek 5, midpoint 6
    merged = merger.merge(snap(line(" e f g h", 0.0, 4.0)), processed_seconds=4.0)
    assert merged is not None
    assert merged.lines == (
        line(" a b c d", 0.0, 4.0),
        silence(4.0, 5.0),
        line(" e f g h", 5.0, 9.0),
    )
    # A pause or another speaker at the seam still separates the lines.
    assert join_at_seam((line(" a", 0.0, 1.0),), (silence(1.0, 2.0),)) == (
        line(" a", 0.0, 1.0),
        silence(1.0, 2.0),
    )
    assert len(join_at_seam((line(" a", 0.0, 1.0),), (line(" b", 1.0, 2.0, speaker=2),))) == 2


def _paragraph(index: int, start: float, end: float, text: str) -> ASRParagraph:
    return ASRParagraph(
        paragraph_id=f"p{index}",
        speaker_no=1,
        speaker_id=speaker_id_for(1),
        start=start,
        end=end,
        text=text,
    )


def test_a_takeover_resumes_after_the_committed_lines_not_the_tail() -> None:
    """The newest state of a job taken over: its last paragraph (it may hold the tail, words WLK
    had not committed) is heard again; the ones before are kept, and the seek point lies an
    overlap before their end, as after an upstream failure."""
    document = ASRDocument(
        document_id=uuid.uuid4(),
        document=[
            _paragraph(0, 0.0, 6.0, "one two"),
            _paragraph(1, 8.5, 14.5, "three four"),
            _paragraph(2, 17.0, 20.0, "five"),
        ],
        current_time=20.0,
        total_time=34.0,
    )
    point = resume_point_of(document)
    assert point is not None
    assert [line.text for line in point.lines] == ["one two", "three four"]
    assert point.heard_until == 20.0
    merger = SeamMerger()
    seam = merger.resume(
        StatusSnapshot(status="active_transcription", lines=point.lines),
        sent_seconds=point.heard_until,
        overlap_seconds=2.0,
    )
    assert seam.seek_seconds == 12.5
    kept = merger.merge(None)
    assert kept is not None and [line.text for line in kept.lines][0] == "one two"


def test_a_takeover_with_at_most_one_paragraph_starts_over() -> None:
    document = ASRDocument(
        document_id=uuid.uuid4(),
        document=[_paragraph(0, 0.0, 3.0, "one")],
        current_time=3.0,
        total_time=10.0,
    )
    assert resume_point_of(document) is None
