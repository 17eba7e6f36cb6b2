"""Backends parsing and pool state: caps, routing, circuit breaker, capacity (no sockets)."""

from __future__ import annotations

import pytest

from aymurai.errors import UpstreamServiceError, UpstreamUnavailableError
from aymurai.transcription.admission import AdmissionQueue
from aymurai.transcription.backends import Backend, parse_backend_uris
from aymurai.transcription.pool import (
    FAILURES_TO_MARK_DOWN,
    BackendState,
    MemoryPoolState,
    UpstreamPool,
)
from aymurai.transcription.upstream import ConnectionOptions

A = Backend("ws://a:1/asr", "ws://a:1/asr", 2)
B = Backend("ws://b:1/asr", "ws://b:1/asr", 3)


def test_parse_backend_uris_reads_caps_and_strips_the_fragment() -> None:
    """Comma-separated URIs; #max_sessions=N is a per-server cap, never sent to WLK."""
    backends = parse_backend_uris(
        "ws://gpu1:8000/asr#max_sessions=3, wss://gpu2/asr?token=s%2Ccret", default_max_sessions=2
    )
    assert backends == [
        Backend("ws://gpu1:8000/asr", "ws://gpu1:8000/asr", 3),
        Backend("wss://gpu2/asr", "wss://gpu2/asr?token=s%2Ccret", 2),
    ]


def test_parse_backend_uris_one_uri_is_today() -> None:
    """A single URI is one server with the default cap."""
    assert parse_backend_uris("ws://h:8000/asr", default_max_sessions=2) == [
        Backend("ws://h:8000/asr", "ws://h:8000/asr", 2)
    ]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "http://h/asr",
        "ws://h/asr#max_sessions=0",
        "ws://h/asr#max_sessions=x",
        "ws://h/asr#other=1",
        "ws://h/asr,ws://h/asr#max_sessions=2",
    ],
)
def test_parse_backend_uris_rejects_bad_values(value: str) -> None:
    """Not ws(s)://, a bad or unknown fragment, a server twice: a settings error at startup."""
    with pytest.raises(ValueError, match="TRANSCRIBE_WS_URI"):
        parse_backend_uris(value, default_max_sessions=2)


async def test_pool_state_leases_the_server_with_most_free_slots() -> None:
    """Most free slots first; never past a server's cap; None when all are full."""
    state = MemoryPoolState([A, B])
    picks = [await state.lease(avoid=frozenset(), allow_down=False) for _ in range(6)]
    assert [b.name if b else None for b in picks] == [
        B.name,
        A.name,  # 2 free each: listed first wins
        B.name,
        A.name,
        B.name,
        None,
    ]
    await state.release(A.name)
    assert await state.lease(avoid=frozenset(), allow_down=False) == A


async def test_pool_state_ties_go_to_fewest_recent_failures() -> None:
    """Equal free slots: the server that failed less recently is chosen."""
    state = MemoryPoolState([Backend("ws://x/asr", "ws://x/asr", 2), A])
    await state.record_failure("ws://x/asr", "UPSTREAM_SERVICE_ERROR: lost", mark_down=False)
    assert await state.lease(avoid=frozenset(), allow_down=False) == A


async def test_pool_state_circuit_breaker_opens_after_consecutive_failures() -> None:
    """FAILURES_TO_MARK_DOWN failures in a row mark a server down; a success brings it back."""
    state = MemoryPoolState([A])
    for _ in range(FAILURES_TO_MARK_DOWN - 1):
        status = await state.record_failure(A.name, "X: y", mark_down=False)
        assert status.state is BackendState.UP
    status = await state.record_failure(A.name, "X: y", mark_down=False)
    assert status.state is BackendState.DOWN and status.problem == "X: y"
    assert await state.lease(avoid=frozenset(), allow_down=False) is None
    status = await state.record_success(A.name)
    assert status.state is BackendState.UP and status.consecutive_failures == 0


async def test_pool_state_success_resets_the_failure_count() -> None:
    """Failures must be consecutive: one success in between starts the count again."""
    state = MemoryPoolState([A])
    for _ in range(FAILURES_TO_MARK_DOWN - 1):
        await state.record_failure(A.name, "X: y", mark_down=False)
    await state.record_success(A.name)
    status = await state.record_failure(A.name, "X: y", mark_down=False)
    assert status.state is BackendState.UP


async def test_pool_capacity_follows_servers_up_and_admission() -> None:
    """Capacity is the sum of caps of servers up (all caps when none is), fed to admission."""
    admission = AdmissionQueue(max_active=5, max_queued=10)
    pool = UpstreamPool(
        [A, B],
        ConnectionOptions(uri=A.uri),
        probe_ttl_seconds=10,
        probe_timeout_seconds=1,
        on_capacity=admission.set_max_active,
    )
    assert pool.capacity == 5
    await pool.record_failure(B, UpstreamUnavailableError(), mark_down=True)
    assert pool.capacity == admission.max_active == 2
    await pool.record_failure(A, UpstreamServiceError(), mark_down=True)
    assert pool.capacity == admission.max_active == 5  # none up: do not queue against nothing
    await pool.record_success(A)
    assert pool.capacity == admission.max_active == 2


async def test_pool_lease_takes_a_down_server_only_when_none_is_up() -> None:
    """Jobs are routed to up servers; with every server down, a down one is tried anyway."""
    pool = UpstreamPool(
        [A, B], ConnectionOptions(uri=A.uri), probe_ttl_seconds=10, probe_timeout_seconds=1
    )
    await pool.record_failure(B, UpstreamUnavailableError(), mark_down=True)
    assert await pool.lease() == A
    await pool.record_failure(A, UpstreamUnavailableError(), mark_down=True)
    assert await pool.lease() == B


async def test_admission_grows_and_admits_waiting_when_capacity_returns() -> None:
    """set_max_active: waiting tickets are admitted when a server comes back."""
    queue = AdmissionQueue(max_active=1, max_queued=5)
    await queue.reserve()
    waiting = await queue.reserve()
    assert not waiting.is_granted
    queue.set_max_active(2)
    assert waiting.is_granted and queue.active == 2
