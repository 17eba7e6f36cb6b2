"""RedisAdmission and RedisPoolState: global slots, one FIFO queue and leases, on a real Redis.

Each "replica" is its own `SharedRedis` client on the same prefix, as separate processes would be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest

from aymurai.distributed.admission import RedisAdmission, RedisTicket
from aymurai.distributed.connection import SharedRedis
from aymurai.distributed.pool_state import RedisPoolState
from aymurai.errors import KeyLimitError, QueueFullError, SharedStateUnavailableError
from aymurai.transcription.backends import Backend
from test.e2e import eventually, seconds
from test.processes import free_port
from test.redis import fresh_prefix, shared_redis

pytestmark = [pytest.mark.integration, pytest.mark.redis]


@asynccontextmanager
async def replicas(
    count: int, *, lease_ttl_seconds: float = 15
) -> AsyncIterator[list[SharedRedis]]:
    """`count` clients of one Redis on one fresh prefix, as `count` replicas."""
    prefix = fresh_prefix()
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                shared_redis(
                    prefix=prefix, replica_id=f"r{index}", lease_ttl_seconds=lease_ttl_seconds
                )
            )
            for index in range(count)
        ]


def _admission(shared: SharedRedis, **limits: int) -> RedisAdmission:
    return RedisAdmission(
        shared,
        max_active=limits.get("max_active", 1),
        max_queued=limits.get("max_queued", 10),
        max_per_key=limits.get("max_per_key"),
    )


async def test_slots_and_queue_positions_are_global_across_replicas() -> None:
    """One slot, three replicas: one granted, the others wait in arrival order; positions count
    down as the slot passes from replica to replica."""
    async with replicas(3) as (a, b, c), anyio.create_task_group() as group:
        queues = [_admission(a), _admission(b), _admission(c)]
        first = await queues[0].reserve(ticket_id="job-1")
        second = await queues[1].reserve(ticket_id="job-2")
        third = await queues[2].reserve(ticket_id="job-3")
        assert first.is_granted and not second.is_granted and not third.is_granted
        assert (second.position, third.position) == (1, 2)
        positions: dict[str, list[int]] = {"job-2": [], "job-3": []}
        granted: list[str] = []

        async def wait(ticket: RedisTicket) -> None:
            await ticket.wait(positions[ticket.id].append)
            granted.append(ticket.id)

        group.start_soon(wait, second)
        group.start_soon(wait, third)
        await first.release()
        await eventually(lambda: granted == ["job-2"], what="the second to be granted")
        await second.release()
        await eventually(lambda: granted == ["job-2", "job-3"], what="the third to be granted")
        assert positions == {"job-2": [1], "job-3": [2, 1]}
        await third.release()
        assert await queues[0].counts() == (0, 0)


async def test_queue_full_and_key_limit_are_global() -> None:
    async with replicas(2) as (a, b):
        one, two = (
            _admission(a, max_queued=1, max_per_key=2),
            _admission(b, max_queued=1, max_per_key=2),
        )
        await one.reserve("k", ticket_id="1")
        await two.reserve("k", ticket_id="2")  # waits: the queue holds one
        with pytest.raises(KeyLimitError):
            await two.reserve("k", ticket_id="3")
        with pytest.raises(QueueFullError):
            await one.reserve("other", ticket_id="4")
        assert await one.counts() == (1, 1)


async def test_round_robin_across_keys_as_in_memory() -> None:
    """With one slot, A A A B arriving in that order are served A B A A (as the memory queue)."""
    async with replicas(2) as (a, b):
        queues = [_admission(a), _admission(b)]
        tickets = [
            await queues[index % 2].reserve(key, ticket_id=f"t{index}")
            for index, key in enumerate("AAAB")
        ]
        served: list[int] = []
        while len(served) < 4:
            for ticket in tickets:
                if not ticket.is_granted and tickets.index(ticket) not in served:
                    await queues[tickets.index(ticket) % 2].poll(ticket)
            current = next(i for i, t in enumerate(tickets) if t.is_granted and i not in served)
            served.append(current)
            await tickets[current].release()
        assert served == [0, 3, 1, 2]


async def test_a_dead_replicas_slot_frees_itself_within_the_ttl() -> None:
    """A replica that stops renewing (killed) loses its slot when the lease expires."""
    async with replicas(2, lease_ttl_seconds=1) as (a, b):
        dead, alive = _admission(a), _admission(b)
        await dead.reserve(ticket_id="dead-job")  # never renewed nor released
        waiting = await alive.reserve(ticket_id="next-job")
        assert not waiting.is_granted
        with anyio.fail_after(seconds(3)):
            await waiting.wait(lambda _: None)
        assert waiting.is_granted


async def test_a_waiting_ticket_taken_over_keeps_its_place() -> None:
    """A queued job adopted by another replica (same ticket id) keeps its place in line."""
    async with replicas(2, lease_ttl_seconds=1) as (a, b):
        first, second = _admission(a), _admission(b)
        await second.reserve(ticket_id="running")
        await first.reserve(ticket_id="orphan")  # its replica dies now
        await second.reserve(ticket_id="later")
        with anyio.fail_after(seconds(3)):
            while (await second.counts())[1] != 1:  # the orphan stops counting in line
                await second.renew()  # the living replica renews its own
                await anyio.sleep(0.1)
        adopted = await second.reserve(ticket_id="orphan")
        assert adopted.position == 1


async def test_renewal_puts_back_what_a_restarted_redis_lost() -> None:
    async with replicas(1) as (a,):
        admission = _admission(a, max_active=1)
        granted = await admission.reserve(ticket_id="running")
        waiting = await admission.reserve(ticket_id="waiting")
        await a.client.delete(
            *[a.key("adm", n) for n in ("queue", "alive", "active", "key", "held")]
        )
        await admission.renew()
        assert await admission.counts() == (1, 1)
        await granted.release()
        await waiting.release()
        assert await admission.counts() == (0, 0)


async def test_redis_unreachable_refuses_new_tickets_but_releases_do_not_raise() -> None:
    shared = SharedRedis(
        f"redis://127.0.0.1:{free_port()}/0", prefix="x", replica_id="r", lease_ttl_seconds=15
    )
    admission = _admission(shared)
    with pytest.raises(SharedStateUnavailableError):
        await admission.reserve(ticket_id="job")
    assert not shared.available
    await shared.aclose()


BACKENDS = [
    Backend(name="ws://a/asr", uri="ws://a/asr", max_sessions=1),
    Backend(name="ws://b/asr", uri="ws://b/asr", max_sessions=1),
]


async def test_server_caps_hold_across_replicas_and_dead_leases_expire() -> None:
    async with replicas(2, lease_ttl_seconds=1) as (a, b):
        one, two = RedisPoolState(a, BACKENDS), RedisPoolState(b, BACKENDS)
        first = await one.lease(avoid=frozenset(), allow_down=False)
        second = await two.lease(avoid=frozenset(), allow_down=False)
        assert {first, second} == set(BACKENDS)
        assert await two.lease(avoid=frozenset(), allow_down=False) is None
        assert [s.in_use for s in await two.statuses()] == [1, 1]
        await two.release(second.name if second else "")
        await two.renew()
        # `one` stops renewing (dies): its slot is free within the TTL.
        with anyio.fail_after(seconds(3)):
            while await two.lease(avoid=frozenset(), allow_down=False) is None:  # noqa: ASYNC110
                await anyio.sleep(0.1)  # polling Redis: nothing here to wait on


async def test_health_is_shared_and_a_cancelled_lease_leaks_nothing() -> None:
    async with replicas(2) as (a, b):
        one, two = RedisPoolState(a, BACKENDS), RedisPoolState(b, BACKENDS)
        await one.record_failure(BACKENDS[0].name, "UPSTREAM_UNAVAILABLE: refused", mark_down=True)
        assert [s.is_up for s in await two.statuses()] == [False, True]
        await two.record_success(BACKENDS[0].name)
        assert [s.is_up for s in await one.statuses()] == [True, True]
        with anyio.CancelScope() as scope:
            scope.cancel()  # cancelled before the script's answer arrives
            await one.lease(avoid=frozenset(), allow_down=False)
        assert [s.in_use for s in await two.statuses()] == [0, 0]
