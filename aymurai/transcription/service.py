"""TranscriptionService: the component that owns transcriptions; HTTP routes only talk to it.

It holds the app-wide task group jobs run in, the admission queue, the decode limiter and the
store. A route asks it for a cached result, probes the upload, then `start()`s a job and subscribes
to it. Shutdown drains: no new jobs, running ones get a grace period, the rest end with
`SHUTTING_DOWN`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from functools import partial
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from pydantic import ValidationError

from aymurai.db.store import StoredTranscription, TranscriptStore
from aymurai.errors import (
    DocumentUnreadableError,
    GatewayError,
    NotFoundError,
    ShuttingDownError,
)
from aymurai.metrics import GatewayMetrics
from aymurai.settings import Settings
from aymurai.transcription.admission import AdmissionQueue, Ticket
from aymurai.transcription.decode import AudioInfo, probe_audio
from aymurai.transcription.jobs import Done, Failed, Queued, TranscriptionJob
from aymurai.transcription.pipeline import PipelineOptions, ResumeOptions, run_transcription
from aymurai.transcription.pool import UpstreamPool
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


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        logger.warning("could not remove spooled upload %s", path, exc_info=True)


class TranscriptionService:
    def __init__(
        self,
        settings: Settings,
        store: TranscriptStore,
        task_group: TaskGroup,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._task_group = task_group
        self._options = pipeline_options(settings)
        self.decode_limiter = anyio.CapacityLimiter(settings.transcribe_max_concurrent_decodes)
        self.metrics = metrics or GatewayMetrics()
        backends = settings.ws_backends
        self.admission = AdmissionQueue(
            max_active=sum(backend.max_sessions for backend in backends),
            max_queued=settings.transcribe_max_queued,
        )
        self.metrics.watch_admission(
            queued=lambda: self.admission.queued, active=lambda: self.admission.active
        )
        self.pool = UpstreamPool(
            backends,
            self._options.connection,
            probe_ttl_seconds=settings.transcribe_ws_probe_ttl_seconds,
            probe_timeout_seconds=settings.transcribe_ws_probe_timeout_seconds,
            on_capacity=self.admission.set_max_active,
            observer=self.metrics,
        )
        self.metrics.watch_backends(backends)
        # Brings down servers back (probes with backoff); ends with the task group.
        task_group.start_soon(self.pool.run_probes)
        self.jobs: set[TranscriptionJob] = set()
        self.accepting = True

    # --- reads ----------------------------------------------------------------------------
    async def find_cached(self, document_id: uuid.UUID) -> ASRDocument | None:
        """A complete stored result for these bytes, or None."""
        stored = await self.store.get(document_id)
        if stored is None or stored.transcription is None:
            self.metrics.cache_lookups.labels(result="miss").inc()
            return None
        self.metrics.cache_lookups.labels(result="hit").inc()
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

    # --- jobs -----------------------------------------------------------------------------
    def start(
        self, *, document_id: uuid.UUID, name: str, audio_path: Path, info: AudioInfo
    ) -> TranscriptionJob:
        """Queue a transcription of a spooled upload; the job owns (and deletes) the file.

        Raises:
            ShuttingDownError: the process is draining.
            QueueFullError: too many requests are already waiting.
        """
        if not self.accepting:
            raise ShuttingDownError()
        ticket = self.admission.reserve()
        job = TranscriptionJob(
            document_id=document_id, name=name, total_seconds=info.duration_seconds
        )
        self.jobs.add(job)
        self._task_group.start_soon(self._run, job, ticket, audio_path)
        return job

    async def _run(self, job: TranscriptionJob, ticket: Ticket, audio_path: Path) -> None:
        upstream_connected = False

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
                            "queued for an upstream session at position %d",
                            self.admission.position_of(ticket),
                        )
                    await ticket.wait(
                        lambda position: job.publish(Queued(job.document_id, position))
                    )
                    admitted_at = time.monotonic()
                    self.metrics.queue_wait.observe(admitted_at - queued_at)
                    if admitted_at - queued_at > 0.01:
                        logger.info("admitted after %.2f s in the queue", admitted_at - queued_at)
                    document = await run_transcription(
                        job,
                        audio_path,
                        options=self._options,
                        store=self.store,
                        decode_limiter=self.decode_limiter,
                        pool=self.pool,
                        on_upstream_connected=on_upstream_connected,
                        on_resume=self.metrics.count_resume,
                    )
                    self.metrics.observe_success(
                        processing_seconds=time.monotonic() - admitted_at,
                        audio_seconds=job.total_seconds,
                    )
                    job.publish(Done(document))
                except ShuttingDownError as exc:
                    logger.warning("left the queue: %s", exc.detail)
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
                    ticket.release()
            if job.client_gone:
                logger.info("client gone; transcription cancelled, nothing stored")
        finally:
            if upstream_connected:
                # Every other ending (done, timeout, client gone, shutdown) is our own close.
                self.metrics.upstream_closes.labels(code=str(close_code or 1000)).inc()
            _remove_quietly(audio_path)
            self.jobs.discard(job)
            job.finished.set()

    def begin_shutdown(self, grace_seconds: float) -> None:
        """Stop accepting jobs; running ones get `grace_seconds`, then end with SHUTTING_DOWN.

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
        self._task_group.start_soon(self._drain, grace_seconds)

    async def _drain(self, grace_seconds: float) -> None:
        with anyio.move_on_after(grace_seconds):
            await self._wait_for_jobs()
        for job in list(self.jobs):
            logger.warning("ending transcription of %s: shutdown grace is over", job.document_id)
            job.publish(Failed(ShuttingDownError.code, ShuttingDownError.default_detail))
            job.cancel_scope.cancel()

    async def _wait_for_jobs(self) -> None:
        while self.jobs:
            await next(iter(self.jobs)).finished.wait()

    async def shutdown(self, grace_seconds: float) -> None:
        """Drain and wait until every job has ended (bounded by the grace plus a margin)."""
        self.begin_shutdown(grace_seconds)
        with anyio.move_on_after(grace_seconds + 5):
            await self._wait_for_jobs()
