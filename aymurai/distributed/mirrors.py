"""Jobs another replica runs, mirrored here so this replica's clients can follow them.

`RemoteJobs(job_id)` answers a local `TranscriptionJob` (`remote=True`) for an unfinished job of
another replica: built from its SQL row, fed from its Redis stream by one task per job and
replica (`events.mirror_job`), however many clients follow it here. Routes treat it like a local
job: `follow()`, `wait_for_result()`, `updates()`, the resource's state. It is forgotten a little
after its terminal event (the row then holds the result), so memory follows the jobs being
followed, not the jobs ever seen.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from aymurai.db.store import TranscriptStore
from aymurai.distributed.connection import SharedRedis
from aymurai.transcription.jobs import (
    FINISHED_STATUSES,
    RUNNING,
    Queued,
    Transcribing,
    TranscriptionJob,
)

logger = logging.getLogger(__name__)

KEEP_AFTER_END_SECONDS = 10.0
"""A mirror that has ended still answers this long (a client reading right after `done`)."""

Mirror = Callable[[SharedRedis, TranscriptionJob], Awaitable[None]]


class RemoteJobs:
    """The mirrors of one replica, by job id (see the module docstring)."""

    def __init__(
        self,
        shared: SharedRedis,
        store: TranscriptStore,
        task_group: TaskGroup,
        *,
        mirror: Mirror,
    ) -> None:
        self._shared = shared
        self._store = store
        self._task_group = task_group
        self._mirror = mirror
        self._jobs: dict[str, TranscriptionJob] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    async def __call__(self, job_id: str) -> TranscriptionJob | None:
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        if not (0 < len(job_id) <= 64 and job_id.isascii() and job_id.isalnum()):
            return None
        row = await self._store.get_job(job_id)
        if row is None or row.status in FINISHED_STATUSES:
            return None
        job = self._jobs.get(job_id)  # another request may have built it meanwhile
        if job is not None:
            return job
        job = TranscriptionJob(
            job_id=row.id,
            document_id=row.document_id,
            name=row.name,
            total_seconds=row.total_seconds,
            runs_unwatched=row.runs_unwatched,
            epoch=row.epoch,
            created_at=row.created_at,
            live=row.live,
            key_name=row.key_name or "",
            remote=True,
        )
        job.status = row.status
        job.updated_at = row.updated_at
        self._jobs[job_id] = job
        self._task_group.start_soon(self._follow, job)
        return job

    async def _follow(self, job: TranscriptionJob) -> None:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._track_status, job)
                await self._mirror(self._shared, job)
                group.cancel_scope.cancel()
        except Exception:
            logger.exception("mirroring transcription %s failed", job.id)
        finally:
            job.finished.set()
            try:
                await anyio.sleep(KEEP_AFTER_END_SECONDS)
            finally:  # also when the app stops meanwhile
                self._jobs.pop(job.id, None)

    @staticmethod
    async def _track_status(job: TranscriptionJob) -> None:
        """`status` of the mirror as the stream shows it (the owner updates only its row)."""
        async for update in job.updates():
            if isinstance(update, Transcribing) and job.status != RUNNING:
                job.status = RUNNING
            elif isinstance(update, Queued):
                job.status = "queued"
