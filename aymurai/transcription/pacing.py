"""Lead pacing: keep the audio we have sent at most a budget ahead of what WLK has processed.

Why: WLK buffers faster-than-real-time PCM in unbounded queues and transcribes "as fast as it
can"; a large lead means memory growth on the server and, under load, pongs stuck behind megabytes
of audio (1011 keepalive timeouts). A small lead also keeps WLK's pings answered quickly.

The server's progress is what its snapshots tell (see `StatusSnapshot.processed_seconds`). Silence
produces no lines on 0.2.17, so progress can stall while WLK is fine: after an initial grace we
assume it keeps at least real-time pace (wall clock since the first frame minus the grace), so a
long silence never deadlocks the sender.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio


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
        self._first_send_at: float | None = None
        self._reported_progress = 0.0
        self._progress_changed = anyio.Event()
        self.sent_seconds = 0.0

    @property
    def reported_progress_seconds(self) -> float:
        return self._reported_progress

    def progress_estimate(self) -> float:
        """Processed audio we may assume: the reported progress, or real-time pace after grace."""
        if self._first_send_at is None:
            return self._reported_progress
        wall = self._clock() - self._first_send_at - self._grace
        return max(self._reported_progress, wall)

    def lead_seconds(self) -> float:
        return self.sent_seconds - self.progress_estimate()

    def on_progress(self, processed_seconds: float) -> None:
        if processed_seconds > self._reported_progress:
            self._reported_progress = processed_seconds
            self._progress_changed.set()
            self._progress_changed = anyio.Event()

    def on_sent(self, seconds: float) -> None:
        if self._first_send_at is None:
            self._first_send_at = self._clock()
        self.sent_seconds += seconds

    async def wait_for_room(self, next_chunk_seconds: float) -> None:
        """Wait until sending `next_chunk_seconds` more keeps the lead within budget."""
        while True:
            needed_progress = self.sent_seconds + next_chunk_seconds - self._budget
            if self.progress_estimate() >= needed_progress:
                return
            changed = self._progress_changed
            if self._first_send_at is None:
                await changed.wait()
                continue
            # When the wall-clock estimate alone would reach the needed progress.
            wall_ready_at = self._first_send_at + self._grace + needed_progress
            with anyio.move_on_after(max(0.0, wall_ready_at - self._clock())):
                await changed.wait()
