"""Jobs nobody runs any more: run them again here, or end them.

A gateway that stops (a restart, a crash, `kill -9`) leaves its jobs' rows `queued` or `running`
in `transcription_job`, with their audio in the spool folder. In one process, `recover()` at
startup runs them all again (a new epoch) or, when the audio is gone, ends them `INTERRUPTED`.

In distributed mode those rows may be the running jobs of other replicas, so `recover()` leaves
them alone and `run_takeovers()` looks a few times per lease TTL for orphans: unfinished rows
whose owner lease no replica renews. Exactly one replica wins each orphan's lease
(`SharedJobs.claim_owner`); with the audio readable here it runs the job on — a running one from
its last committed lines (`pipeline.ResumePoint`), a queued one in its place in line — else it
ends it `INTERRUPTED`, in the job's shared event stream too, so followers anywhere are told.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from aymurai.db.store import StoredJob
from aymurai.errors import GatewayError, JobInterruptedError, QueueFullError, ShuttingDownError
from aymurai.transcription.channel import JobEvent, event_id
from aymurai.transcription.jobs import DONE, FAILED, QUEUED, RUNNING, TranscriptionJob
from aymurai.transcription.pipeline import ResumePoint, resume_point_of

if TYPE_CHECKING:
    from aymurai.transcription.service import TranscriptionService

logger = logging.getLogger(__name__)


def remove_quietly(path: Path) -> None:
    """Delete a spooled upload; a missing file is fine, another failure only logged."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        logger.warning("could not remove spooled upload %s", path, exc_info=True)


class JobRecovery:
    """Runs again (or ends) the jobs of a process or replica that stopped; see the docstring."""

    def __init__(self, service: TranscriptionService) -> None:
        self._service = service
        self._orphans_signal = anyio.Event()

    async def recover(self) -> list[str]:
        """Re-run the jobs a previous process left unfinished; fail those whose audio is gone.

        Returns the ids of the jobs queued again. A database that cannot answer (not migrated,
        unreachable) is logged, not fatal: the process still serves, the rows wait. In
        distributed mode the rows may be other replicas' running jobs: `take_over_orphans`
        handles them instead, job by job, once their owner's lease has lapsed.
        """
        requeued: list[str] = []
        if self._service.shared is not None:
            return requeued
        for row in await self._unfinished_rows():
            if await self._rerun(row):
                requeued.append(row.id)
        return requeued

    async def _unfinished_rows(self) -> list[StoredJob]:
        try:
            if not await self._service.store.is_schema_current():
                logger.warning("not re-running unfinished transcriptions: database not migrated")
                return []
            return await self._service.store.unfinished_jobs()
        except GatewayError as exc:
            logger.error("could not read unfinished transcriptions: %s", exc.detail)
            return []

    async def _interrupt(self, row: StoredJob, detail: str) -> None:
        """End a job nobody runs any more: row failed, subscribers (any replica) told."""
        epoch = row.epoch + 1
        ended: JobEvent | None = JobEvent(
            id=event_id(epoch, 1),
            kind="error",
            error_code=JobInterruptedError.code,
            error_detail=detail,
        )
        if self._service.shared is not None:
            assert ended is not None
            # The stream first: its replica may have finished the job just before it died.
            ended = await self._service.shared.end_remotely(row.id, ended)
            if ended is None:
                return  # a newer run writes its stream: the job is alive after all
        assert ended is not None
        values: dict[str, object] = {"terminal_event_id": ended.id, "spool_path": None}
        if ended.kind == "done":
            values.update(status=DONE, current_seconds=row.total_seconds)
        else:
            values.update(
                status=FAILED,
                epoch=epoch,
                error_code=ended.error_code,
                error_detail=ended.error_detail,
            )
        await self._service.store.update_job(row.id, **values)
        if row.spool_path:
            remove_quietly(Path(row.spool_path))
        if self._service.shared is not None:
            await self._service.shared.release_leases(row.id, row.document_id)

    async def _rerun(self, row: StoredJob, resume_point: ResumePoint | None = None) -> bool:
        """Run an unfinished job's row again here (new epoch), or end it if its audio is gone."""
        epoch = row.epoch + 1
        path = Path(row.spool_path) if row.spool_path else None
        if path is None or not path.is_file():
            logger.warning("transcription %s interrupted: its audio is gone", row.id)
            await self._interrupt(row, JobInterruptedError.default_detail)
            return False
        try:
            # Admitted once already: no key limit. Its ticket keeps its place in a shared queue.
            ticket = await self._service.admission.reserve(
                row.key_name or "", limited=False, ticket_id=row.id
            )
        except (QueueFullError, ShuttingDownError):
            logger.warning("transcription %s left for a later start: queue full", row.id)
            return False
        job = TranscriptionJob.from_row(
            row,
            epoch=epoch,
            runs_unwatched=True,  # its first client is gone with the old process
            audio_path=path,
            log=self._service.new_log(row.id),
        )
        job.status = QUEUED
        if self._service.shared is not None:
            await self._service.shared.adopt(job)
        else:
            claimed = await self._service.registry.claim(job)
            if claimed is not job:
                await ticket.release()
                await self._interrupt(row, "An identical upload is transcribed by another job.")
                return False
        await self._service.store.update_job(
            row.id, status=QUEUED, epoch=epoch, runs_unwatched=True
        )
        logger.info("transcription %s of %s queued again (epoch %d)", row.id, row.name, epoch)
        self._service.launch(job, ticket, resume_point)
        return True

    async def take_over_orphans(self) -> list[str]:
        """Distributed mode: run here (or end) the jobs of replicas that died.

        A job is an orphan when its row is unfinished and no replica renews its owner lease.
        Exactly one replica wins its lease; with the spooled audio readable here (a spool every
        replica mounts) the job runs again, a queued one in its old place in line; without it,
        the job ends INTERRUPTED. Returns the ids of the jobs taken over or ended.
        """
        shared = self._service.shared
        if shared is None or not self._service.accepting:
            return []
        handled: list[str] = []
        local = {job.id for job in self._service.jobs}
        for row in await self._unfinished_rows():
            if row.id in local or await shared.owner_alive(row.id):
                continue
            if not await shared.takeover_allowed(row.id) or not await shared.claim_owner(row.id):
                continue
            logger.warning("transcription %s has no living replica: taking it over", row.id)
            path = Path(row.spool_path) if row.spool_path else None
            if path is None or not path.is_file():
                await self._interrupt(
                    row, "The gateway replica running this transcription stopped."
                )
            else:
                # A running job goes on from its last committed lines (as its clients saw them).
                last = await shared.last_document(row.id) if row.status == RUNNING else None
                await self._rerun(row, resume_point_of(last) if last is not None else None)
            handled.append(row.id)
        return handled

    def look_for_orphans_now(self) -> None:
        """Another replica released jobs at its shutdown: look for orphans without waiting."""
        self._orphans_signal.set()

    async def run_takeovers(self, interval_seconds: float) -> None:
        """Forever: `take_over_orphans` every `interval_seconds`, or at once when another
        replica released jobs (run in the task group)."""
        while True:
            self._orphans_signal = anyio.Event()
            try:
                await self.take_over_orphans()
            except GatewayError as exc:  # Redis or the database down: the next round retries
                logger.warning("could not check for orphaned transcriptions: %s", exc.detail)
            except Exception:  # a bug must not take the replica (and its running jobs) down
                logger.exception("checking for orphaned transcriptions failed")
            with anyio.move_on_after(interval_seconds):
                await self._orphans_signal.wait()
