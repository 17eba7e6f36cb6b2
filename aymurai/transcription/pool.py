"""A pool of WLK servers: session slots per server, health with a circuit breaker, and routing.

WLK has no session cap and no load report (its `/health` says only "ready"), so both live here:

- each server has a cap (`#max_sessions=N`, else TRANSCRIBE_MAX_CONCURRENT_SESSIONS) and a count
  of sessions in use; an admitted job leases a slot on the *up* server with the most free slots
  (ties: fewest recent failures), and the admission queue's capacity is the sum of the caps of the
  servers that are up;
- a failure (refused or failed handshake, no config message, a session lost mid-file) counts
  against the server; `FAILURES_TO_MARK_DOWN` in a row mark it down (a circuit breaker). A
  failed probe marks it down at once: a probe is a deliberate check, a job may fail for reasons
  of its own. A success (a session opened, a probe answered) marks it up and resets the count;
- down servers are probed in the background (handshake + config message, then close) with an
  exponential backoff capped at TRANSCRIBE_WS_PROBE_TTL_SECONDS; idle up servers are probed when
  `/readyz` asks and their last success is older than the TTL (cached, one probe in flight per
  server), so an idle dead server is seen down without sending it a job.

When every server is down, admission does not hold jobs in the queue against nothing: capacity is
then the sum of all caps and a job tries the servers anyway (a down server is tried last), so
with one server that is down a job fails promptly with UPSTREAM_UNAVAILABLE, as before pools.

Where state lives (STYLE §9): slots and health are behind `PoolState`, an async interface with an
in-memory implementation; a Redis one (slots as leases with a TTL, health as hashes) can take its
place so that several gateway processes share the caps. `UpstreamPool` holds what is local to a
process: probing, waiting, metrics and the admission callback.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

import anyio

from aymurai.errors import UpstreamError, UpstreamUnavailableError
from aymurai.transcription.backends import Backend
from aymurai.transcription.upstream import ConnectionOptions, connect_wlk
from aymurai.transcription.wlk_protocol import ConfigMessage

logger = logging.getLogger(__name__)

FAILURES_TO_MARK_DOWN = 3
"""Consecutive failures (no success between) that mark an up server down."""
RECENT_FAILURES_WINDOW_SECONDS = 300.0
"""Failures this recent break ties between servers with as many free slots."""
PROBE_BACKOFF_INITIAL_SECONDS = 0.5
WAIT_POLL_SECONDS = 0.5
"""A waiter re-checks the shared state at least this often (another process may free a slot)."""


class BackendState(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class BackendStatus:
    """One server as the pool sees it now."""

    backend: Backend
    state: BackendState = BackendState.UP
    in_use: int = 0
    consecutive_failures: int = 0
    recent_failures: int = 0
    problem: str | None = None
    """`"CODE: detail"` of the last failure while down; None while up."""
    checked_at: float = -math.inf
    """When it last answered (a session opened or a probe), on anyio's clock."""

    @property
    def free(self) -> int:
        return max(0, self.backend.max_sessions - self.in_use)

    @property
    def is_up(self) -> bool:
        return self.state is BackendState.UP


class PoolState(Protocol):
    """Slots and health of the servers, possibly shared between processes."""

    async def lease(self, *, avoid: frozenset[str], allow_down: bool) -> Backend | None:
        """Take a slot, atomically, on the best server not in `avoid`, or return None.

        Best: up, most free slots, then fewest recent failures, then listed first. With
        `allow_down`, a down server with a free slot is taken when no up one has room.
        """
        ...

    async def release(self, name: str) -> None:
        """Give back a slot taken by `lease`."""
        ...

    async def record_success(self, name: str) -> BackendStatus:
        """The server answered (session opened or probe passed): up, count reset."""
        ...

    async def record_failure(self, name: str, problem: str, *, mark_down: bool) -> BackendStatus:
        """The server failed; down after `FAILURES_TO_MARK_DOWN` in a row, or at once."""
        ...

    async def statuses(self) -> list[BackendStatus]:
        """Every server, in the configured order."""
        ...


@dataclass
class _Entry:
    status: BackendStatus
    failures_at: deque[float] = field(default_factory=deque)


