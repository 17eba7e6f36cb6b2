"""The job registry: which jobs run in this process, by id and by document.

`claim()` is what makes identical uploads share one WLK session: it registers a new job for a
document unless one is already queued or running, and returns the job to use either way. It is
the single check-and-register step (no await in between in the memory implementation), so a
burst of identical uploads can never start two sessions. A shared implementation (Redis, with
leases) can replace `MemoryJobRegistry` behind the same interface.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aymurai.transcription.channel import JobEvent
    from aymurai.transcription.jobs import TranscriptionJob
    from aymurai.transcription.schemas import ASRDocument


class JobRegistry(Protocol):
    async def claim(self, job: TranscriptionJob) -> TranscriptionJob:
        """Register `job`, or return the unfinished job already registered for its document.

        A job counts as unfinished until its terminal update is published.
        """
        ...

    async def get(self, job_id: str) -> TranscriptionJob | None: ...

    async def active_for(self, document_id: uuid.UUID) -> TranscriptionJob | None: ...

    async def remove(self, job: TranscriptionJob) -> None: ...

    def running(self) -> list[TranscriptionJob]:
        """The jobs of this process (for shutdown and metrics)."""
        ...


class MemoryJobRegistry:
    """`JobRegistry` in this process's memory."""

    def __init__(self) -> None:
        self._by_id: dict[str, TranscriptionJob] = {}
        self._by_document: dict[uuid.UUID, TranscriptionJob] = {}

    async def claim(self, job: TranscriptionJob) -> TranscriptionJob:
        existing = await self.active_for(job.document_id)
        if existing is not None:
            return existing
        self._by_id[job.id] = job
        self._by_document[job.document_id] = job
        return job

    async def get(self, job_id: str) -> TranscriptionJob | None:
        return self._by_id.get(job_id)

    async def active_for(self, document_id: uuid.UUID) -> TranscriptionJob | None:
        job = self._by_document.get(document_id)
        # A job that has just ended (cancelled, failed, done) but is still being recorded is
        # not joined: a new upload of the same bytes starts afresh (or hits the cache).
        return job if job is not None and not job.is_terminal else None

    async def remove(self, job: TranscriptionJob) -> None:
        if self._by_id.get(job.id) is job:
            del self._by_id[job.id]
        if self._by_document.get(job.document_id) is job:
            del self._by_document[job.document_id]

    def running(self) -> list[TranscriptionJob]:
        return list(self._by_id.values())


class SharedJobs(Protocol):
    """What distributed mode adds to a registry shared by replicas (`aymurai/distributed`).

    Every job has an owner lease renewed by the replica running it; when it lapses (the replica
    died), one other replica takes the job over (`claim_owner`) or ends it.
    """

    async def owner_alive(self, job_id: str) -> bool: ...

    async def claim_owner(self, job_id: str) -> bool:
        """Take the owner lease of a job nobody renews; True if this replica won it."""
        ...

    async def takeover_allowed(self, job_id: str) -> bool:
        """False while the replicas may still be putting back leases a Redis restart lost
        (unless the job was released on purpose)."""
        ...

    async def adopt(self, job: TranscriptionJob) -> None:
        """Register a job taken over here (its owner lease is ours already)."""
        ...

    async def release_leases(self, job_id: str, document_id: uuid.UUID) -> None: ...

    async def request_cancel(self, job_id: str) -> None:
        """Ask the replica running `job_id` to cancel it."""
        ...

    async def last_document(self, job_id: str) -> ASRDocument | None:
        """The newest state the job's event stream holds (a takeover resumes from it)."""
        ...

    async def end_remotely(self, job_id: str, event: JobEvent) -> JobEvent | None:
        """Append the terminal `event` of a job no replica runs to its shared event stream.

        Returns the job's terminal event: `event`, or the `done`/`error` the stream already
        ended with (its replica finished it just before dying); None when a newer run writes
        the stream (the job is alive after all).
        """
        ...
