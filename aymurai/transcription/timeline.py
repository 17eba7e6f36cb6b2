"""Wire times: whole milliseconds that never go backwards within one stream.

Real Whisper moves times around between WLK snapshots: a paragraph made only of not-yet-committed
words ends at the stream's `current_time`, then WLK commits those words with an earlier end (1.30 →
1.10 s); a line after a pause may start inside the pause once committed. Clients draw progress bars
and subtitle cues from these numbers, so within one stream a paragraph's `start` and `end` never
decrease from one event to the next, `done` included (issue 10). And WLK's times are float sums
(`66.69999999999999`), so every time on the wire and in storage is rounded to whole milliseconds.

`StreamTimeline` holds what was last published for each paragraph (by position, `p0`, `p1`, …) and
clamps the next version: start and end at least their previous value, end at least start. We clamp
rather than drop or delay an event because the text is what matters to the reader and it is never
altered here. A paragraph that disappears (WLK merged or dropped it) simply stops being tracked.
"""

from __future__ import annotations

from collections.abc import Sequence

from aymurai.transcription.schemas import ASRParagraph


def round_ms(seconds: float) -> float:
    """`seconds` rounded to whole milliseconds: `round(x, 3) == x` holds for the result."""
    return round(seconds, 3)


class StreamTimeline:
    """Per-stream memory of published paragraph times; see the module docstring."""

    def __init__(self) -> None:
        self._bounds: dict[str, tuple[float, float]] = {}

    def apply(self, paragraphs: Sequence[ASRParagraph]) -> list[ASRParagraph]:
        """Round `paragraphs`' times to ms and clamp them to what this stream published before."""
        result: list[ASRParagraph] = []
        for paragraph in paragraphs:
            start, end = round_ms(paragraph.start), round_ms(paragraph.end)
            previous = self._bounds.get(paragraph.paragraph_id)
            if previous is not None:
                start = max(start, previous[0])
                end = max(end, previous[1])
            end = max(end, start)
            self._bounds[paragraph.paragraph_id] = (start, end)
            if (start, end) != (paragraph.start, paragraph.end):
                paragraph = paragraph.model_copy(update={"start": start, "end": end})
            result.append(paragraph)
        return result
