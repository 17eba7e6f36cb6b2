"""One transcription, end to end: decoded PCM → WLK session → final document → database.

    decode (worker thread, one chunk per hop) ─pcm (≤ 4 chunks)→ session (send ⇄ WLK ⇄ read)
        → Transcribing updates (latest wins) … → final snapshot → persist → Done

The decoder starts before the WebSocket handshake so the first chunk is ready when WLK is. The
buffer between decoder and sender is small, so a slow WLK slows the decoder rather than filling
memory: memory stays flat whatever the audio length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import ObjectSendStream

from aymurai.db.store import TranscriptStore
from aymurai.transcription.concurrency import open_task_group
from aymurai.transcription.decode import iter_pcm_chunks
from aymurai.transcription.jobs import Transcribing, TranscriptionJob
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.session import SessionOptions, SessionProgress, run_session
from aymurai.transcription.timeline import StreamTimeline, round_ms
from aymurai.transcription.transcript import build_paragraphs
from aymurai.transcription.upstream import ConnectionOptions, connect_wlk
from aymurai.transcription.wlk_protocol import StatusSnapshot

logger = logging.getLogger(__name__)

PCM_BUFFER_CHUNKS = 4


@dataclass(frozen=True)
class PipelineOptions:
    connection: ConnectionOptions
    session: SessionOptions
    chunk_seconds: float = 1.0
    keep_punctuation_only: bool = False
    max_audio_seconds: float | None = None


async def pump_pcm(
    path: Path,
    outbound: ObjectSendStream[bytes],
    *,
    chunk_seconds: float,
    limiter: anyio.CapacityLimiter,
    max_seconds: float | None = None,
) -> None:
    """Decode `path` chunk by chunk in worker threads and send the chunks downstream.

    Past `max_seconds` of decoded audio it raises AudioTooLongError (the header may have lied).
    """
    chunks = iter_pcm_chunks(path, chunk_seconds=chunk_seconds, max_seconds=max_seconds)
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


async def run_transcription(
    job: TranscriptionJob,
    audio_path: Path,
    *,
    options: PipelineOptions,
    store: TranscriptStore,
    decode_limiter: anyio.CapacityLimiter,
    on_upstream_connected: Callable[[], None] | None = None,
) -> ASRDocument:
    """Transcribe one spooled upload and persist the complete result.

    Publishes `Transcribing` updates on `job` as WLK's snapshots arrive (current_time never
    decreases and never exceeds total_time). Every time published or stored is in whole
    milliseconds, and paragraph times never go backwards, the final document included
    (`StreamTimeline`).

    Raises:
        InvalidAudioError: the audio fails to decode midway.
        UpstreamError: see `connect_wlk` and `run_session`.
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

    published_key: tuple[object, ...] | None = None

    def on_progress(progress: SessionProgress) -> None:
        nonlocal current_time, first_snapshot_logged, published_key
        current_time = round_ms(min(total, max(current_time, progress.processed_seconds)))
        snapshot = progress.snapshot
        if not first_snapshot_logged and snapshot.lines:
            first_snapshot_logged = True
            logger.info("first transcript from WLK after %.2f s", time.monotonic() - started)
        # WLK re-sends when only its lag counters move; clients hear only about real changes.
        key = (snapshot.lines, snapshot.tail_text, current_time)
        if key != published_key:
            published_key = key
            paragraphs = tuple(paragraphs_of(snapshot, current_time))
            job.publish(Transcribing(job.document_id, snapshot, current_time, total, paragraphs))

    job.publish(Transcribing(job.document_id, None, 0.0, total))
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
                )
            )
            async with connect_wlk(options.connection) as connection:
                logger.info("upstream connected")
                if on_upstream_connected is not None:
                    on_upstream_connected()
                final = await run_session(
                    connection, receive_pcm, options=options.session, on_progress=on_progress
                )
            group.cancel_scope.cancel()  # the decoder has finished already

    paragraphs = paragraphs_of(final, total)
    document = ASRDocument(
        document_id=job.document_id, document=paragraphs, current_time=total, total_time=total
    )
    await store.save_transcription(
        document_id=job.document_id,
        name=job.name,
        duration_seconds=total,
        paragraphs=[p.model_dump(mode="json") for p in paragraphs],
    )
    logger.info(
        "transcription done: %.1f s of audio in %.1f s, %d paragraphs",
        total,
        time.monotonic() - started,
        len(paragraphs),
    )
    return document
