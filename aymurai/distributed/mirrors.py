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
from functools import partial

import anyio
from anyio.abc import TaskGroup

from aymurai.db.store import StoredJob, TranscriptStore
from aymurai.distributed.connection import SharedRedis
from aymurai.errors import GatewayError, JobInterruptedError
from aymurai.transcription.channel import JobEvent
from aymurai.transcription.jobs import (
    DONE,
    FINISHED_STATUSES,
    QUEUED,
    RUNNING,
    Queued,
    Suspended,
    Transcribing,
    TranscriptionJob,
    is_plausible_job_id,
)
from aymurai.transcription.service import document_from_stored

logger = logging.getLogger(__name__)

ROW_POLL_SECONDS = 5.0
"""How often a mirror reads the job's row, in case its stream missed the end."""
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
        if job is not None and not isinstance(job.latest, Suspended):
            return job
        # A run released at its replica's shutdown (`suspended`) is not the job's end: another
        # replica takes it over in a new epoch, which a new mirror follows.
        if not is_plausible_job_id(job_id):
            return None
        row = await self._store.get_job(job_id)
        if row is None or row.status in FINISHED_STATUSES:
            return None
        job = self._jobs.get(job_id)  # another request may have built it meanwhile
        if job is not None and not isinstance(job.latest, Suspended):
            return job
        job = TranscriptionJob.from_row(row, remote=True)
        self._jobs[job_id] = job
        self._task_group.start_soon(self._follow, job)
        return job

    async def _follow(self, job: TranscriptionJob) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def until_ended(ending: Callable[[], Awaitable[None]]) -> None:
                    await ending()
                    group.cancel_scope.cancel()  # the stream or the row said it ended

                group.start_soon(self._track_status, job)
                group.start_soon(until_ended, partial(self._watch_row, job))
                group.start_soon(until_ended, partial(self._mirror, self._shared, job))
        except Exception:
            logger.exception("mirroring transcription %s failed", job.id)
        finally:
            job.finished.set()
            try:
                await anyio.sleep(KEEP_AFTER_END_SECONDS)
            finally:  # also when the app stops meanwhile
                if self._jobs.get(job.id) is job:
                    del self._jobs[job.id]

    async def _watch_row(self, job: TranscriptionJob) -> None:
        """End the mirror from the job's row if its stream never gets the terminal event.

        The replica running it may have lost Redis when it ended (the row, written to the
        database, is the source of truth for finished jobs).
        """
        while True:
            await anyio.sleep(ROW_POLL_SECONDS)
            try:
                row = await self._store.get_job(job.id)
                if row is None or row.status not in FINISHED_STATUSES:
                    continue
                ending = await self._ending_of(row, job)
            except GatewayError as exc:
                logger.warning("cannot read transcription %s: %s", job.id, exc.detail)
                continue
            if job.log.latest is None or not job.log.latest.is_terminal:
                logger.info("transcription %s ended without a word in its stream", job.id)
                await job.replay_event(ending)
            return

    async def _ending_of(self, row: StoredJob, job: TranscriptionJob) -> JobEvent:
        latest = job.log.latest
        event_id = max(row.terminal_event_id or 0, (latest.id + 1) if latest is not None else 1)
        if row.status == DONE:
            stored = await self._store.get(row.document_id)
            if stored is not None and stored.transcription is not None:
                return JobEvent(id=event_id, kind="done", document=document_from_stored(stored))
        return JobEvent(
            id=event_id,
            kind="error",
            error_code=row.error_code or JobInterruptedError.code,
            error_detail=row.error_detail or JobInterruptedError.default_detail,
        )

    @staticmethod
    async def _track_status(job: TranscriptionJob) -> None:
        """`status` of the mirror as the stream shows it (the owner updates only its row)."""
        async for update in job.updates():
            if isinstance(update, Transcribing) and job.status != RUNNING:
                job.status = RUNNING
            elif isinstance(update, Queued):
                job.status = QUEUED