class MemoryPoolState:
    """`PoolState` for one process: plain dictionaries, no await between read and write."""

    def __init__(self, backends: list[Backend], *, clock: Callable[[], float] = anyio.current_time):
        self._clock = clock
        self._entries = {b.name: _Entry(BackendStatus(backend=b)) for b in backends}

    def _recent(self, entry: _Entry) -> int:
        horizon = self._clock() - RECENT_FAILURES_WINDOW_SECONDS
        while entry.failures_at and entry.failures_at[0] < horizon:
            entry.failures_at.popleft()
        return len(entry.failures_at)

    async def lease(self, *, avoid: frozenset[str], allow_down: bool) -> Backend | None:
        candidates = [
            (index, entry)
            for index, entry in enumerate(self._entries.values())
            if entry.status.free > 0
            and entry.status.backend.name not in avoid
            and (allow_down or entry.status.is_up)
        ]
        if not candidates:
            return None
        _, best = min(
            candidates,
            key=lambda item: (
                not item[1].status.is_up,
                -item[1].status.free,
                self._recent(item[1]),
                item[0],
            ),
        )
        best.status = replace(best.status, in_use=best.status.in_use + 1)
        return best.status.backend

    async def release(self, name: str) -> None:
        entry = self._entries[name]
        entry.status = replace(entry.status, in_use=max(0, entry.status.in_use - 1))

    async def record_success(self, name: str) -> BackendStatus:
        entry = self._entries[name]
        entry.status = replace(
            entry.status,
            state=BackendState.UP,
            consecutive_failures=0,
            problem=None,
            checked_at=self._clock(),
        )
        return entry.status

    async def record_failure(self, name: str, problem: str, *, mark_down: bool) -> BackendStatus:
        entry = self._entries[name]
        entry.failures_at.append(self._clock())
        failures = entry.status.consecutive_failures + 1
        down = mark_down or failures >= FAILURES_TO_MARK_DOWN or not entry.status.is_up
        entry.status = replace(
            entry.status,
            state=BackendState.DOWN if down else BackendState.UP,
            consecutive_failures=failures,
            problem=problem if down else None,
        )
        return entry.status

    async def statuses(self) -> list[BackendStatus]:
        return [
            replace(entry.status, recent_failures=self._recent(entry))
            for entry in self._entries.values()
        ]


class PoolObserver(Protocol):
    """What the pool reports to metrics (see `aymurai.metrics`)."""

    def on_backend_status(self, status: BackendStatus) -> None: ...

    def on_backend_failure(self, name: str, code: str) -> None: ...


def problem_of(exc: UpstreamError) -> str:
    return f"{exc.code}: {exc.detail}"


