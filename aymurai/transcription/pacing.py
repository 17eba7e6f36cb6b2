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
   VAD calls silence, or a slow batch), we assume it advances at real-time pace from then on, so
   nothing ever deadlocks. A WLK that is truly stuck stops receiving, goes quiet, and the idle
   timeout catches it.
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


def is_quiet(pcm: bytes) -> bool:
    """True when s16le PCM is too quiet to be speech."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return True
    return float(np.sqrt(np.mean(np.square(samples)))) < QUIET_RMS


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
        self.sent_seconds = 0.0

    @property
    def reported_progress_seconds(self) -> float:
        return self._reported_progress

    def progress_estimate(self) -> float:
        """Processed audio we may assume: the reported progress, extrapolated at real-time pace
        once WLK has reported no progress for the grace period."""
        if self._progress_changed_at is None:
            return self._reported_progress
        stalled_for = self._clock() - self._progress_changed_at - self._grace
        return self._reported_progress + max(0.0, stalled_for)

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
            self._reported_progress = processed_seconds
            self._progress_changed_at = self._clock()
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

    def on_sent(self, seconds: float, *, audible: bool = True) -> None:
        if self._progress_changed_at is None:
            self._progress_changed_at = self._clock()
        start = self.sent_seconds
        self.sent_seconds += seconds
        self._unprocessed.append(_SentChunk(start, self.sent_seconds, audible))

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
        needed = max(0.0, position - self._reported_progress)
        ready_at = self._progress_changed_at + self._grace + needed
        return max(0.0, ready_at - self._clock())

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
