"""One transcription, end to end: decoded PCM → WLK session(s) → final document → database.

    decode (worker thread, one chunk per hop) ─pcm (≤ 4 chunks)→ session (send ⇄ WLK ⇄ read)
        → Transcribing updates (latest wins) … → final snapshot → persist → Done

The decoder starts before the WebSocket handshake so the first chunk is ready when WLK is. The
buffer between decoder and sender is small, so a slow WLK slows the decoder rather than filling
memory: memory stays flat whatever the audio length.

Resume: when a session is lost mid-file (1006, 1011, 1001, TCP reset, idle timeout, WLK's
overload close) the job reconnects, preferring another server with room (`pool.py`), and sends
the audio again from a seek point a little before the end of WLK's last line; `seam.py` joins the
transcripts. Never on a protocol, parameter or audio error: those would fail again. At most
`max_resumes` per job; the next failure ends the job as before, with nothing stored. A job
taken over from a gateway replica that died resumes the same way, from its last committed lines
(`ResumePoint`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import ObjectSendStream

from aymurai.db.store import TranscriptStore
from aymurai.errors import (
    GatewayError,
    UpstreamError,
    UpstreamServiceError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aymurai.transcription.backends import Backend
from aymurai.transcription.concurrency import open_task_group
from aymurai.transcription.decode import iter_pcm_chunks
from aymurai.transcription.jobs import Transcribing, TranscriptionJob, Upstream
from aymurai.transcription.pool import UpstreamPool
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.seam import SeamMerger
from aymurai.transcription.session import (
    SessionOptions,
    SessionProgress,
    expect_config,
    run_session,
)
from aymurai.transcription.timeline import StreamTimeline, round_ms
from aymurai.transcription.transcript import build_paragraphs
from aymurai.transcription.upstream import (
    ConnectionOptions,
    WLKConnection,
    close_code_of,
    connect_wlk,
)
from aymurai.transcription.wlk_protocol import StatusSnapshot, TranscriptLine

logger = logging.getLogger(__name__)

PCM_BUFFER_CHUNKS = 4


# Closes after which the same audio may well succeed elsewhere or later: going away (1001, a server
# restart), lost (1006), internal error (1011: keepalive timeout, PR #435 overload), restart or
# try again (1012, 1013), bad gateway (1014), and a normal close that came before `ready_to_stop`.
# Not 1002/1003/1007/1008/1009/1010 (the same bytes would fail again) nor 4xxx (WLK's own
# protocol and parameter errors).
RESUMABLE_CLOSE_CODES = frozenset({1000, 1001, 1006, 1011, 1012, 1013, 1014})
RECONNECT_BACKOFF_INITIAL_SECONDS = 0.25
RECONNECT_BACKOFF_MAX_SECONDS = 5.0


@dataclass(frozen=True)
class ResumeOptions:
    max_resumes: int = 3
    overlap_seconds: float = 2.0
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class PipelineOptions:
    connection: ConnectionOptions
    session: SessionOptions
    chunk_seconds: float = 1.0
    resume: ResumeOptions = field(default_factory=ResumeOptions)
    keep_punctuation_only: bool = False
    max_audio_seconds: float | None = None


@dataclass(frozen=True)
class ResumePoint:
    """Where a job taken over from a replica that died goes on (distributed mode).

    `lines` are the transcript lines the dead replica's clients had seen as committed, in file
    time; `heard_until` is how far into the file it had got. The job resumes as after an upstream
    failure: from a seek point a little before the end of those lines (`seam.py`).
    """

    lines: tuple[TranscriptLine, ...]
    heard_until: float


def resume_point_of(document: ASRDocument) -> ResumePoint | None:
    """The resume point of a job whose newest state was `document` (None: start over).

    Its last paragraph may hold words WLK had not committed yet (its tail): they are heard again.
    """
    paragraphs = document.document[:-1]
    if not paragraphs or not document.current_time:
        return None
    lines = tuple(
        TranscriptLine(
            speaker=p.speaker_no,
            text=p.text,
            start=p.start,
            end=p.end,
            language=p.language,
        )
        for p in paragraphs
    )
    return ResumePoint(lines=lines, heard_until=document.current_time)


async def persist_document(
    store: TranscriptStore, job: TranscriptionJob, paragraphs: list[ASRParagraph], total: float
) -> ASRDocument:
    """Store a job's final paragraphs (`total` seconds of audio); the document `done` carries.

    Raises:
        StorageError: the result could not be stored.
    """
    await store.save_transcription(
        document_id=job.document_id,
        name=job.name,
        duration_seconds=total,
        paragraphs=[p.model_dump(mode="json") for p in paragraphs],
    )
    return ASRDocument(
        document_id=job.document_id, document=paragraphs, current_time=total, total_time=total
    )


def is_resumable(exc: BaseException) -> bool:
    """A mid-file loss of the session (see RESUMABLE_CLOSE_CODES) or WLK going silent."""
    if isinstance(exc, UpstreamTimeoutError):
        return True
    if isinstance(exc, UpstreamServiceError):
        return close_code_of(exc) in RESUMABLE_CLOSE_CODES
    return False


async def pump_pcm(
    path: Path,
    outbound: ObjectSendStream[bytes],
    *,
    chunk_seconds: float,
    limiter: anyio.CapacityLimiter,
    max_seconds: float | None = None,
    start_seconds: float = 0.0,
) -> None:
    """Decode `path` from `start_seconds` chunk by chunk in worker threads, sending downstream.

    Past `max_seconds` of decoded audio it raises AudioTooLongError (the header may have lied).
    """
    chunks = iter_pcm_chunks(
        path, chunk_seconds=chunk_seconds, max_seconds=max_seconds, start_seconds=start_seconds
    )
    try:
        async with outbound:
            while True:
                chunk = await anyio.to_thread.run_sync(next, chunks, None, limiter=limiter)
                if chunk is None:
                    return
                try:
                    await outbound.send(chunk)
                except anyio.BrokenResourceError:
                    return  # the session ended (failed or cancelled): its error is the story
    finally:
        # Frees the container at once; the generator is never running here because each
        # thread hop completes before cancellation is delivered.
        chunks.close()


@dataclass
class _Attempt:
    """What the job knows about its current session."""

    backend: Backend | None = None
    last_merged: StatusSnapshot | None = None
    sent_seconds: float = 0.0
    connected: bool = False


async def _release_shielded(pool: UpstreamPool, backend: Backend) -> None:
    with anyio.CancelScope(shield=True):  # a cancelled job (client gone) still frees its slot
        await pool.release(backend)


async def open_upstream(
    pool: UpstreamPool,
    stack: AsyncExitStack,
    *,
    config_timeout_seconds: float,
    deadline: float,
    avoid_first: frozenset[str] = frozenset(),
    retry: bool,
) -> tuple[Backend, WLKConnection]:
    """Lease a slot and open a session whose config says `--pcm-input`; closed by `stack`.

    A server that refuses (or sends no config) is recorded as failing and the next one is tried.
    Without `retry` (a job's first session) each server is tried once and the last refusal is
    raised; with `retry` (a resume) servers are tried again after a growing backoff, the ones in
    `avoid_first` (the one that just failed) only after a first backoff, until `deadline`.

    Raises:
        UpstreamUnavailableError: no server accepted a session in time.
        UpstreamServiceError, UpstreamProtocolError: see `expect_config` (not retried).
    """
    now = anyio.current_time()
    retry_at = dict.fromkeys(avoid_first, now + RECONNECT_BACKOFF_INITIAL_SECONDS)
    backoff = RECONNECT_BACKOFF_INITIAL_SECONDS
    last_error: UpstreamError | None = None
    while True:
        now = anyio.current_time()
        blocked = frozenset(name for name, at in retry_at.items() if at > now)
        backend = await pool.lease(avoid=blocked)
        if backend is None:
            if not retry and last_error is not None:
                raise last_error
            if now >= deadline:
                raise last_error or UpstreamUnavailableError(
                    "No speech recognition server had room for the session in time."
                )
            wake = min([at for at in retry_at.values() if at > now] + [deadline])
            await pool.wait_for_change(max(0.01, wake - now))
            continue
        async with AsyncExitStack() as attempt:
            attempt.push_async_callback(_release_shielded, pool, backend)
            try:
                connection = await attempt.enter_async_context(
                    connect_wlk(pool.connection_options(backend))
                )
                await expect_config(connection, config_timeout_seconds)
            except UpstreamUnavailableError as exc:
                logger.warning("upstream %s refused the session: %s", backend.name, exc.detail)
                await pool.record_failure(backend, exc)
                last_error = exc
                retry_at[backend.name] = math.inf if not retry else now + backoff
                backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX_SECONDS)
                continue
            await pool.record_success(backend)
            stack.push_async_callback(attempt.pop_all().aclose)
            return backend, connection


async def run_transcription(
    job: TranscriptionJob,
    audio_path: Path,
    *,
    options: PipelineOptions,
    store: TranscriptStore,
    decode_limiter: anyio.CapacityLimiter,
    pool: UpstreamPool,
    on_upstream_connected: Callable[[], None] | None = None,
    on_resume: Callable[[Backend], None] | None = None,
    resume_point: ResumePoint | None = None,
) -> ASRDocument:
    """Transcribe one spooled upload and persist the complete result.

    Publishes `Transcribing` updates on `job` as WLK's snapshots arrive (current_time never
    decreases and never exceeds total_time), and `Upstream` updates while resuming. Every time
    published or stored is in whole milliseconds, and paragraph times never go backwards, the
    final document included (`StreamTimeline`).

    Raises:
        InvalidAudioError: the audio fails to decode midway.
        UpstreamError: see `open_upstream` and `run_session`; after `max_resumes` resumes, the
            failure that was not resumed.
        StorageError: the result could not be stored.
    """
    total = round_ms(job.total_seconds)
    current_time = 0.0
    timeline = StreamTimeline()
    keep_punctuation_only = options.keep_punctuation_only

    def paragraphs_of(snapshot: StatusSnapshot | None, tail_end: float) -> list[ASRParagraph]:
        built = build_paragraphs(
            snapshot, tail_end=tail_end, keep_punctuation_only=keep_punctuation_only
        )
        return timeline.apply(built)

    started = time.monotonic()
    first_snapshot_logged = False
    merger = SeamMerger()
    attempt = _Attempt()

    published_key: tuple[object, ...] | None = None

    def on_progress(progress: SessionProgress) -> None:
        nonlocal current_time, first_snapshot_logged, published_key
        offset = merger.offset_seconds
        # Held at the seam until the new session passes it: clients never see time go back.
        current_time = round_ms(min(total, max(current_time, offset + progress.processed_seconds)))
        snapshot = merger.merge(progress.snapshot, processed_seconds=progress.processed_seconds)
        assert snapshot is not None
        attempt.last_merged = snapshot
        attempt.sent_seconds = progress.sent_seconds
        if not first_snapshot_logged and snapshot.lines:
            first_snapshot_logged = True
            logger.info("first transcript from WLK after %.2f s", time.monotonic() - started)
        # WLK re-sends when only its lag counters move; clients hear only about real changes.
        key = (snapshot.lines, snapshot.tail_text, current_time)
        if key != published_key:
            published_key = key
            # Tail words end where the sound WLK processed ends, not inside a pause it is
            # processing: StreamTimeline never takes a published end back, so an end inside the
            # pause would stay in `done` once WLK commits the words (issue 11: times within a
            # chunk of a run without a failure, whose tail may have been seen at another moment).
            tail_end = current_time
            if progress.audible_until_seconds is not None:
                tail_end = round_ms(min(current_time, offset + progress.audible_until_seconds))
            paragraphs = tuple(paragraphs_of(snapshot, tail_end))
            job.publish(Transcribing(job.document_id, snapshot, current_time, total, paragraphs))

    async def run_attempt(*, retry: bool, avoid_first: frozenset[str]) -> StatusSnapshot | None:
        seek = merger.offset_seconds
        send_pcm, receive_pcm = anyio.create_memory_object_stream[bytes](PCM_BUFFER_CHUNKS)
        # Closing the receive end (also on failure) is what stops a decoder blocked on `send`.
        with receive_pcm:
            async with open_task_group() as group:
                group.start_soon(
                    lambda: pump_pcm(
                        audio_path,
                        send_pcm,
                        chunk_seconds=options.chunk_seconds,
                        max_seconds=options.max_audio_seconds,
                        limiter=decode_limiter,
                        start_seconds=seek,
                    )
                )
                async with AsyncExitStack() as stack:
                    backend, connection = await open_upstream(
                        pool,
                        stack,
                        config_timeout_seconds=options.session.config_timeout_seconds,
                        deadline=anyio.current_time() + options.resume.timeout_seconds,
                        avoid_first=avoid_first,
                        retry=retry,
                    )
                    attempt.backend = backend
                    attempt.connected = True
                    logger.info("upstream connected: %s (from %.2f s)", backend.name, seek)
                    if on_upstream_connected is not None:
                        on_upstream_connected()
                    if merger.seam is not None:
                        job.publish(Upstream(job.document_id, "resumed", resumes, seek))
                    final = await run_session(
                        connection,
                        receive_pcm,
                        options=options.session,
                        on_progress=on_progress,
                        config_received=True,
                    )
                group.cancel_scope.cancel()  # the decoder has finished already
        return final

    if resume_point is not None:
        # Taken over from a replica that died: go on as after an upstream failure there.
        seam = merger.resume(
            StatusSnapshot(status="active_transcription", lines=resume_point.lines),
            sent_seconds=min(total, resume_point.heard_until),
            overlap_seconds=options.resume.overlap_seconds,
        )
        current_time = seam.seek_seconds
        logger.info("taken over: resuming from %.2f s of the file", seam.seek_seconds)
        job.publish(Upstream(job.document_id, "reconnecting", 0, seam.seek_seconds))
        kept = merger.merge(None)
        job.publish(
            Transcribing(
                job.document_id, kept, current_time, total, tuple(paragraphs_of(kept, 0.0))
            )
        )
    else:
        job.publish(Transcribing(job.document_id, None, 0.0, total))
    resumes = 0
    avoid: frozenset[str] = frozenset()
    while True:
        attempt.backend, attempt.connected = None, False
        try:
            final = await run_attempt(retry=resumes > 0, avoid_first=avoid)
            break
        except GatewayError as exc:
            failed = attempt.backend
            if failed is None or not attempt.connected or not is_resumable(exc):
                raise
            assert isinstance(exc, UpstreamError)
            await pool.record_failure(failed, exc)
            if resumes >= options.resume.max_resumes:
                if resumes:
                    logger.warning("giving up after %d resumes", resumes)
                raise
            resumes += 1
            seam = merger.resume(
                attempt.last_merged,
                sent_seconds=attempt.sent_seconds,
                overlap_seconds=options.resume.overlap_seconds,
            )
            attempt.last_merged, attempt.sent_seconds = None, 0.0
            logger.warning(
                "upstream %s lost mid-file (%s, close code %s); resume %d of %d from %.2f s",
                failed.name,
                exc.code,
                close_code_of(exc),
                resumes,
                options.resume.max_resumes,
                seam.seek_seconds,
            )
            if on_resume is not None:
                on_resume(failed)
            job.publish(Upstream(job.document_id, "reconnecting", resumes, seam.seek_seconds))
            avoid = frozenset({failed.name})

    final_merged = merger.merge(final, processed_seconds=max(0.0, total - merger.offset_seconds))
    paragraphs = paragraphs_of(final_merged, total)
    document = await persist_document(store, job, paragraphs, total)
    logger.info(
        "transcription done: %.1f s of audio in %.1f s, %d paragraphs, %d resumes",
        total,
        time.monotonic() - started,
        len(paragraphs),
        resumes,
    )
    return document
