"""Admission control: at most N upstream WLK sessions at once, a bounded FIFO queue behind them.

N is the pool's capacity (`pool.py`): the sum of the session caps of the WLK servers that are up;
it changes as servers go down and come back (`set_max_active`).

A WLK server shares one model across sessions and has no limit of its own: measured on a real
deployment, 3 concurrent 15-minute uploads lost one at 91 % and 4 lost all (1011). The limit lives
here. Reservation is synchronous (no await between the capacity check and taking a place), so a
burst of requests can never overfill the queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio

from aymurai.errors import QueueFullError, ShuttingDownError


class Ticket:
    """A place in line; `wait()` until it becomes a session slot, `release()` always."""

    def __init__(self, queue: AdmissionQueue) -> None:
        self._queue = queue
        self._decided = anyio.Event()
        self._granted = False
        self._released = False
        self._last_position = 0
        self.on_position: Callable[[int], None] | None = None

    @property
    def is_granted(self) -> bool:
        return self._granted

    def grant(self) -> None:
        self._granted = True
        self._decided.set()

    def refuse(self) -> None:
        self._decided.set()

    async def wait(self, on_position: Callable[[int], None]) -> None:
        """Wait for a slot; `on_position(n)` is called now and whenever the position changes.

        Raises:
            ShuttingDownError: the queue was closed before this ticket's turn.
        """
        if not self._decided.is_set():
            self.on_position = on_position
            self.move_to(self._queue.position_of(self))
            await self._decided.wait()
        if not self._granted:
            raise ShuttingDownError()

    def move_to(self, position: int) -> None:
        # Only real changes reach the client: someone leaving behind us does not move us.
        if position != self._last_position and self.on_position is not None:
            self._last_position = position
            self.on_position(position)

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
            ShuttingDownError: the queue is closed.
            QueueFullError: the queue already holds `max_queued` requests.
        """
        if self.closed:
            raise ShuttingDownError()
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
        elif ticket in self._waiting:
            self._waiting.remove(ticket)  # left the queue before its turn
        self._admit_waiting()

    def set_max_active(self, max_active: int) -> None:
        """The upstream capacity changed (a server went down or came back).

        Running jobs keep their slots when it shrinks (they resume elsewhere or wait); waiting
        ones are admitted at once when it grows.
        """
        self.max_active = max_active
        self._admit_waiting()

    def _admit_waiting(self) -> None:
        while self._waiting and self._active < self.max_active:
            self._active += 1
            self._waiting.popleft().grant()
        for position, waiting in enumerate(self._waiting, start=1):
            waiting.move_to(position)

    def close(self) -> None:
        """Shutdown: refuse new reservations and every waiting ticket (their `wait()` raises).

        Queued requests end at once rather than start an upstream session the grace period
        would most likely cut short; admitted ones keep their slots.
        """
        self.closed = True
        waiting, self._waiting = self._waiting, deque()
        for ticket in waiting:
            ticket.refuse()
