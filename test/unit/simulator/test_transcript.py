"""Simulator transcript state: commit policy, pauses, speakers and the end-of-stream flush."""

from __future__ import annotations

from aymurai.simulator.transcript import SILENCE_SPEAKER, Line, Transcript


def _feed(transcript: Transcript, windows: str, *, offset: int = 0) -> None:
    """Feed 0.5 s windows from window ``offset`` on: a letter is a word, "." is silence."""
    for i, char in enumerate(windows, start=offset):
        transcript.add_window(None if char == "." else char, i * 0.5, (i + 1) * 0.5)


def _transcript(*, diarization: bool = False, ongoing: bool = False) -> Transcript:
    return Transcript(pause_seconds=2.0, diarization=diarization, show_ongoing_pause=ongoing)


def test_transcript_commits_all_words_but_the_newest() -> None:
    """The newest word is buffered; older words form one line, each with a leading space."""
    transcript = _transcript()
    _feed(transcript, "abc")
    assert transcript.lines() == [Line(1, " a b", 0.0, 1.0)]
    assert transcript.buffer_transcription == " c"
    assert transcript.buffer_diarization == ""


def test_transcript_single_word_is_only_in_the_buffer() -> None:
    """With one word there is no line yet (empty lines are not shown)."""
    transcript = _transcript()
    _feed(transcript, "a")
    assert transcript.lines() == []
    assert transcript.buffer_transcription == " a"


def test_transcript_short_pause_does_not_split_the_line() -> None:
    """A 1.5 s pause is shorter than the 2 s threshold: one line, no silence line."""
    transcript = _transcript()
    _feed(transcript, "ab...cd")
    assert transcript.lines() == [Line(1, " a b c", 0.0, 3.0)]


def test_transcript_long_pause_becomes_a_silence_line_once_finished() -> None:
    """A 2 s pause shows as a speaker -2 line only when speech resumes."""
    transcript = _transcript()
    _feed(transcript, "ab....")
    assert transcript.lines() == [Line(1, " a", 0.0, 0.5)]
    _feed(transcript, "cd", offset=6)
    assert transcript.lines() == [
        Line(1, " a b", 0.0, 1.0),
        Line(SILENCE_SPEAKER, "", 1.0, 3.0),
        Line(1, " c", 3.0, 3.5),
    ]


def test_transcript_ongoing_pause_shows_as_trailing_silence_when_asked() -> None:
    """With show_ongoing_pause (0.2.17) a long pause in progress is a trailing silence line."""
    transcript = _transcript(ongoing=True)
    _feed(transcript, "ab...")
    assert transcript.lines()[-1].speaker == 1
    _feed(transcript, ".", offset=5)
    assert transcript.lines()[-1] == Line(SILENCE_SPEAKER, "", 1.0, 3.0)


def test_transcript_diarization_alternates_speakers_and_holds_one_word_back() -> None:
    """Speakers go 1, 2, 1 at long pauses; the newest committed word is in buffer_diarization."""
    transcript = _transcript(diarization=True)
    _feed(transcript, "ab....cd....ef")
    lines = transcript.lines()
    assert [(line.speaker, line.text) for line in lines] == [
        (1, " a b"),
        (SILENCE_SPEAKER, ""),
        (2, " c d"),
        (SILENCE_SPEAKER, ""),
    ]
    assert transcript.buffer_diarization == " e"
    assert transcript.buffer_transcription == " f"


def test_transcript_leading_pause_keeps_speaker_one() -> None:
    """A pause before any word does not hand the turn over."""
    transcript = _transcript(diarization=True)
    _feed(transcript, "....abc")
    assert [(line.speaker, line.text) for line in transcript.lines()] == [
        (SILENCE_SPEAKER, ""),
        (1, " a"),
    ]


def test_transcript_finish_flushes_buffers_and_trailing_pause() -> None:
    """finish() commits and attributes every word and closes a long trailing pause."""
    transcript = _transcript(diarization=True)
    _feed(transcript, "abc....")
    transcript.finish()
    assert transcript.lines() == [
        Line(1, " a b c", 0.0, 1.5),
        Line(SILENCE_SPEAKER, "", 1.5, 3.5),
    ]
    assert transcript.buffer_transcription == ""
    assert transcript.buffer_diarization == ""


def test_transcript_committed_end_tracks_words_and_pauses() -> None:
    """committed_end is the end of the last committed word or finished pause."""
    transcript = _transcript()
    _feed(transcript, "abc")
    assert transcript.committed_end == 1.0
    assert transcript.processed_end == 1.5
