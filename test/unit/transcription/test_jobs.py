"""A job: its watch of the newest update, its recorder of numbered events, its subscribers."""

from __future__ import annotations

import uuid

import anyio

from aymurai.transcription.channel import EPOCH_SPAN, JobEvent, MemoryEventLog
from aymurai.transcription.deltas import apply_delta
from aymurai.transcription.jobs import (
    KEEPALIVE,
    Done,
    Failed,
    JobUpdate,
    Keepalive,
    Queued,
    Transcribing,
    TranscriptionJob,
    Upstream,
)
from aymurai.transcription.registry import MemoryJobRegistry
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.wlk_protocol import StatusSnapshot, TranscriptLine

DOC_ID = uuid.uuid4()


def _job() -> TranscriptionJob:
    return TranscriptionJob(document_id=DOC_ID, name="a.wav", total_seconds=10.0)


async def test_job_subscriber_gets_latest_state_not_backlog() -> None:
    """Updates published while a subscriber is busy collapse into the newest one."""
    job = _job()
    updates = job.updates()
    job.publish(Queued(DOC_ID, 3))
    job.publish(Queued(DOC_ID, 2))
    job.publish(Queued(DOC_ID, 1))
    with anyio.fail_after(1):
        assert await updates.__anext__() == Queued(DOC_ID, 1)
    document = ASRDocument(document_id=DOC_ID)
    job.publish(Done(document))
    job.publish(Failed("X", "ignored after the terminal update"))
    with anyio.fail_after(1):
        assert await updates.__anext__() == Done(document)
    await updates.aclose()


async def test_job_keepalive_when_idle() -> None:
    """With nothing new for the keepalive interval, a Keepalive comes out."""
    job = _job()
    updates = job.updates(keepalive_seconds=0.05)
    with anyio.fail_after(1):
        assert await updates.__anext__() is KEEPALIVE
    await updates.aclose()


async def test_job_min_interval_coalesces() -> None:
    """Two updates closer than the minimum interval: the second waits, then the newest wins."""
    job = _job()
    updates = job.updates(min_interval_seconds=0.2)
    job.publish(Queued(DOC_ID, 5))
    with anyio.fail_after(1):
        assert await updates.__anext__() == Queued(DOC_ID, 5)
    job.publish(Queued(DOC_ID, 4))
    start = anyio.current_time()
    async with anyio.create_task_group() as group:

        async def publish_more() -> None:
            await anyio.sleep(0.05)
            job.publish(Queued(DOC_ID, 3))

        group.start_soon(publish_more)
        with anyio.fail_after(1):
            assert await updates.__anext__() == Queued(DOC_ID, 3)
    assert anyio.current_time() - start >= 0.15
    await updates.aclose()


async def test_job_watch_tells_when_the_last_subscriber_leaves() -> None:
    """Leaving the last watch of an unfinished job calls `on_unwatched` once; joining resets."""
    job = _job()
    calls: list[TranscriptionJob] = []
    job.on_unwatched = calls.append
    with job.watch():
        with job.watch():
            pass
        assert calls == []
        assert job.unwatched_since is None
    assert calls == [job]
    assert job.unwatched_since is not None


def _snapshot(*texts: str, tail: str = "") -> StatusSnapshot:
    lines = tuple(
        TranscriptLine(speaker=1, text=text, start=float(i), end=float(i + 1))
        for i, text in enumerate(texts)
    )
    return StatusSnapshot(status="active_transcription", lines=lines, buffer_transcription=tail)


async def _record(job: TranscriptionJob, updates: list[JobUpdate], progress: float) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: job.record_events(min_interval_seconds=0, progress_interval_seconds=progress)
        )
        for update in updates:
            job.publish(update)
            await anyio.sleep(0.01)  # let the recorder see each one


