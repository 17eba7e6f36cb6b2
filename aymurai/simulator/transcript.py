"""Transcript state of one simulated session: recognized windows → lines and buffers.

Pure (no I/O, no asyncio, no wire format): ``protocol.py`` renders this state into JSON per profile.

Model, close to what WhisperLiveKit's ASR policy and line builder do with a stub ASR:

* Every recognized word is a token spanning its 0.5 s window on the audio clock.
* The newest word is the unstable hypothesis (``buffer_transcription``); every older word is
  committed. With diarization, the newest *committed* word is not yet given a speaker
  (``buffer_diarization``); older ones are attributed and appear in lines.
* A run of silent windows is a pause. A pause of at least ``pause_seconds`` that speech has ended
  becomes a silence line (speaker -2, text ""), splits the speech line, and (with diarization)
  hands the turn to the other speaker (1 ↔ 2). Shorter pauses do nothing visible.
* ``show_ongoing_pause`` (0.2.17) also shows a pause still in progress as a trailing silence line
  once it is long enough; newer servers show only finished pauses.
* ``finish()`` is the end-of-stream flush (0.2.19+): everything is committed and attributed, and a
  long trailing pause becomes a silence line. 0.2.17 never calls it, leaving its buffers in place.
* ``punctuation_in_pauses`` models Whisper's hallucinations in pauses: each finished silence line is
  followed by a speech line whose text is only punctuation (``HALLUCINATED_TEXT``), over the pause.
"""

from __future__ import annotations

from dataclasses import dataclass

SILENCE_SPEAKER = -2
HALLUCINATED_TEXT = " . . . ."


@dataclass(frozen=True)
class Word:
    """One recognized word on the audio clock (seconds from the start of the stream)."""

    text: str
    start: float
    end: float
    turn: int


@dataclass(frozen=True)
class Pause:
    """A pause long enough to show as a silence line."""

    start: float
    end: float


@dataclass(frozen=True)
class Line:
    """A rendered line: ``speaker`` is 1..n, or ``SILENCE_SPEAKER`` for a pause."""

    speaker: int
    text: str
    start: float
    end: float


class Transcript:
    """Accumulates windows in order and answers what a snapshot should show."""

    def __init__(
        self,
        *,
        pause_seconds: float,
        diarization: bool,
        show_ongoing_pause: bool,
        punctuation_in_pauses: bool = False,
    ) -> None:
        self.pause_seconds = pause_seconds
        self.punctuation_in_pauses = punctuation_in_pauses
        self.diarization = diarization
        self.show_ongoing_pause = show_ongoing_pause
        self.words: list[Word] = []
        self.pauses: list[Pause] = []
        self.processed_end = 0.0
        self.finished = False
        self._pause_start: float | None = None
        self._turn = 0

    def add_window(self, word: str | None, start: float, end: float) -> None:
        """Record one processed window: a word, or silence when ``word`` is None."""
        self.processed_end = end
        if word is None:
            if self._pause_start is None:
                self._pause_start = start
            return
        if self._pause_start is not None:
            self._close_pause(start)
        self.words.append(Word(f" {word}", start, end, self._turn))

    def finish(self) -> None:
        """End-of-stream flush: commit and attribute everything, close a trailing long pause."""
        if self._pause_start is not None:
            self._close_pause(self.processed_end)
        self.finished = True

    @property
    def committed_count(self) -> int:
        return len(self.words) if self.finished else max(0, len(self.words) - 1)

    @property
    def attributed_count(self) -> int:
        if self.finished or not self.diarization:
            return self.committed_count
        return max(0, self.committed_count - 1)

    @property
    def buffer_transcription(self) -> str:
        return "".join(w.text for w in self.words[self.committed_count :])

    @property
    def buffer_diarization(self) -> str:
        return "".join(w.text for w in self.words[self.attributed_count : self.committed_count])

    @property
    def committed_end(self) -> float:
        """Audio-clock end of what is committed (words and finished pauses), 0 when nothing is."""
        ends = [p.end for p in self.pauses]
        if self.committed_count:
            ends.append(self.words[self.committed_count - 1].end)
        return max(ends, default=0.0)

    @property
    def attributed_end(self) -> float:
        if not self.attributed_count:
            return 0.0
        return self.words[self.attributed_count - 1].end

    def lines(self) -> list[Line]:
        """Lines in time order: attributed words grouped by turn, silence lines between them."""
        items: list[Word | Pause] = [*self.words[: self.attributed_count], *self.pauses]
        ongoing = self._ongoing_pause()
        if ongoing is not None:
            items.append(ongoing)
        items.sort(key=lambda item: item.start)
        lines: list[Line] = []
        current: list[Word] = []
        for item in items:
            if isinstance(item, Pause):
                self._flush_words(current, lines)
                current = []
                lines.append(Line(SILENCE_SPEAKER, "", item.start, item.end))
                if self.punctuation_in_pauses and item in self.pauses:
                    speaker = self.speaker_of(self._turn_after(item))
                    lines.append(Line(speaker, HALLUCINATED_TEXT, item.start, item.end))
            else:
                if current and current[-1].turn != item.turn:
                    self._flush_words(current, lines)
                    current = []
                current.append(item)
        self._flush_words(current, lines)
        return lines

    def speaker_of(self, turn: int) -> int:
        return turn % 2 + 1 if self.diarization else 1

    def _flush_words(self, words: list[Word], lines: list[Line]) -> None:
        if words:
            text = "".join(w.text for w in words)
            lines.append(Line(self.speaker_of(words[0].turn), text, words[0].start, words[-1].end))

    def _turn_after(self, pause: Pause) -> int:
        return next((w.turn for w in self.words if w.start >= pause.end), self._turn)

    def _ongoing_pause(self) -> Pause | None:
        if not self.show_ongoing_pause or self.finished or self._pause_start is None:
            return None
        if self.processed_end - self._pause_start < self.pause_seconds:
            return None
        return Pause(self._pause_start, self.processed_end)

    def _close_pause(self, end: float) -> None:
        start = self._pause_start
        self._pause_start = None
        if start is None or end - start < self.pause_seconds:
            return
        self.pauses.append(Pause(start, end))
        # A leading pause has no speaker to hand over from, so the first speaker stays 1.
        if self.words:
            self._turn += 1
