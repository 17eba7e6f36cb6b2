"""A job's watch channel: coalescing, keepalives, cancellation when the last subscriber leaves."""

from __future__ import annotations

import uuid

import anyio

from aymurai.transcription.jobs import KEEPALIVE, Done, Failed, Queued, TranscriptionJob, Upstream
from aymurai.transcription.schemas import ASRDocument

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


async def test_job_last_subscriber_leaving_cancels() -> None:
    """Closing the only subscription of an unfinished job cancels it; a finished one is kept."""
    job = _job()
    updates = job.updates()
    job.publish(Queued(DOC_ID, 1))
    with anyio.fail_after(1):
        await updates.__anext__()
    await updates.aclose()
    assert job.cancel_scope.cancel_called
    assert job.client_gone

    finished = _job()
    finished.publish(Done(ASRDocument(document_id=DOC_ID)))
    assert isinstance(await finished.wait_for_result(), Done)
    assert not finished.cancel_scope.cancel_called


async def test_job_upstream_notices_are_never_coalesced_away() -> None:
    """`Upstream` updates overwritten by newer ones still reach every subscriber, in order."""
    job = _job()
    updates = job.updates()
    job.publish(Queued(DOC_ID, 1))
    job.publish(Upstream(DOC_ID, "reconnecting", 1, 4.5))
    job.publish(Upstream(DOC_ID, "resumed", 1, 4.5))
    job.publish(Queued(DOC_ID, 2))
    with anyio.fail_after(1):
        seen = [await updates.__anext__() for _ in range(3)]
    assert seen == [
        Upstream(DOC_ID, "reconnecting", 1, 4.5),
        Upstream(DOC_ID, "resumed", 1, 4.5),
        Queued(DOC_ID, 2),
    ]
    job.publish(Upstream(DOC_ID, "reconnecting", 2, 9.0))
    with anyio.fail_after(1):
        assert await updates.__anext__() == Upstream(DOC_ID, "reconnecting", 2, 9.0)
    await updates.aclose()
