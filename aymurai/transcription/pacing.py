"""Lead pacing: keep the audible audio WLK has not yet processed within a budget.

Why: WLK buffers faster-than-real-time PCM in unbounded queues and transcribes "as fast as it
can"; a large backlog means memory growth on the server and, under load, pongs stuck behind
megabytes of audio (1011 keepalive timeouts). A small lead also keeps WLK's pings answered.

What counts is *audible* audio. WLK's VAD drops pauses before the ASR, so a pause costs the ASR
nothing, and its "processed" clock stops at the pause start until speech resumes (0.2.26 then
sends no message at all). Counting a pause against the budget would stall the sender for as long
as the pause lasts in real time, or, deep into a file fed faster than real time, until WLK's idle
silence trips our idle timeout. So:

1. audible lead = audible seconds sent after WLK's processed position ≤ budget;
2. on 0.2.23+, which reports how much audio it has received, audio in flight (sent − received)
   ≤ budget as well, so pauses stream fast but never flood the socket;
3. when WLK reports no progress for the grace period (audio our level check calls audible but its
   VAD calls silence, or a slow batch), we assume it advances at *its own recent pace* from then
   on, so nothing ever deadlocks. A WLK that is truly stuck stops receiving, goes quiet, and the
   idle timeout catches it.

Why its own pace, not real time (issue 10): a CPU WLK that hallucinates (seconds per decode of
". . . .") falls below real time; assuming real-time pace after the grace pushed the audible lead
to 25–27 s against a 20 s budget, and WLK PR #435 closes sessions whose queue stays full for 30 s.
The pace is the audio WLK processed per wall second between its progress reports, smoothed, at
most 1 (real time) and at least `MIN_PACE` (so a long VAD pause still cannot deadlock). With it,
the extrapolated position stays behind WLK's true position when WLK keeps its pace, so the true
audible lead stays within budget + one chunk. On 0.2.23+ the estimate is also capped at the audio
WLK says it has received: it cannot have processed more.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import numpy as np

# Below -50 dBFS RMS (about ±100 of 32767) a second of audio holds no speech a VAD would pass on.
QUIET_RMS = 32767 * 10 ** (-50 / 20)
# Slowest pace the extrapolation assumes (audio seconds per wall second): never zero, so a WLK that
# stops reporting (a VAD pause over audio our level check calls audible) cannot stall us forever.
MIN_PACE = 0.05
# Weight of the newest pace sample: reacts within two or three reports to a slowdown.
PACE_SMOOTHING = 0.5


def is_quiet(pcm: bytes) -> bool:
    """True when s16le PCM is too quiet to be speech."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return True
    return float(np.sqrt(np.mean(np.square(samples)))) < QUIET_RMS


# Resolution of `sound_span`: fine enough that a tail's end lands within a tenth of a second of
# where the sound stops, coarse enough that a syllable's dip is not a pause.
SOUND_WINDOW_SECONDS = 0.1
_SAMPLE_RATE = 16_000