async def test_job_recorder_drops_invisible_changes_and_throttles_progress() -> None:
    """Same text and time → no event; progress only → none within the interval; ids increase."""
    job = _job()
    log = MemoryEventLog()
    job.log = log
    updates: list[JobUpdate] = [
        Transcribing(DOC_ID, None, 0.0, 10.0),
        Transcribing(DOC_ID, _snapshot(), 0.0, 10.0),  # nothing visible changed
        Transcribing(DOC_ID, _snapshot("a"), 1.0, 10.0),
        Transcribing(DOC_ID, _snapshot("a"), 1.5, 10.0),  # progress only, too soon
        Transcribing(DOC_ID, _snapshot("a", "b"), 2.0, 10.0),
        Done(ASRDocument(document_id=DOC_ID)),
    ]
    await _record(job, updates, progress=60.0)
    kept = log.kept
    assert [event.kind for event in kept] == ["transcription"] * 3 + ["done"]
    assert [event.id for event in kept] == [1, 2, 3, 4]
    documents: list[ASRParagraph] = []
    for event in kept[:3]:
        assert event.delta is not None and event.document is not None
        documents = apply_delta(documents, event.delta)
        assert documents == event.document.document
    assert [p.text for p in documents] == ["a", "b"]


async def test_job_event_ids_carry_the_epoch() -> None:
    """A re-run after a restart numbers its events above every id of the earlier runs."""
    job = TranscriptionJob(document_id=DOC_ID, name="a.wav", total_seconds=1.0, epoch=2)
    await _record(job, [Done(ASRDocument(document_id=DOC_ID))], progress=0)
    latest = job.log.latest
    assert latest is not None and latest.id == 2 * EPOCH_SPAN + 1


async def test_job_follow_starts_with_a_snapshot_then_follows() -> None:
    """follow(): newest state flagged as a snapshot, then each later event once, to the end."""
    job = _job()
    job.publish(Queued(DOC_ID, 2))
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: job.record_events(min_interval_seconds=0, progress_interval_seconds=0)
        )
        await anyio.sleep(0.02)
        seen: list[tuple[str, bool]] = []

        async def follow() -> None:
            async for item in job.follow(keepalive_seconds=None):
                assert not isinstance(item, Keepalive)
                seen.append((item[0].kind, item[1]))

        group.start_soon(follow)
        await anyio.sleep(0.02)
        job.publish(Queued(DOC_ID, 1))
        await anyio.sleep(0.02)
        job.publish(Failed("CANCELLED", "gone"))
    assert seen == [("queued", True), ("queued", False), ("error", False)]
    result = await job.wait_for_result()
    assert result == Failed("CANCELLED", "gone")


async def test_job_registry_claim_joins_only_unfinished_jobs() -> None:
    """claim() returns the running job of the same document, but never one that has ended."""
    registry = MemoryJobRegistry()
    first = _job()
    assert await registry.claim(first) is first
    second = _job()
    assert await registry.claim(second) is first
    first.publish(Failed("CANCELLED", "gone"))
    third = _job()
    assert await registry.claim(third) is third
    await registry.remove(first)  # the ended job's late cleanup leaves the new one alone
    assert await registry.active_for(DOC_ID) is third
    assert await registry.get(third.id) is third


async def test_job_upstream_notices_are_recorded_not_coalesced_away() -> None:
    """`Upstream` updates overwritten at once still become events, in order, in the log."""
    job = _job()
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: job.record_events(min_interval_seconds=0.05, progress_interval_seconds=0)
        )
        job.publish(Upstream(DOC_ID, "reconnecting", 1, 4.5))
        job.publish(Upstream(DOC_ID, "resumed", 1, 4.5))
        job.publish(Queued(DOC_ID, 2))
        job.publish(Failed("X", "end"))
    assert isinstance(job.log, MemoryEventLog)
    kinds = [(event.kind, event.upstream) for event in job.log.kept]
    assert kinds == [
        ("upstream", {"state": "reconnecting", "attempt": 1, "resume_from": 4.5}),
        ("upstream", {"state": "resumed", "attempt": 1, "resume_from": 4.5}),
        ("error", None),
    ]


async def test_event_log_gap_read_starts_at_a_state_not_a_notice() -> None:
    """A reader that starts late gets the newest state event, then the notices after it."""
    log = MemoryEventLog()
    document = ASRDocument(document_id=DOC_ID)
    await log.append(JobEvent(id=1, kind="queued", document=document, position=1))
    await log.append(JobEvent(id=2, kind="upstream", upstream={"state": "reconnecting"}))
    read = await log.read_after(-1, timeout_seconds=0)
    assert read is not None and read.gap
    assert [event.id for event in read.events] == [1, 2]
