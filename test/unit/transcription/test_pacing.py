"""The lead pacer: how far ahead of WLK the sender may run."""

from __future__ import annotations

import anyio
import pytest

from aymurai.transcription.pacing import LeadPacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_lead_is_sent_minus_progress() -> None:
    """The lead counts audio sent beyond the reported progress."""
    clock = FakeClock()
    pacer = LeadPacer(budget_seconds=5, initial_grace_seconds=10, clock=clock)
    for _ in range(4):
        pacer.on_sent(1.0)
    pacer.on_progress(1.5)
    pacer.on_progress(1.0)  # progress never goes backwards
    assert pacer.reported_progress_seconds == 1.5
    assert pacer.lead_seconds() == pytest.approx(2.5)


def test_pacer_assumes_real_time_after_grace() -> None:
    """Without reports, after the grace progress is assumed at wall-clock pace."""
    clock = FakeClock()
    pacer = LeadPacer(budget_seconds=5, initial_grace_seconds=10, clock=clock)
    pacer.on_sent(20.0)
    clock.now += 10.0
    assert pacer.progress_estimate() == 0.0
    clock.now += 7.0
    assert pacer.progress_estimate() == pytest.approx(7.0)


async def test_pacer_waits_until_progress_reported() -> None:
    """A sender at the budget waits, and resumes as soon as WLK reports progress."""
    pacer = LeadPacer(budget_seconds=2, initial_grace_seconds=60)
    pacer.on_sent(1.0)
    pacer.on_sent(1.0)
    resumed = anyio.Event()

    async def sender() -> None:
        await pacer.wait_for_room(1.0)
        resumed.set()

    async with anyio.create_task_group() as group:
        group.start_soon(sender)
        with anyio.move_on_after(0.1):
            await resumed.wait()
        assert not resumed.is_set(), "sent past the lead budget"
        pacer.on_progress(1.0)
        with anyio.fail_after(1):
            await resumed.wait()


async def test_pacer_never_deadlocks_on_silence() -> None:
    """With no progress reports at all, sending resumes at real-time pace after the grace."""
    pacer = LeadPacer(budget_seconds=0.2, initial_grace_seconds=0.1)
    pacer.on_sent(0.2)
    with anyio.fail_after(2):
        await pacer.wait_for_room(0.2)  # needs ~0.3 s of wall clock
    assert pacer.progress_estimate() >= 0.2 - 0.01
