"""Wire times: whole milliseconds, never backwards within one stream."""

from __future__ import annotations

from aymurai.transcription.schemas import ASRParagraph
from aymurai.transcription.timeline import StreamTimeline, round_ms


def _paragraph(index: int, start: float, end: float, text: str = "words") -> ASRParagraph:
    return ASRParagraph(paragraph_id=f"p{index}", speaker_no=1, start=start, end=end, text=text)


def test_round_ms_gives_whole_milliseconds() -> None:
    """Float noise from WLK's sums becomes an exact millisecond value."""
    for value in (66.69999999999999, 78.3888125, 0.1 + 0.2, 1e-9, 12.0):
        rounded = round_ms(value)
        assert round(rounded, 3) == rounded
        assert abs(rounded - value) <= 0.0005


def test_stream_timeline_end_never_goes_back_when_words_commit() -> None:
    """A tail-only paragraph ending at current_time keeps that end once WLK commits it earlier."""
    timeline = StreamTimeline()
    [first] = timeline.apply([_paragraph(0, 0.0, 1.3)])  # tail only: end = current_time
    [second] = timeline.apply([_paragraph(0, 0.0, 1.1)])  # committed: WLK's own end
    assert (first.end, second.end) == (1.3, 1.3)


def test_stream_timeline_start_never_goes_back() -> None:
    """A line that WLK re-times to start inside the pause keeps its published start."""
    timeline = StreamTimeline()
    timeline.apply([_paragraph(0, 0.0, 2.0), _paragraph(1, 8.0, 9.0)])
    [_, later] = timeline.apply([_paragraph(0, 0.0, 2.0), _paragraph(1, 6.5, 9.5)])
    assert (later.start, later.end) == (8.0, 9.5)


def test_stream_timeline_end_is_at_least_start() -> None:
    """Clamping the start up never leaves a paragraph ending before it starts."""
    timeline = StreamTimeline()
    timeline.apply([_paragraph(0, 5.0, 6.0)])
    [paragraph] = timeline.apply([_paragraph(0, 4.0, 4.5)])
    assert (paragraph.start, paragraph.end) == (5.0, 6.0)


def test_stream_timeline_rounds_and_keeps_text() -> None:
    """Times are rounded to ms; text and ids pass through untouched."""
    timeline = StreamTimeline()
    [paragraph] = timeline.apply([_paragraph(0, 0.1 + 0.2, 66.69999999999999, " a . b ")])
    assert (paragraph.start, paragraph.end, paragraph.text) == (0.3, 66.7, " a . b ")


def test_stream_timeline_forgets_nothing_across_vanished_paragraphs() -> None:
    """A paragraph that disappears and comes back is still clamped to its earlier times."""
    timeline = StreamTimeline()
    timeline.apply([_paragraph(0, 0.0, 1.0), _paragraph(1, 3.0, 4.0)])
    timeline.apply([_paragraph(0, 0.0, 1.0)])
    [_, back] = timeline.apply([_paragraph(0, 0.0, 1.0), _paragraph(1, 2.5, 3.5)])
    assert (back.start, back.end) == (3.0, 4.0)