class UpstreamPool:
    """Routing, health and probing over a `PoolState`, for one gateway process."""

    def __init__(
        self,
        backends: list[Backend],
        connection: ConnectionOptions,
        *,
        state: PoolState | None = None,
        probe_ttl_seconds: float,
        probe_timeout_seconds: float,
        on_capacity: Callable[[int], None] | None = None,
        observer: PoolObserver | None = None,
    ) -> None:
        self.backends = list(backends)
        self.state: PoolState = state or MemoryPoolState(self.backends)
        self._connection = connection
        self._probe_ttl = probe_ttl_seconds
        self._probe_options = replace(
            connection,
            open_timeout_seconds=min(connection.open_timeout_seconds, probe_timeout_seconds),
            ping_interval_seconds=None,
        )
        self._probe_timeout = probe_timeout_seconds
        self._on_capacity = on_capacity
        self._observer = observer
        self._changed = anyio.Event()
        self._probe_locks = {b.name: anyio.Lock() for b in self.backends}
        self._probe_backoff = {b.name: PROBE_BACKOFF_INITIAL_SECONDS for b in self.backends}
        self._next_probe_at = {b.name: 0.0 for b in self.backends}
        self._probed_at = {b.name: -math.inf for b in self.backends}
        self._capacity = sum(b.max_sessions for b in self.backends)

    # --- options ----------------------------------------------------------------------------
    def connection_options(self, backend: Backend) -> ConnectionOptions:
        return replace(self._connection, uri=backend.uri)

    @property
    def capacity(self) -> int:
        """Sum of the caps of the servers that are up (of all, when none is)."""
        return self._capacity

    # --- slots ------------------------------------------------------------------------------
    async def lease(self, *, avoid: frozenset[str] = frozenset()) -> Backend | None:
        """A slot on the best up server not in `avoid`; a down one only when none is up."""
        statuses = await self.state.statuses()
        allow_down = not any(s.is_up for s in statuses)
        backend = await self.state.lease(avoid=avoid, allow_down=allow_down)
        if backend is not None:
            await self._publish(backend.name)
        return backend

    async def wait_for_change(self, timeout_seconds: float) -> None:
        """Until a slot is freed or a server changes state here, or `timeout_seconds` pass.

        Bounded by `WAIT_POLL_SECONDS` as well: with shared state, another process may free a
        slot without this one hearing of it.
        """
        changed = self._changed
        with anyio.move_on_after(min(timeout_seconds, WAIT_POLL_SECONDS)):
            await changed.wait()

    async def release(self, backend: Backend) -> None:
        await self.state.release(backend.name)
        await self._publish(backend.name)

    # --- health -----------------------------------------------------------------------------
    async def record_success(self, backend: Backend) -> None:
        await self.state.record_success(backend.name)
        self._probed_at[backend.name] = anyio.current_time()
        self._probe_backoff[backend.name] = PROBE_BACKOFF_INITIAL_SECONDS
        await self._publish(backend.name)

    async def record_failure(
        self, backend: Backend, exc: UpstreamError, *, mark_down: bool = False
    ) -> None:
        was = await self._status(backend.name)
        status = await self.state.record_failure(backend.name, problem_of(exc), mark_down=mark_down)
        if self._observer is not None:
            self._observer.on_backend_failure(backend.name, exc.code)
        if not status.is_up:
            if was.is_up:
                logger.warning("upstream %s marked down: %s", backend.name, status.problem)
            self._schedule_probe(backend.name)
        await self._publish(backend.name)

    async def statuses(self) -> list[BackendStatus]:
        return await self.state.statuses()

    async def _status(self, name: str) -> BackendStatus:
        return next(s for s in await self.state.statuses() if s.backend.name == name)

    async def _publish(self, name: str) -> None:
        statuses = await self.state.statuses()
        if self._observer is not None:
            for item in statuses:
                if item.backend.name == name:
                    self._observer.on_backend_status(item)
        self._refresh_capacity(statuses)
        self._changed.set()
        self._changed = anyio.Event()

    def _refresh_capacity(self, statuses: list[BackendStatus]) -> None:
        """Admission's capacity follows the servers that are up (as the shared state says)."""
        up = [s for s in statuses if s.is_up]
        capacity = sum(s.backend.max_sessions for s in (up or statuses))
        if capacity != self._capacity:
            logger.info(
                "upstream capacity %d → %d (%d of %d servers up)",
                self._capacity,
                capacity,
                len(up),
                len(statuses),
            )
            self._capacity = capacity
            if self._on_capacity is not None:
                self._on_capacity(capacity)

    # --- probes -----------------------------------------------------------------------------
    def _schedule_probe(self, name: str) -> None:
        backoff = self._probe_backoff[name]
        self._next_probe_at[name] = anyio.current_time() + backoff
        self._probe_backoff[name] = min(backoff * 2, max(self._probe_ttl, backoff))

    async def probe(self, backend: Backend) -> str | None:
        """Handshake and config message, then close; records the result. None when it answered.

        One probe per server at a time: concurrent callers wait and reuse a fresh result.
        """
        async with self._probe_locks[backend.name]:
            if anyio.current_time() - self._probed_at[backend.name] < min(self._probe_ttl, 0.05):
                return (await self._status(backend.name)).problem
            try:
                async with connect_wlk(self.connection_options_for_probe(backend)) as connection:
                    with anyio.fail_after(self._probe_timeout):
                        message = await connection.receive()
                    if not isinstance(message, ConfigMessage):
                        raise UpstreamUnavailableError(
                            "The speech recognition server sent no config message."
                        )
            except TimeoutError:
                problem_exc: UpstreamError = UpstreamUnavailableError(
                    "The speech recognition server sent no config message in time."
                )
            except UpstreamError as exc:
                problem_exc = exc
            else:
                self._probed_at[backend.name] = anyio.current_time()
                await self.record_success(backend)
                return None
            self._probed_at[backend.name] = anyio.current_time()
            logger.warning("probe of %s failed: %s", backend.name, problem_exc.detail)
            await self.record_failure(backend, problem_exc, mark_down=True)
            return problem_of(problem_exc)

    def connection_options_for_probe(self, backend: Backend) -> ConnectionOptions:
        return replace(self._probe_options, uri=backend.uri)

    async def check(self) -> list[BackendStatus]:
        """For `/readyz`: probe servers whose last answer is older than the TTL, then report."""
        now = anyio.current_time()
        # A server with sessions in use is not probed: a probe would take a session beyond its
        # cap, and a session lost there is recorded as a failure anyway.
        stale = [
            s.backend
            for s in await self.state.statuses()
            if s.is_up
            and s.in_use == 0
            and now - max(s.checked_at, self._probed_at[s.backend.name]) >= self._probe_ttl
        ]
        if stale:
            async with anyio.create_task_group() as group:
                for backend in stale:
                    group.start_soon(self.probe, backend)
        return await self.state.statuses()

    async def run_probes(self) -> None:
        """Forever: probe each down server when its backoff is over (run in a task group)."""
        while True:
            now = anyio.current_time()
            statuses = await self.state.statuses()
            due = [
                s.backend
                for s in statuses
                if not s.is_up and self._next_probe_at[s.backend.name] <= now
            ]
            for backend in due:
                await self.probe(backend)
            statuses = await self.state.statuses()
            # With shared state another replica may have marked a server down or up.
            self._refresh_capacity(statuses)
            pending = [self._next_probe_at[s.backend.name] for s in statuses if not s.is_up]
            wait = min(pending, default=now + WAIT_POLL_SECONDS) - anyio.current_time()
            changed = self._changed
            with anyio.move_on_after(max(0.01, min(wait, WAIT_POLL_SECONDS))):
                await changed.wait()
