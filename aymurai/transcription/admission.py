"""Admission control: at most N upstream WLK sessions at once, a bounded fair queue behind them.

N is the pool's capacity (`pool.py`): the sum of the session caps of the WLK servers that are up;
it changes as servers go down and come back (`set_max_active`).

A WLK server shares one model across sessions and has no limit of its own: measured on a real
deployment, 3 concurrent 15-minute uploads lost one at 91 % and 4 lost all (1011). The limit lives
here. Reservation is synchronous (no await between the capacity check and taking a place), so a
burst of requests can never overfill the queue.

Fairness (issue 8) is two rules here, both keyed by the API key's name ("" when keys are off, which
makes the queue plain FIFO): a key may hold at most `max_per_key` tickets (granted or waiting,
`KEY_LIMIT`), and the waiting line is served round-robin across keys (`RoundRobinOrder`), so a
key that queued fifty files does not make the next key's one file wait behind all fifty. The order
is its own small class so that how slots are counted (one server or a pool) can change around it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

import anyio

from aymurai.errors import KeyLimitError, QueueFullError, ShuttingDownError


class AdmissionTicket(Protocol):
    """A place in line; `wait()` until it becomes a session slot, `release()` always."""

    key: str

    @property
    def is_granted(self) -> bool: ...

    @property
    def position(self) -> int | None:
        """The last known place in line (1 = next), None once granted."""
        ...

    async def wait(self, on_position: Callable[[int], None]) -> None:
        """Wait for a slot; `on_position(n)` is called now and whenever the position changes.

        Raises:
            ShuttingDownError: the queue was closed before this ticket's turn.
        """
        ...

    async def release(self) -> None:
        """Give the slot (or the place in line) back; idempotent, never raises, not cancellable."""
        ...


class Admission(Protocol):
    """At most `max_active` sessions at once, a bounded fair queue behind them.

    `reserve()` is the one check-and-take step. `active` and `queued` count this process's
    tickets (for its metrics); with a shared implementation the limits are global.
    """

    closed: bool

    @property
    def active(self) -> int: ...

    @property
    def queued(self) -> int: ...

    def held_by_key(self) -> dict[str, int]: ...

    async def reserve(
        self, key: str = "", *, limited: bool = True, ticket_id: str | None = None
    ) -> AdmissionTicket:
        """Take a slot at once, or a place in the queue.

        Args:
            key: the API key's name ("" when keys are off).
            limited: False for jobs re-run after a restart, which were admitted once already.
            ticket_id: the job's id; a shared queue keeps the place a ticket of that id holds
                already (a job taken over from a dead replica keeps its place in line).

        Raises:
            ShuttingDownError: the queue is closed.
            KeyLimitError: `key` holds `max_per_key` tickets already.
            QueueFullError: the queue already holds `max_queued` requests.
            SharedStateUnavailableError: the shared queue cannot be reached.
        """
        ...

    def set_max_active(self, max_active: int) -> None:
        """The upstream capacity changed (a server went down or came back)."""
        ...

    def close(self) -> None:
        """Shutdown: refuse new reservations and every waiting ticket."""
        ...


class Ticket:
    """`AdmissionTicket` of the in-memory `AdmissionQueue`."""

    def __init__(self, queue: AdmissionQueue, key: str = "") -> None:
        self._queue = queue
        self.key = key
        self._decided = anyio.Event()
        self._granted = False
        self._released = False
        self._last_position = 0
        self.on_position: Callable[[int], None] | None = None

    @property
    def is_granted(self) -> bool:
        return self._granted

    @property
    def position(self) -> int | None:
        if self._granted or self._decided.is_set():
            return None
        return self._queue.position_of(self)

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

    async def release(self) -> None:
        # No await: completes even in a cancelled scope.
        if not self._released:
            self._released = True
            self._queue.release(self)


class RoundRobinOrder:
    """The waiting tickets in the order they will be served: round-robin across keys.

    Each key has its own FIFO line. The key served least recently goes first (a key never served
    before counts as least recent; ties go to whoever queued first), then the next key, and so on,
    one ticket per key per round. "Served" includes a ticket granted at once without waiting, so
    with one slot and A, A, A, B arriving in that order, the order is A, B, A, A.
    """

    def __init__(self) -> None:
        self._lines: dict[str, deque[tuple[int, Ticket]]] = {}
        self._last_served: dict[str, int] = {}  # key → serve counter; bounded by the keys file
        self._served = 0
        self._arrivals = 0

    def __len__(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def __bool__(self) -> bool:
        return bool(self._lines)

    def __contains__(self, ticket: object) -> bool:
        return any(t is ticket for line in self._lines.values() for _, t in line)

    def served(self, key: str) -> None:
        """`key` got a slot: it goes to the back of the rotation."""
        self._served += 1
        self._last_served[key] = self._served

    def append(self, ticket: Ticket) -> None:
        self._arrivals += 1
        self._lines.setdefault(ticket.key, deque()).append((self._arrivals, ticket))

    def _rotation(self) -> list[str]:
        return sorted(
            self._lines, key=lambda k: (self._last_served.get(k, 0), self._lines[k][0][0])
        )

    def popleft(self) -> Ticket:
        key = self._rotation()[0]
        line = self._lines[key]
        _, ticket = line.popleft()
        if not line:
            del self._lines[key]
        self.served(key)
        return ticket

    def remove(self, ticket: Ticket) -> None:
        line = self._lines.get(ticket.key)
        if line is None:
            return
        for item in line:
            if item[1] is ticket:
                line.remove(item)
                break
        if not line:
            del self._lines[ticket.key]

    def __iter__(self) -> Iterator[Ticket]:
        """Serving order (what `position` counts): round r takes the r-th ticket of each key."""
        rotation = [self._lines[key] for key in self._rotation()]
        depth = max((len(line) for line in rotation), default=0)
        for round_index in range(depth):
            for line in rotation:
                if round_index < len(line):
                    yield line[round_index][1]

    def clear(self) -> list[Ticket]:
        tickets = list(self)
        self._lines.clear()
        return tickets


class AdmissionQueue:
    """`Admission` in this process's memory: reservation is synchronous under the hood."""

    def __init__(self, *, max_active: int, max_queued: int, max_per_key: int | None = None) -> None:
        self.max_active = max_active
        self.max_queued = max_queued
        self.max_per_key = max_per_key
        self._active = 0
        self._waiting = RoundRobinOrder()
        self._held: dict[str, int] = {}  # key → tickets granted or waiting
        self.closed = False

    @property
    def active(self) -> int:
        return self._active

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def retry_after_seconds(self) -> int:
        return 30

    def held_by(self, key: str) -> int:
        """Tickets `key` holds, granted or waiting."""
        return self._held.get(key, 0)

    def held_by_key(self) -> dict[str, int]:
        return dict(self._held)

    async def reserve(
        self,
        key: str = "",
        *,
        limited: bool = True,
        ticket_id: str | None = None,  # noqa: ARG002 (one process: no place to keep)
    ) -> Ticket:
        """See `Admission.reserve` (served round-robin across keys). No await inside."""
        if self.closed:
            raise ShuttingDownError()
        if limited and self.max_per_key is not None and self.held_by(key) >= self.max_per_key:
            raise KeyLimitError(self.max_per_key, self.retry_after_seconds())
        ticket = Ticket(self, key)
        if self._active < self.max_active and not self._waiting:
            self._active += 1
            self._waiting.served(key)
            ticket.grant()
        elif len(self._waiting) >= self.max_queued:
            raise QueueFullError(self.retry_after_seconds())
        else:
            self._waiting.append(ticket)
            # Round-robin may place it ahead of other keys' tickets: they move back one.
            self._announce_positions()
        self._held[key] = self._held.get(key, 0) + 1
        return ticket

    def position_of(self, ticket: Ticket) -> int:
        for position, waiting in enumerate(self._waiting, start=1):
            if waiting is ticket:
                return position
        raise ValueError("the ticket is not waiting")

    def release(self, ticket: Ticket) -> None:
        held = self._held.get(ticket.key, 0) - 1
        if held > 0:
            self._held[ticket.key] = held
        else:
            self._held.pop(ticket.key, None)
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
        self._announce_positions()

    def _announce_positions(self) -> None:
        for position, waiting in enumerate(self._waiting, start=1):
            waiting.move_to(position)

    def close(self) -> None:
        """Shutdown: refuse new reservations and every waiting ticket (their `wait()` raises).

        Queued requests end at once rather than start an upstream session the grace period
        would most likely cut short; admitted ones keep their slots.
        """
        self.closed = True
        for ticket in self._waiting.clear():
            ticket.refuse()