def sound_span(pcm: bytes) -> tuple[float, float] | None:
    """Offsets (seconds) of the first and last audible windows of s16le PCM; None if all quiet."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return None
    window = round(_SAMPLE_RATE * SOUND_WINDOW_SECONDS)
    starts = np.arange(0, samples.size, window)
    energy = np.add.reduceat(np.square(samples), starts)
    sizes = np.diff(np.append(starts, samples.size))
    loud = np.flatnonzero(np.sqrt(energy / sizes) >= QUIET_RMS)
    if loud.size == 0:
        return None
    first, last = int(loud[0]), int(loud[-1])
    return (
        float(starts[first]) / _SAMPLE_RATE,
        float(starts[last] + sizes[last]) / _SAMPLE_RATE,
    )


@dataclass(frozen=True)
class _SentChunk:
    start: float
    end: float
    audible: bool


class LeadPacer:
    def __init__(
        self,
        *,
        budget_seconds: float,
        initial_grace_seconds: float,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self._budget = budget_seconds
        self._grace = initial_grace_seconds
        self._clock = clock
        self._reported_progress = 0.0
        self._received: float | None = None
        self._progress_changed_at: float | None = None
        self._changed = anyio.Event()
        # Chunks that end after the reported progress; older ones are processed and dropped.
        self._unprocessed: deque[_SentChunk] = deque()
        # Sound in each chunk sent, (start, end), oldest first; those long processed are dropped.
        self._audible_runs: deque[tuple[float, float]] = deque()
        self.sent_seconds = 0.0
        self._pace = 1.0  # until WLK's first progress report
        self._pace_measured = False
        self._pace_anchor: tuple[float, float] | None = None  # (wall time, progress) of last report

    @property
    def reported_progress_seconds(self) -> float:
        return self._reported_progress

    @property
    def pace(self) -> float:
        """WLK's recent pace: audio seconds processed per wall second, in [MIN_PACE, 1]."""
        return self._pace

    def progress_estimate(self) -> float:
        """Processed audio we may assume: the reported progress, extrapolated at WLK's recent pace
        once WLK has reported no progress for the grace period (capped at what WLK received)."""
        if self._progress_changed_at is None:
            return self._reported_progress
        stalled_for = self._clock() - self._progress_changed_at - self._grace
        estimate = self._reported_progress + self._pace * max(0.0, stalled_for)
        if self._received is not None:
            estimate = min(estimate, max(self._reported_progress, self._received))
        return estimate

    def audible_lead_seconds(self, progress: float | None = None) -> float:
        """Audible seconds sent after `progress` (default: the current estimate)."""
        position = self.progress_estimate() if progress is None else progress
        lead = 0.0
        for chunk in reversed(self._unprocessed):
            if chunk.end <= position:
                break
            if chunk.audible:
                lead += chunk.end - max(chunk.start, position)
        return lead

    def on_progress(self, processed_seconds: float, received_seconds: float | None = None) -> None:
        """WLK reported its processed position (and, on 0.2.23+, how much it has received)."""
        changed = False
        if processed_seconds > self._reported_progress:
            now = self._clock()
            self._update_pace(now, processed_seconds)
            self._reported_progress = processed_seconds
            self._progress_changed_at = now
            while self._unprocessed and self._unprocessed[0].end <= processed_seconds:
                self._unprocessed.popleft()
            changed = True
        if received_seconds is not None and (
            self._received is None or received_seconds > self._received
        ):
            self._received = received_seconds
            changed = True
        if changed:
            self._changed.set()
            self._changed = anyio.Event()

    def _update_pace(self, now: float, processed_seconds: float) -> None:
        anchor = self._pace_anchor
        self._pace_anchor = (now, processed_seconds)
        if anchor is None or now <= anchor[0]:
            return
        sample = min(1.0, (processed_seconds - anchor[1]) / (now - anchor[0]))
        if self._pace_measured:
            sample = PACE_SMOOTHING * sample + (1 - PACE_SMOOTHING) * self._pace
        self._pace = max(MIN_PACE, sample)
        self._pace_measured = True

    def on_sent(
        self, seconds: float, *, audible: bool = True, sound: tuple[float, float] | None = None
    ) -> None:
        """Record a chunk sent; `sound` is its `sound_span` (default: all of it when audible)."""
        if self._progress_changed_at is None:
            self._progress_changed_at = self._clock()
        if self._pace_anchor is None:  # WLK's pace is measured from the first audio sent
            self._pace_anchor = (self._clock(), self._reported_progress)
        start = self.sent_seconds
        self.sent_seconds += seconds
        self._unprocessed.append(_SentChunk(start, self.sent_seconds, audible))
        if sound is None and audible:
            sound = (0.0, seconds)
        if sound is not None:
            self._audible_runs.append((start + sound[0], start + sound[1]))

    def audible_until(self, position: float) -> float:
        """End of the audible audio sent before `position` (at most `position`; 0 if none).

        Words WLK has not committed yet lie in audio it has processed *and* heard as sound: while
        it processes a pause, they end where the pause began, not at its processed position.
        """
        # Runs that end before the reported progress are history, but the newest of them is
        # still the answer while WLK is inside the pause that follows it.
        while len(self._audible_runs) > 1 and self._audible_runs[1][1] <= self._reported_progress:
            self._audible_runs.popleft()
        for start, end in reversed(self._audible_runs):
            if start < position:
                return min(end, position)
        return 0.0

    # Each rule lets a chunk through when nothing is outstanding, so a budget smaller than one
    # chunk slows the stream down but never stops it.
    def _in_flight_ok(self, next_seconds: float) -> bool:
        if self._received is None:
            return True
        in_flight = self.sent_seconds - self._received
        return in_flight <= 0 or in_flight + next_seconds <= self._budget

    def _audible_ok(self, next_seconds: float, audible: bool) -> bool:
        if not audible:
            return True
        lead = self.audible_lead_seconds()
        return lead <= 0 or lead + next_seconds <= self._budget

    def _wall_ready_in(self, next_seconds: float) -> float:
        """Seconds until the real-time extrapolation alone would make room for an audible chunk."""
        if self._progress_changed_at is None:
            return math.inf
        # The position after which at most budget − next audible seconds remain.
        allowed = self._budget - next_seconds
        position = self._reported_progress
        for chunk in reversed(self._unprocessed):
            length = chunk.end - max(chunk.start, self._reported_progress)
            if chunk.audible:
                if length >= allowed:
                    position = chunk.end - allowed
                    break
                allowed -= length
        if self._received is not None and position > max(self._reported_progress, self._received):
            return math.inf  # only WLK receiving more can make room: its report wakes us
        needed = max(0.0, position - self._reported_progress)
        ready_at = self._progress_changed_at + self._grace + needed / self._pace
        return max(0.0, ready_at - self._clock())

    def has_room(self, next_chunk_seconds: float, *, audible: bool = True) -> bool:
        """True when sending `next_chunk_seconds` more now keeps both leads within budget."""
        return self._in_flight_ok(next_chunk_seconds) and self._audible_ok(
            next_chunk_seconds, audible
        )

    async def wait_for_room(self, next_chunk_seconds: float, *, audible: bool = True) -> None:
        """Wait until sending `next_chunk_seconds` more keeps both leads within budget."""
        while True:
            in_flight_ok = self._in_flight_ok(next_chunk_seconds)
            if in_flight_ok and self._audible_ok(next_chunk_seconds, audible):
                return
            changed = self._changed
            timeout = math.inf if not in_flight_ok else self._wall_ready_in(next_chunk_seconds)
            with anyio.move_on_after(timeout):
                await changed.wait()
