"""Admission control: at most N upstream WLK sessions at once, a bounded FIFO queue behind them.

A WLK server shares one model across sessions and has no limit of its own: measured on a real
deployment, 3 concurrent 15-minute uploads lost one at 91 % and 4 lost all (1011). The limit lives
here. Reservation is synchronous (no await between the capacity check and taking a place), so a
burst of requests can never overfill the queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio

from aymurai.errors import QueueFullError


class Ticket:
    """A place in line; `wait()` until it becomes a session slot, `release()` always."""

    def __init__(self, queue: AdmissionQueue) -> None:
        self._queue = queue
        self._granted = anyio.Event()
        self._released = False
        self.on_position: Callable[[int], None] | None = None

    @property
    def is_granted(self) -> bool:
        return self._granted.is_set()

    def grant(self) -> None:
        self._granted.set()

    async def wait(self, on_position: Callable[[int], None]) -> None:
        """Wait for a slot; `on_position(n)` is called now and whenever the position changes."""
        if self.is_granted:
            return
        self.on_position = on_position
        on_position(self._queue.position_of(self))
        await self._granted.wait()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._queue.release(self)


class AdmissionQueue:
    def __init__(self, *, max_active: int, max_queued: int) -> None:
        self.max_active = max_active
        self.max_queued = max_queued
        self._active = 0
        self._waiting: deque[Ticket] = deque()
        self.closed = False

    @property
    def active(self) -> int:
        return self._active

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def retry_after_seconds(self) -> int:
        return 30

    def reserve(self) -> Ticket:
        """Take a slot at once, or a place at the end of the queue.

        Raises:
            QueueFullError: the queue already holds `max_queued` requests.
        """
        ticket = Ticket(self)
        if self._active < self.max_active and not self._waiting:
            self._active += 1
            ticket.grant()
            return ticket
        if len(self._waiting) >= self.max_queued:
            raise QueueFullError(self.retry_after_seconds())
        self._waiting.append(ticket)
        return ticket

    def position_of(self, ticket: Ticket) -> int:
        return self._waiting.index(ticket) + 1

    def release(self, ticket: Ticket) -> None:
        if ticket.is_granted:
            self._active -= 1
        else:
            self._waiting.remove(ticket)  # left the queue before its turn
        while self._waiting and self._active < self.max_active:
            self._active += 1
            self._waiting.popleft().grant()
        for position, waiting in enumerate(self._waiting, start=1):
            if waiting.on_position is not None:
                waiting.on_position(position)
