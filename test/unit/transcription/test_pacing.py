"""The lead pacer: how far ahead of WLK the sender may run."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from aymurai.transcription.pacing import LeadPacer, is_quiet, sound_span


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pacer(clock: FakeClock, budget: float = 5.0, grace: float = 10.0) -> LeadPacer:
    return LeadPacer(budget_seconds=budget, initial_grace_seconds=grace, clock=clock)


def test_is_quiet_separates_pauses_from_sound() -> None:
    """Digital silence and faint noise are quiet; a tone at -30 dBFS is not."""
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(16000) * 20).astype("<i2").tobytes()
    tone = (np.sin(np.arange(16000) / 5) * 1000).astype("<i2").tobytes()
    assert is_quiet(b"\x00\x00" * 16000)
    assert is_quiet(noise)
    assert is_quiet(b"")
    assert not is_quiet(tone)


def test_sound_span_finds_the_first_and_last_audible_tenth_of_a_second() -> None:
    """0.3 s of silence, 0.4 s of tone, 0.3 s of silence: sound from 0.3 to 0.7 s."""
    tone = (np.sin(np.arange(6400) / 5) * 1000).astype("<i2")
    pcm = np.concatenate([np.zeros(4800, "<i2"), tone, np.zeros(4800, "<i2")]).tobytes()
    assert sound_span(pcm) == pytest.approx((0.3, 0.7))
    assert sound_span(b"\x00\x00" * 16000) is None
    assert sound_span(b"") is None


def test_pacer_audible_until_stops_where_the_sound_stops() -> None:
    """While WLK processes a pause, uncommitted words end where the sound did, not at progress."""
    pacer = _pacer(FakeClock())
    pacer.on_sent(1.0, sound=(0.0, 1.0))
    pacer.on_sent(1.0, sound=(0.0, 0.4))  # speech stops at 1.4 s
    pacer.on_sent(1.0, audible=False)
    pacer.on_sent(1.0, sound=(0.5, 1.0))  # speech again from 3.5 s
    assert pacer.audible_until(0.5) == 0.5
    assert pacer.audible_until(3.2) == pytest.approx(1.4)
    pacer.on_progress(3.2)
    assert pacer.audible_until(3.2) == pytest.approx(1.4)
    assert pacer.audible_until(3.8) == pytest.approx(3.8)
    assert pacer.audible_until(9.0) == pytest.approx(4.0)


def test_pacer_audible_lead_is_sent_minus_progress() -> None:
    """The lead counts audible audio sent beyond the reported progress; progress never drops."""
    clock = FakeClock()
    pacer = _pacer(clock)
    for _ in range(4):
        pacer.on_sent(1.0)
    pacer.on_progress(1.5)
    pacer.on_progress(1.0)
    assert pacer.reported_progress_seconds == 1.5
    assert pacer.audible_lead_seconds() == pytest.approx(2.5)


def test_pacer_quiet_audio_does_not_count() -> None:
    """A pause sent ahead is not ASR work: only the audible seconds count toward the lead."""
    clock = FakeClock()
    pacer = _pacer(clock)
    pacer.on_sent(1.0)
    for _ in range(30):
        pacer.on_sent(1.0, audible=False)
    pacer.on_sent(1.0)
    assert pacer.audible_lead_seconds() == pytest.approx(2.0)
    pacer.on_progress(0.5)
    assert pacer.audible_lead_seconds() == pytest.approx(1.5)


def test_pacer_extrapolates_after_a_stall_not_from_the_start() -> None:
    """Real-time extrapolation starts a grace period after the last progress, wherever that is."""
    clock = FakeClock()
    pacer = _pacer(clock)
    pacer.on_sent(600.0)
    clock.now += 60.0
    pacer.on_progress(590.0)  # WLK has been fast; now it stops reporting
    clock.now += 10.0
    assert pacer.progress_estimate() == pytest.approx(590.0)
    clock.now += 4.0
    assert pacer.progress_estimate() == pytest.approx(594.0)


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


async def test_pacer_quiet_chunks_pass_a_full_budget() -> None:
    """With the audible budget used up, quiet chunks still go out at once."""
    pacer = LeadPacer(budget_seconds=2, initial_grace_seconds=60)
    pacer.on_sent(2.0)
    with anyio.fail_after(1):
        for _ in range(10):
            await pacer.wait_for_room(1.0, audible=False)
            pacer.on_sent(1.0, audible=False)


async def test_pacer_in_flight_bounded_when_wlk_reports_received() -> None:
    """On 0.2.23+ even quiet audio waits once budget seconds are unreceived by WLK."""
    pacer = LeadPacer(budget_seconds=2, initial_grace_seconds=60)
    pacer.on_progress(0.0, 0.0)
    pacer.on_sent(2.0, audible=False)
    with anyio.move_on_after(0.1) as blocked:
        await pacer.wait_for_room(1.0, audible=False)
    assert blocked.cancelled_caught
    pacer.on_progress(0.0, 1.5)
    with anyio.fail_after(1):
        await pacer.wait_for_room(1.0, audible=False)


async def test_pacer_never_deadlocks_without_progress() -> None:
    """With no progress reports at all, sending resumes at real-time pace after the grace."""
    pacer = LeadPacer(budget_seconds=0.2, initial_grace_seconds=0.1)
    pacer.on_sent(0.2)
    with anyio.fail_after(2):
        await pacer.wait_for_room(0.2)  # needs ~0.3 s of wall clock
    assert pacer.progress_estimate() >= 0.2 - 0.01


async def test_pacer_budget_smaller_than_a_chunk_still_flows() -> None:
    """A budget under one chunk lets a chunk through whenever nothing is outstanding."""
    pacer = LeadPacer(budget_seconds=0.5, initial_grace_seconds=60)
    with anyio.fail_after(1):
        await pacer.wait_for_room(1.0)
    pacer.on_sent(1.0)
    pacer.on_progress(1.0)
    with anyio.fail_after(1):
        await pacer.wait_for_room(1.0)


def _max_true_lead(
    pace: float, report_every: float, *, grace: float, budget: float = 5.0, received: bool = False
) -> float:
    """Simulate a WLK processing at `pace` x real time that reports every `report_every` s.

    A sender pushes 1 s audible chunks whenever the pacer has room; returns the largest audible
    lead over WLK's *true* position seen during 300 s of wall clock, after the first 30 s (before
    WLK's first report the pacer knows no pace and the initial grace, 20 s by default, covers the
    start; the lead sent then drains in the first reports).
    """
    clock = FakeClock()
    pacer = _pacer(clock, budget=budget, grace=grace)
    processed = 0.0  # WLK's true position
    worst = 0.0
    next_report = clock.now + report_every
    for step in range(3000):
        clock.now += 0.1
        processed = min(pacer.sent_seconds, processed + pace * 0.1)
        if clock.now >= next_report:
            pacer.on_progress(processed, pacer.sent_seconds if received else None)
            next_report += report_every
        while pacer.has_room(1.0):
            pacer.on_sent(1.0)
        if step >= 300:
            worst = max(worst, pacer.sent_seconds - processed)
    return worst


@pytest.mark.parametrize("pace", [1.0, 0.6, 0.3, 0.1])
def test_pacer_lead_within_budget_plus_a_chunk_whatever_the_pace(pace: float) -> None:
    """A WLK below real time reporting rarely, with a short grace: lead <= budget + one chunk."""
    assert _max_true_lead(pace, report_every=4.0, grace=1.0) <= 5.0 + 1.0 + 1e-9
    assert _max_true_lead(pace, report_every=4.0, grace=1.0, received=True) <= 5.0 + 1.0 + 1e-9


def test_pacer_pace_follows_wlk_reports() -> None:
    """The extrapolation pace is WLK's measured pace (between MIN_PACE and 1), not real time."""
    clock = FakeClock()
    pacer = _pacer(clock, grace=1.0)
    pacer.on_sent(30.0)
    for step in range(1, 6):
        clock.now += 4.0
        pacer.on_progress(step * 1.0)  # 1 s of audio per 4 s of wall clock
    assert pacer.pace == pytest.approx(0.25, abs=0.05)
    clock.now += 3.0  # 2 s past the grace
    assert pacer.progress_estimate() == pytest.approx(5.0 + 2.0 * pacer.pace)
