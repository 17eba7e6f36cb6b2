"""AdmissionQueue: slots, FIFO order, positions, leaving the queue, overflow and shutdown."""

from __future__ import annotations

import anyio
import pytest
from anyio.abc import TaskGroup

from aymurai.errors import KeyLimitError, QueueFullError, ShuttingDownError
from aymurai.transcription.admission import AdmissionQueue, Ticket


async def _wait_in_background(
    group: TaskGroup, ticket: Ticket, positions: list[int], outcome: list[str]
) -> None:
    async def wait() -> None:
        try:
            await ticket.wait(positions.append)
            outcome.append("granted")
        except ShuttingDownError:
            outcome.append("refused")

    group.start_soon(wait)
    await anyio.wait_all_tasks_blocked()


async def test_admission_grants_up_to_the_limit_then_queues() -> None:
    """The first max_active reservations get a slot at once; the next ones wait in line."""
    queue = AdmissionQueue(max_active=2, max_queued=5)
    first, second, third = await queue.reserve(), await queue.reserve(), await queue.reserve()
    assert first.is_granted and second.is_granted and not third.is_granted
    assert (queue.active, queue.queued) == (2, 1)


async def test_admission_queue_full_raises_with_retry_after() -> None:
    """Past max_queued waiting requests, reserve() refuses with QUEUE_FULL and a Retry-After."""
    queue = AdmissionQueue(max_active=1, max_queued=1)
    await queue.reserve()
    await queue.reserve()
    with pytest.raises(QueueFullError) as caught:
        await queue.reserve()
    assert caught.value.code == "QUEUE_FULL"
    assert caught.value.retry_after_seconds > 0
    assert queue.queued == 1


async def test_admission_zero_queue_refuses_as_soon_as_slots_are_taken() -> None:
    """With max_queued=0 a request either gets a slot or QUEUE_FULL."""
    queue = AdmissionQueue(max_active=1, max_queued=0)
    assert (await queue.reserve()).is_granted
    with pytest.raises(QueueFullError):
        await queue.reserve()


async def test_admission_positions_count_down_in_fifo_order() -> None:
    """Waiting tickets see their position now and after each release, and are granted in order."""
    queue = AdmissionQueue(max_active=1, max_queued=5)
    running = await queue.reserve()
    waiting = [await queue.reserve() for _ in range(3)]
    positions: list[list[int]] = [[], [], []]
    outcome: list[str] = []
    async with anyio.create_task_group() as group:
        for ticket, seen in zip(waiting, positions, strict=True):
            await _wait_in_background(group, ticket, seen, outcome)
        assert positions == [[1], [2], [3]]
        await running.release()
        await anyio.wait_all_tasks_blocked()
        assert waiting[0].is_granted and positions == [[1], [2, 1], [3, 2]]
        await waiting[0].release()
        await waiting[1].release()
        await anyio.wait_all_tasks_blocked()
        await waiting[2].release()
    assert positions == [[1], [2, 1], [3, 2, 1]]
    assert outcome == ["granted"] * 3
    assert (queue.active, queue.queued) == (0, 0)


async def test_admission_leaving_the_queue_frees_the_place_without_moving_those_ahead() -> None:
    """A waiting ticket released early leaves the line; only the tickets behind it move up."""
    queue = AdmissionQueue(max_active=1, max_queued=2)
    running = await queue.reserve()
    ahead = await queue.reserve()
    positions_ahead: list[int] = []
    positions_behind: list[int] = []
    outcome: list[str] = []
    async with anyio.create_task_group() as group:
        await _wait_in_background(group, ahead, positions_ahead, outcome)
        leaving = await queue.reserve()
        with pytest.raises(QueueFullError):
            await queue.reserve()
        await leaving.release()
        assert queue.queued == 1
        behind = await queue.reserve()  # the freed place is usable at once
        await _wait_in_background(group, behind, positions_behind, outcome)
        assert positions_ahead == [1] and positions_behind == [2]
        await running.release()
        await anyio.wait_all_tasks_blocked()
        await ahead.release()
        await anyio.wait_all_tasks_blocked()
        await behind.release()
    assert positions_ahead == [1] and positions_behind == [2, 1]
    assert not leaving.is_granted
    assert (queue.active, queue.queued) == (0, 0)


async def test_admission_close_refuses_waiting_and_new_tickets() -> None:
    """Shutdown refuses every waiting ticket and later reservations; slots held stay held."""
    queue = AdmissionQueue(max_active=1, max_queued=5)
    running = await queue.reserve()
    waiting = await queue.reserve()
    outcome: list[str] = []
    async with anyio.create_task_group() as group:
        await _wait_in_background(group, waiting, [], outcome)
        queue.close()
    assert outcome == ["refused"]
    with pytest.raises(ShuttingDownError):
        await queue.reserve()
    await waiting.release()
    assert (queue.active, queue.queued) == (1, 0)
    await running.release()
    assert queue.active == 0


async def test_admission_release_is_idempotent() -> None:
    """Releasing a ticket twice frees its slot once."""
    queue = AdmissionQueue(max_active=2, max_queued=0)
    first = await queue.reserve()
    await queue.reserve()
    await first.release()
    await first.release()
    assert queue.active == 1


async def test_admission_round_robin_two_keys_one_slot() -> None:
    """With one slot, A A A B arriving in that order are served A B A A."""
    queue = AdmissionQueue(max_active=1, max_queued=10)
    tickets = [await queue.reserve(key) for key in "AAAB"]
    served = []
    for _ in range(4):
        current = next(t for t in tickets if t.is_granted and t not in served)
        served.append(current)
        await current.release()
    assert [t.key for t in served] == ["A", "B", "A", "A"]
    assert [tickets.index(t) for t in served] == [0, 3, 1, 2]


async def test_admission_round_robin_positions_follow_serving_order() -> None:
    """Positions count the round-robin order, and a newcomer that goes ahead moves others back."""
    queue = AdmissionQueue(max_active=1, max_queued=10)
    await queue.reserve("A")
    a2, a3 = await queue.reserve("A"), await queue.reserve("A")
    assert (queue.position_of(a2), queue.position_of(a3)) == (1, 2)
    b1 = await queue.reserve("B")
    c1 = await queue.reserve("C")
    assert [queue.position_of(t) for t in (b1, c1, a2, a3)] == [1, 2, 3, 4]


async def test_admission_single_key_is_fifo() -> None:
    """Keys off (every ticket under "") keeps plain first-come, first-served."""
    queue = AdmissionQueue(max_active=1, max_queued=10)
    tickets = [await queue.reserve() for _ in range(4)]
    assert [queue.position_of(t) for t in tickets[1:]] == [1, 2, 3]


async def test_admission_per_key_limit_counts_granted_and_waiting() -> None:
    """A key holding max_per_key tickets gets KEY_LIMIT; other keys and released places pass."""
    queue = AdmissionQueue(max_active=1, max_queued=10, max_per_key=2)
    first, second = await queue.reserve("A"), await queue.reserve("A")
    with pytest.raises(KeyLimitError) as caught:
        await queue.reserve("A")
    assert caught.value.retry_after_seconds > 0
    assert await queue.reserve("B") is not None
    assert queue.held_by_key() == {"A": 2, "B": 1}
    await second.release()  # left the queue
    assert await queue.reserve("A") is not None
    await first.release()
    assert queue.held_by("A") == 1
    assert await queue.reserve("A", limited=True) is not None
    with pytest.raises(KeyLimitError):
        await queue.reserve("A")
    assert await queue.reserve("A", limited=False) is not None  # a restart re-runs its jobs anyway
