"""TranscriptionService: the component that owns transcriptions; HTTP routes only talk to it.

It holds the app-wide task group jobs run in, the job registry, the admission queue, the decode
limiter and the store. A route hands it a spooled upload (`accept()`): the service joins the
queued or running job of the same document if there is one (identical uploads share one WLK
session), else answers from the cache, else probes the audio and starts a job. Every job is a
row in `transcription_job` from its start to its end, and its audio stays in the spool
directory until it ends, so `recovery.recover()` at startup re-runs what a crash or kill
interrupted (`recovery.py`; in distributed mode, it takes over the jobs of replicas that died).

Shutdown drains: no new jobs, running ones get a grace period; then jobs of the resource API are
left for the next start (row unfinished, audio kept) and the others end with `SHUTTING_DOWN`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from pydantic import ValidationError

from aymurai.db.store import StoredJob, StoredTranscription, TranscriptStore
from aymurai.errors import (
    AlreadyFinishedError,
    DocumentUnreadableError,
    GatewayError,
    JobCancelledError,
    KeyLimitError,
    NotFoundError,
    ShuttingDownError,
)
from aymurai.metrics import GatewayMetrics
from aymurai.settings import Settings
from aymurai.transcription.admission import Admission, AdmissionQueue, AdmissionTicket
from aymurai.transcription.channel import EventLog, event_id
from aymurai.transcription.decode import AudioInfo, probe_audio
from aymurai.transcription.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED_STATUSES,
    QUEUED,
    RUNNING,
    Done,
    Failed,
    Queued,
    Suspended,
    TranscriptionJob,
    is_plausible_job_id,
    new_job_id,
    wire_time,
)
from aymurai.transcription.live import LiveControl, keeping_audio, run_live_transcription
from aymurai.transcription.pipeline import (
    PipelineOptions,
    ResumeOptions,
    ResumePoint,
    run_transcription,
)
from aymurai.transcription.pool import PoolState, UpstreamPool
from aymurai.transcription.recovery import JobRecovery, remove_quietly
from aymurai.transcription.registry import JobRegistry, MemoryJobRegistry, SharedJobs
from aymurai.transcription.schemas import (
    ASRDocument,
    ASRParagraph,
    ValidatedParagraph,
    speaker_id_for,
)
from aymurai.transcription.session import SessionOptions
from aymurai.transcription.upstream import ConnectionOptions, close_code_of

logger = logging.getLogger(__name__)


def pipeline_options(settings: Settings) -> PipelineOptions:
    return PipelineOptions(
        connection=ConnectionOptions(
            uri=settings.ws_backends[0].uri,  # each job connects to the server it leases
            open_timeout_seconds=settings.transcribe_ws_open_timeout_seconds,
            close_timeout_seconds=settings.transcribe_ws_close_timeout_seconds,
            ping_interval_seconds=settings.ws_ping_interval,
            ping_timeout_seconds=settings.ws_ping_timeout,
            max_message_bytes=settings.transcribe_ws_max_message_bytes,
        ),
        session=SessionOptions(
            lead_budget_seconds=settings.transcribe_ws_lead_budget_seconds,
            lead_initial_grace_seconds=settings.transcribe_ws_lead_initial_grace_seconds,
            idle_timeout_seconds=settings.transcribe_ws_idle_timeout_seconds,
            ready_timeout_seconds=settings.transcribe_ws_ready_timeout_seconds,
            config_timeout_seconds=settings.transcribe_ws_open_timeout_seconds,
        ),
        chunk_seconds=settings.transcribe_ws_chunk_seconds,
        resume=ResumeOptions(
            max_resumes=settings.transcribe_ws_max_resumes,
            overlap_seconds=settings.transcribe_ws_resume_overlap_seconds,
            timeout_seconds=settings.transcribe_ws_resume_timeout_seconds,
        ),
        keep_punctuation_only=settings.transcribe_keep_punctuation_only,
        max_audio_seconds=settings.transcribe_max_audio_seconds,
    )


def document_from_stored(stored: StoredTranscription) -> ASRDocument:
    """The stored result as clients see it: the human validation if any, else the transcript."""
    paragraphs = stored.validation if stored.validation is not None else stored.transcription
    duration = stored.duration_seconds
    try:
        return ASRDocument(
            document_id=stored.document_id,
            document=[ASRParagraph.model_validate(p) for p in paragraphs or []],
            current_time=duration,
            total_time=duration,
        )
    except ValidationError as exc:
        # Written before validations were checked (issue 8), e.g. `end: Infinity` read back as
        # null: answer with a code instead of failing every read of the document.
        logger.error("stored document %s is unreadable: %s", stored.document_id, exc)
        raise DocumentUnreadableError() from exc


class TranscriptionService:
    def __init__(
        self,
        settings: Settings,
        store: TranscriptStore,
        task_group: TaskGroup,
        metrics: GatewayMetrics | None = None,
        registry: JobRegistry | None = None,
        admission: Admission | None = None,
        pool_state: PoolState | None = None,
        event_logs: Callable[[str], EventLog] | None = None,
        shared: SharedJobs | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._task_group = task_group
        self._options = pipeline_options(settings)
        self.decode_limiter = anyio.CapacityLimiter(settings.transcribe_max_concurrent_decodes)
        # A live WebM session holds one decoder thread for its whole length (queued ones too).
        self.live_decode_limiter = anyio.CapacityLimiter(
            settings.transcribe_max_concurrent_sessions + settings.transcribe_max_queued
        )
        self.metrics = metrics or GatewayMetrics()
        backends = settings.ws_backends
        per_key = settings.transcribe_api_key_max_jobs
        self.admission: Admission = admission or AdmissionQueue(
            max_active=sum(backend.max_sessions for backend in backends),
            max_queued=settings.transcribe_max_queued,
            max_per_key=per_key if settings.keys_enabled and per_key > 0 else None,
        )
        self.metrics.watch_admission(
            queued=lambda: self.admission.queued, active=lambda: self.admission.active
        )
        if settings.keys_enabled:
            self.metrics.watch_keys(self.admission.held_by_key)
        self.pool = UpstreamPool(
            backends,
            self._options.connection,
            probe_ttl_seconds=settings.transcribe_ws_probe_ttl_seconds,
            probe_timeout_seconds=settings.transcribe_ws_probe_timeout_seconds,
            state=pool_state,
            on_capacity=self.admission.set_max_active,
            observer=self.metrics,
        )
        self.metrics.watch_backends(backends)
        # Brings down servers back (probes with backoff); ends with the task group.
        task_group.start_soon(self.pool.run_probes)
        self.registry: JobRegistry = registry or MemoryJobRegistry()
        # Distributed mode: each job's events also go to Redis, and jobs of dead replicas are
        # taken over (`recovery.py`); None in one process.
        self._event_logs = event_logs
        self.shared = shared
        self.recovery = JobRecovery(self)
        self.accepting = True

    def new_log(self, job_id: str) -> EventLog | None:
        return self._event_logs(job_id) if self._event_logs is not None else None

    @property
    def jobs(self) -> list[TranscriptionJob]:
        """The jobs of this process, queued or running."""
        return self.registry.running()

    # --- reads ----------------------------------------------------------------------------
    async def find_cached(self, document_id: uuid.UUID) -> ASRDocument | None:
        """A complete stored result for these bytes, or None."""
        stored = await self.store.get(document_id)
        if stored is None or stored.transcription is None:
            self.metrics.cache_lookups.labels(result="miss").inc()
            return None
        self.metrics.cache_lookups.labels(result="hit").inc()
        return document_from_stored(stored)

    async def stored_document(self, document_id: uuid.UUID) -> ASRDocument | None:
        """The stored document of a finished job (no cache metrics: this is not an upload)."""
        stored = await self.store.get(document_id)
        if stored is None or stored.transcription is None:
            return None
        return document_from_stored(stored)

    async def get_document(self, document_id: uuid.UUID) -> ASRDocument:
        stored = await self.store.get(document_id)
        if stored is None:
            raise NotFoundError(f"No document with id {document_id}.")
        return document_from_stored(stored)

    async def save_validation(
        self, document_id: uuid.UUID, paragraphs: list[ValidatedParagraph]
    ) -> ASRDocument:
        stored_paragraphs = [
            ASRParagraph(
                paragraph_id=f"p{index}",
                speaker_no=p.speaker_no,
                speaker_id=speaker_id_for(p.speaker_no),
                speaker_name=p.speaker_name,
                start=p.start,
                end=p.end,
                text=p.text,
            ).model_dump(mode="json")
            for index, p in enumerate(paragraphs)
        ]
        stored = await self.store.save_validation(
            document_id=document_id, paragraphs=stored_paragraphs
        )
        if stored is None:
            raise NotFoundError(f"No document with id {document_id}.")
        return document_from_stored(stored)

    async def probe(self, path: Path) -> AudioInfo:
        """Probe an upload in a worker thread (raises InvalidAudioError, AudioTooLongError)."""
        probe = partial(probe_audio, path, max_seconds=self.settings.transcribe_max_audio_seconds)
        return await anyio.to_thread.run_sync(probe, limiter=self.decode_limiter)

    async def find_job(self, job_id: str) -> TranscriptionJob | StoredJob:
        """The live job of this id, else its row.

        Raises:
            NotFoundError: no such transcription.
        """
        job = await self.registry.get(job_id)
        if job is not None:
            return job
        stored = await self.store.get_job(job_id) if is_plausible_job_id(job_id) else None
        if stored is None:
            raise NotFoundError(f"No transcription with id {job_id}.")
        return stored

    async def list_jobs(
        self, *, status: str | None, limit: int, key_name: str | None = None
    ) -> list[TranscriptionJob | StoredJob]:
        """The newest jobs first (of one API key unless `key_name` is None); live ones as they
        are now."""
        rows = await self.store.list_jobs(status=status, limit=limit, key_name=key_name)
        # This process's jobs as they are now; another replica's as its row says (a list does
        # not start following every job it shows).
        local = {job.id: job for job in self.jobs}
        return [local.get(row.id, row) for row in rows]

    # --- jobs -----------------------------------------------------------------------------
    async def accept(
        self,
        *,
        document_id: uuid.UUID,
        name: str,
        audio_path: Path,
        use_cache: bool,
        runs_unwatched: bool,
        key_name: str = "",
    ) -> ASRDocument | TranscriptionJob:
        """A spooled upload → the job it joins or starts (which owns the file), or a cached result.

        An unfinished job of the same document is joined whatever `use_cache` says (one WLK
        session for identical uploads); joining from the resource API makes that job run
        unwatched from then on. Joining adds no work, so it does not count against the key's
        limit. The spooled file is removed unless a new job now owns it.

        Raises:
            InvalidAudioError: the upload is not decodable audio.
            ShuttingDownError: the process is draining.
            KeyLimitError: `key_name` holds its limit of queued and running jobs.
            QueueFullError: too many requests are already waiting.
            StorageError: the job could not be recorded.
        """
        owned = False
        try:
            joined = await self._join(document_id, runs_unwatched=runs_unwatched, key_name=key_name)
            if joined is not None:
                return joined
            if use_cache:
                cached = await self.find_cached(document_id)
                if cached is not None:
                    logger.info("cache hit for %s", document_id)
                    return cached
            info = await self.probe(audio_path)
            logger.info(
                "audio: %s/%s, %.2f s, %d ch, %d Hz",
                info.format_name,
                info.codec,
                info.duration_seconds,
                info.channels,
                info.sample_rate,
            )
            # Another identical upload may have started while we probed.
            joined = await self._join(document_id, runs_unwatched=runs_unwatched, key_name=key_name)
            if joined is not None:
                return joined
            job = await self._start_new(
                key_name=key_name,
                document_id=document_id,
                name=name,
                audio_path=audio_path,
                # Whole milliseconds from the start: the live events, done and the stored
                # duration (what a cache hit answers) then all show the same total.
                total_seconds=wire_time(info.duration_seconds),
                runs_unwatched=runs_unwatched,
            )
            owned = job.audio_path == audio_path
            return job
        finally:
            if not owned:
                remove_quietly(audio_path)

    async def _join(
        self, document_id: uuid.UUID, *, runs_unwatched: bool, key_name: str
    ) -> TranscriptionJob | None:
        job = await self.registry.active_for(document_id)
        if job is None:
            return None
        logger.info("joined the running transcription %s of %s", job.id, document_id)
        if key_name != job.key_name:
            job.joined_keys.add(key_name)
        # Joined from another replica: its owner cannot count this client as a subscriber, so
        # the job must not end when its own clients leave (the owner reads the row first).
        runs_unwatched = runs_unwatched or job.remote
        if runs_unwatched and not job.runs_unwatched:
            job.runs_unwatched = True
            await self.store.update_job(job.id, runs_unwatched=True)
        return job

    async def _start_new(
        self,
        *,
        key_name: str,
        document_id: uuid.UUID,
        name: str,
        audio_path: Path,
        total_seconds: float,
        runs_unwatched: bool,
    ) -> TranscriptionJob:
        job_id = new_job_id()
        job, ticket = await self._admit(
            TranscriptionJob(
                job_id=job_id,
                log=self.new_log(job_id),
                key_name=key_name,
                document_id=document_id,
                name=name,
                total_seconds=total_seconds,
                runs_unwatched=runs_unwatched,
                audio_path=audio_path,
            )
        )
        if ticket is not None:
            self.launch(job, ticket)
        return job

    async def _admit(
        self, job: TranscriptionJob
    ) -> tuple[TranscriptionJob, AdmissionTicket | None]:
        """Reserve a place for a new job, register it and record its row.

        Returns the job and its ticket, or the unfinished job of the same document already
        registered (identical uploads share it) and None.
        """
        if not self.accepting:
            raise ShuttingDownError()
        ticket = await self._reserve(job.key_name, ticket_id=job.id)
        claimed = await self.registry.claim(job)
        if claimed is not job:
            await ticket.release()
            return claimed, None
        try:
            await self.store.insert_job(_row_of(job))
        except BaseException:
            await self.registry.remove(job)
            await ticket.release()
            raise
        return job, ticket

    def _start_recording(self, job: TranscriptionJob) -> None:
        """Its events from now on: the recorder turns its updates into numbered events."""
        job.on_unwatched = self._on_unwatched
        self._task_group.start_soon(
            partial(
                job.record_events,
                min_interval_seconds=self.settings.transcribe_sse_min_event_interval_seconds,
                progress_interval_seconds=self.settings.transcribe_sse_progress_interval_seconds,
            )
        )

    def launch(
        self,
        job: TranscriptionJob,
        ticket: AdmissionTicket,
        resume_point: ResumePoint | None = None,
    ) -> None:
        self._start_recording(job)
        self._task_group.start_soon(partial(self._run, job, ticket, resume_point=resume_point))

    async def record_cached(
        self, *, document_id: uuid.UUID, name: str, document: ASRDocument, key_name: str = ""
    ) -> StoredJob:
        """A job row that is done at once: the resource API's answer to a cache hit."""
        now = datetime.now(UTC)
        total = document.total_time or 0.0
        row = StoredJob(
            id=uuid.uuid4().hex,
            document_id=document_id,
            name=name,
            status=DONE,
            runs_unwatched=True,
            spool_path=None,
            total_seconds=total,
            current_seconds=total,
            epoch=0,
            terminal_event_id=event_id(0, 1),
            error_code=None,
            error_detail=None,
            created_at=now,
            updated_at=now,
            key_name=key_name or None,
        )
        await self.store.insert_job(row)
        return row

    async def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job: WLK closed, nothing stored, subscribers told.

        Raises:
            NotFoundError: no such transcription.
            AlreadyFinishedError: it has ended already.
        """
        found = await self.find_job(job_id)
        if isinstance(found, StoredJob):
            if found.status in FINISHED_STATUSES:
                raise AlreadyFinishedError()
            # Left unfinished by a previous process and not re-run here (yet): end it now.
            await self.store.update_job(
                found.id,
                status=CANCELLED,
                error_code=JobCancelledError.code,
                error_detail=JobCancelledError.default_detail,
                terminal_event_id=event_id(found.epoch + 1, 1),
                epoch=found.epoch + 1,
                spool_path=None,
            )
            if found.spool_path:
                remove_quietly(Path(found.spool_path))
            return
        job = found
        if job.is_terminal:
            raise AlreadyFinishedError()
        if job.remote and self.shared is not None:
            # Run by another replica: it hears the request and closes WLK; we see the end in
            # the job's stream.
            logger.info("asking the replica running %s to cancel it", job.id)
            await self.shared.request_cancel(job.id)
            with anyio.move_on_after(5):
                await job.finished.wait()
            return
        await self.cancel_here(job)

    async def cancel_by_request(self, job_id: str) -> None:
        """Another replica asks to cancel `job_id` (distributed mode): if it runs here, do so."""
        job = await self.registry.get(job_id)
        if job is not None and not job.remote and not job.is_terminal:
            await self.cancel_here(job)

    async def cancel_here(self, job: TranscriptionJob) -> None:
        """Cancel a job of this process: WLK closed, nothing stored, subscribers told."""
        logger.info("cancelling transcription %s on request", job.id)
        job.cancelled_by_request = True
        job.publish(Failed(JobCancelledError.code, JobCancelledError.default_detail))
        job.cancel_scope.cancel()
        with anyio.move_on_after(5):
            await job.finished.wait()

    def _on_unwatched(self, job: TranscriptionJob) -> None:
        """The last subscriber left: jobs that need a watcher get the detached grace."""
        if job.runs_unwatched or job.is_terminal:
            return
        grace = self.settings.transcribe_detached_grace_seconds
        if grace <= 0:
            self._cancel_unwatched(job)
            return
        logger.info("client gone; transcription %s waits %.1f s for a subscriber", job.id, grace)
        self._task_group.start_soon(self._cancel_if_still_unwatched, job, grace)

    async def _cancel_if_still_unwatched(self, job: TranscriptionJob, grace: float) -> None:
        with anyio.move_on_after(grace):
            await job.finished.wait()
        since = job.unwatched_since
        if self.shared is not None and not job.finished.is_set():
            row = await self.store.get_job(job.id)  # joined from another replica since?
            if row is not None and row.runs_unwatched:
                job.runs_unwatched = True
        if (
            job.finished.is_set()
            or job.runs_unwatched
            or job.subscribers > 0
            or since is None
            or time.monotonic() - since < grace - 0.05
        ):
            return
        self._cancel_unwatched(job)

    def _cancel_unwatched(self, job: TranscriptionJob) -> None:
        job.client_gone = True
        job.publish(Failed(JobCancelledError.code, "Every client left; transcription cancelled."))
        job.cancel_scope.cancel()

    # --- live sessions (WS /asr/live) -----------------------------------------------------
    async def _reserve(self, key_name: str, *, ticket_id: str) -> AdmissionTicket:
        """An admission ticket for `key_name`, counting a refusal at its limit in the metrics."""
        try:
            return await self.admission.reserve(key_name, ticket_id=ticket_id)
        except KeyLimitError:
            self.metrics.count_key_request(key_name, KeyLimitError.code)
            raise

    async def open_live(
        self, *, name: str, key_name: str = ""
    ) -> tuple[TranscriptionJob, AdmissionTicket]:
        """A live session's job (a fresh document id) and its admission ticket.

        The caller runs it with `run_live` and must do so (the ticket holds a place).

        Raises:
            ShuttingDownError: the process is draining.
            KeyLimitError: `key_name` holds its limit of queued and running jobs.
            QueueFullError: too many requests are already waiting.
            StorageError: the job could not be recorded.
        """
        job_id = new_job_id()
        job, ticket = await self._admit(
            TranscriptionJob(
                job_id=job_id,
                log=self.new_log(job_id),
                key_name=key_name,
                document_id=uuid.uuid4(),  # a fresh document: nobody to join
                name=name,
                total_seconds=0.0,
                runs_unwatched=True,
                live=True,
            )
        )
        assert ticket is not None
        self._start_recording(job)
        self.metrics.live_sessions.inc()
        return job, ticket

    async def run_live(
        self, job: TranscriptionJob, ticket: AdmissionTicket, control: LiveControl
    ) -> None:
        """Run a live job to its end (in the caller's task: the WebSocket handler's).

        Nothing is awaited before `_run`, whose `finally` releases the ticket and records the end:
        a cancellation at any point cannot leave the job or its slot behind.
        """
        keep_path: Path | None = None
        if self.settings.transcribe_live_keep_audio:
            keep_path = Path(self.settings.transcribe_live_audio_dir) / f"{job.document_id}.wav"
            control.audio.kept = bytearray()  # from now: what is sent while queued is kept too

        async def transcribe(on_upstream_connected: Callable[[], None]) -> ASRDocument:
            async with AsyncExitStack() as stack:
                if keep_path is not None:
                    await stack.enter_async_context(keeping_audio(control.audio, keep_path))
                return await run_live_transcription(
                    job,
                    control,
                    options=self._options,
                    store=self.store,
                    pool=self.pool,
                    on_upstream_connected=on_upstream_connected,
                )

        self.metrics.live_sessions_active.inc()
        try:
            await self._run(job, ticket, transcribe)
        finally:
            self.metrics.live_sessions_active.dec()
            if not isinstance(job.latest, Done):
                self.metrics.live_errors.inc()

    async def _run(
        self,
        job: TranscriptionJob,
        ticket: AdmissionTicket,
        transcribe: Callable[[Callable[[], None]], Awaitable[ASRDocument]] | None = None,
        *,
        resume_point: ResumePoint | None = None,
    ) -> None:
        upstream_connected = False
        audio_path = job.audio_path

        async def transcribe_file(on_upstream_connected: Callable[[], None]) -> ASRDocument:
            assert audio_path is not None
            return await run_transcription(
                job,
                audio_path,
                options=self._options,
                store=self.store,
                decode_limiter=self.decode_limiter,
                pool=self.pool,
                on_upstream_connected=on_upstream_connected,
                on_resume=self.metrics.count_resume,
                resume_point=resume_point,
            )

        transcribe = transcribe or transcribe_file

        def on_upstream_connected() -> None:
            nonlocal upstream_connected
            upstream_connected = True

        close_code: int | None = None
        try:
            with job.cancel_scope:
                try:
                    queued_at = time.monotonic()
                    if not ticket.is_granted:
                        logger.info(
                            "queued for an upstream session at position %s", ticket.position
                        )
                    await ticket.wait(
                        lambda position: job.publish(Queued(job.document_id, position))
                    )
                    admitted_at = time.monotonic()
                    self.metrics.queue_wait.observe(admitted_at - queued_at)
                    if admitted_at - queued_at > 0.01:
                        logger.info("admitted after %.2f s in the queue", admitted_at - queued_at)
                    job.status = RUNNING
                    job.updated_at = datetime.now(UTC)
                    await self.store.update_job(job.id, status=RUNNING)
                    document = await transcribe(on_upstream_connected)
                    self.metrics.observe_success(
                        processing_seconds=time.monotonic() - admitted_at,
                        audio_seconds=job.total_seconds,
                    )
                    job.publish(Done(document))
                except ShuttingDownError as exc:
                    logger.warning("left the queue: %s", exc.detail)
                    if job.runs_unwatched and not job.live:
                        job.publish(Suspended())
                    else:
                        job.publish(Failed(exc.code, exc.detail))
                except GatewayError as exc:
                    close_code = close_code_of(exc)
                    cause = exc.__cause__
                    logger.error(
                        "transcription failed: %s: %s%s",
                        exc.code,
                        exc.detail,
                        f" (cause: {type(cause).__name__}: {cause})" if cause is not None else "",
                    )
                    job.publish(Failed(exc.code, exc.detail))
                except Exception:
                    logger.exception("transcription failed with an unexpected error")
                    job.publish(Failed("INTERNAL_ERROR", "The transcription failed unexpectedly."))
                finally:
                    await ticket.release()
            if job.client_gone:
                logger.info("client gone; transcription cancelled, nothing stored")
        finally:
            if upstream_connected:
                # Every other ending (done, timeout, client gone, shutdown) is our own close.
                self.metrics.upstream_closes.labels(code=str(close_code or 1000)).inc()
            with anyio.CancelScope(shield=True):
                await self._finish(job)

    async def _finish(self, job: TranscriptionJob) -> None:
        """Record how the job ended, free its audio and registry entry; shielded, bounded."""
        if not job.is_terminal:  # cancelled without a word (the task group is going away)
            job.publish(
                Suspended()
                if job.runs_unwatched and not job.live
                else Failed(ShuttingDownError.code, ShuttingDownError.default_detail)
            )
        outcome = job.latest
        with anyio.move_on_after(5):
            await job.recorded.wait()
        terminal = job.log.latest
        values: dict[str, object] = {
            "spool_path": None,
            "current_seconds": job.current_time,
            "terminal_event_id": terminal.id if terminal is not None else None,
        }
        if isinstance(outcome, Done):
            status = DONE
            values.update(current_seconds=job.total_seconds)
        elif isinstance(outcome, Failed):
            status = CANCELLED if outcome.code == JobCancelledError.code else FAILED
            values.update(error_code=outcome.code, error_detail=outcome.detail)
        else:  # Suspended: left for the next start, audio kept
            status = QUEUED
            values = {}
        values["status"] = status
        if job.ended_by is not None and status != QUEUED:
            values["ended_by"] = job.ended_by
        try:
            with anyio.move_on_after(10):
                await self.store.update_job(job.id, **values)
        except GatewayError as exc:
            logger.error("could not record the end of transcription %s: %s", job.id, exc.detail)
        # Only now: a reader seeing a finished status finds the row up to date.
        job.status = status
        if status != QUEUED and job.audio_path is not None:
            remove_quietly(job.audio_path)
        await self.registry.remove(job)
        job.finished.set()

    # --- restarts -------------------------------------------------------------------------
    async def spool_paths_in_use(self) -> set[Path]:
        """Spooled audio that unfinished jobs still need: a spool cleanup must `keep` these.

        The jobs of this process, and the rows left unfinished that it does not run (queue full
        at startup): the next start re-runs those from their file.
        """
        paths = {job.audio_path for job in self.jobs if job.audio_path is not None}
        try:
            rows = await self.store.unfinished_jobs()
        except GatewayError as exc:
            logger.error("could not read unfinished transcriptions: %s", exc.detail)
            rows = []
        paths.update(Path(row.spool_path) for row in rows if row.spool_path)
        return paths

    # --- shutdown -------------------------------------------------------------------------
    def begin_shutdown(self, grace_seconds: float) -> None:
        """Stop accepting jobs; running ones get `grace_seconds`, then end or are left.

        Safe to call more than once (SIGTERM, then the lifespan's own shutdown).
        """
        if not self.accepting:
            return
        self.accepting = False
        logger.info(
            "shutting down: %d transcriptions running, %d queued (refused now); grace %.1f s",
            self.admission.active,
            self.admission.queued,
            grace_seconds,
        )
        self.admission.close()
        for job in self.jobs:
            if job.live and job.end_audio is not None:
                # A live session ends its audio now: WLK flushes within the grace and the
                # transcript so far is stored, rather than cut off with nothing kept.
                job.end_audio()
        self._task_group.start_soon(self._drain, grace_seconds)

    async def _drain(self, grace_seconds: float) -> None:
        with anyio.move_on_after(grace_seconds):
            await self._wait_for_jobs()
        for job in self.jobs:
            if job.runs_unwatched and not job.live:
                logger.warning("leaving transcription %s for the next start", job.id)
                job.publish(Suspended())
            else:
                logger.warning(
                    "ending transcription of %s: shutdown grace is over", job.document_id
                )
                job.publish(Failed(ShuttingDownError.code, ShuttingDownError.default_detail))
            job.cancel_scope.cancel()

    async def _wait_for_jobs(self) -> None:
        while jobs := self.jobs:
            await jobs[0].finished.wait()

    async def shutdown(self, grace_seconds: float) -> None:
        """Drain and wait until every job has ended (bounded by the grace plus a margin)."""
        self.begin_shutdown(grace_seconds)
        with anyio.move_on_after(grace_seconds + 5):
            await self._wait_for_jobs()


def _row_of(job: TranscriptionJob) -> StoredJob:
    return StoredJob(
        id=job.id,
        document_id=job.document_id,
        name=job.name,
        status=job.status,
        runs_unwatched=job.runs_unwatched,
        spool_path=str(job.audio_path) if job.audio_path is not None else None,
        total_seconds=job.total_seconds,
        current_seconds=0.0,
        epoch=job.epoch,
        terminal_event_id=None,
        error_code=None,
        error_detail=None,
        created_at=job.created_at,
        updated_at=job.created_at,
        live=job.live,
        key_name=job.key_name or None,
    )
