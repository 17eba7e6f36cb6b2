"""Live audio: a client's microphone through the gateway to WLK, as a job (`WS /asr/live`).

    client frames ─(pcm: rechunk | webm: GrowingBuffer → decoder thread)→ LiveAudio (bounded)
        → run_session (the same WLK session driver as files) → Transcribing updates → job events
        → final snapshot → persist under a fresh document id → Done

A live session is a `TranscriptionJob` (`live=True`): the same admission ticket, recorder, event
log and followers as an upload; its recorder also appends a `line` event for each paragraph that
is final. Audio the client sends while queued waits in `LiveAudio`, up to the buffer limit;
nothing here ever holds more than that (`LiveAudio` refuses, the caller closes the socket).

This module does no WebSocket I/O with the client: the route (`api/routes/live.py`) feeds
`LiveAudio` and forwards the job's events.
"""

from __future__ import annotations

import logging
import math
import time
import wave
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aymurai.db.store import TranscriptStore
from aymurai.errors import UpstreamError
from aymurai.transcription.backends import Backend
from aymurai.transcription.concurrency import open_task_group
from aymurai.transcription.jobs import Transcribing, TranscriptionJob
from aymurai.transcription.pipeline import (
    PipelineOptions,
    is_resumable,
    open_upstream,
    persist_document,
)
from aymurai.transcription.pool import UpstreamPool
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.session import PCM_BYTES_PER_SECOND, SessionProgress, run_session
from aymurai.transcription.timeline import StreamTimeline, round_ms
from aymurai.transcription.transcript import build_paragraphs
from aymurai.transcription.wlk_protocol import StatusSnapshot

logger = logging.getLogger(__name__)

# WLK's own browser client sends about every 100 ms: chunks of that size keep latency low and
# let the buffer count seconds by counting chunks.
LIVE_CHUNK_SECONDS = 0.1
LIVE_CHUNK_BYTES = round(LIVE_CHUNK_SECONDS * PCM_BYTES_PER_SECOND)
# WLK behind the audio by more than this is reported to the client (`lag`).
LAG_REPORT_SECONDS = 3.0
# Backpressure: audio faster than this many times real time, sustained over the window, is refused.
MAX_RATE_RATIO = 2.0
RATE_WINDOW_SECONDS = 10.0
# Undecoded WebM kept at most (Opus at 32 kb/s: minutes; a client flooding us is refused).
MAX_WEBM_BUFFER_BYTES = 4 * 1024 * 1024

ENDED_BY_CLIENT = "client"
ENDED_BY_DISCONNECT = "disconnect"


class RateGuard:
    """Is the audio arriving faster than `max_ratio` × real time over the last `window_seconds`?

    Samples (time, cumulative audio seconds) once per `window / 10` and compares the audio of the
    last window with its wall time: a client may catch up on a short hiccup (up to
    `window × (max_ratio − 1)` seconds of audio ahead), never stream faster for long.
    """

    def __init__(
        self, *, max_ratio: float = MAX_RATE_RATIO, window_seconds: float = RATE_WINDOW_SECONDS
    ) -> None:
        self.max_ratio = max_ratio
        self.window_seconds = window_seconds
        self.audio_seconds = 0.0
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, audio_seconds: float, now: float) -> bool:
        """Count `audio_seconds` received at `now`; True when the rate is too high."""
        self.audio_seconds += audio_seconds
        samples = self._samples
        if not samples or now - samples[-1][0] >= self.window_seconds / 10:
            samples.append((now, self.audio_seconds - audio_seconds))
        # Keep the newest sample at least a window old, and everything after it.
        while len(samples) > 1 and now - samples[1][0] >= self.window_seconds:
            samples.popleft()
        then, audio_then = samples[0]
        elapsed = now - then
        if elapsed < self.window_seconds:
            return False
        return self.audio_seconds - audio_then > self.max_ratio * elapsed


class Rechunker:
    """Client frames of any size → PCM chunks of `LIVE_CHUNK_BYTES` (the rest at the end)."""

    def __init__(self, chunk_bytes: int = LIVE_CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        size = self.chunk_bytes
        count = len(self._pending) // size
        chunks = [bytes(self._pending[i * size : (i + 1) * size]) for i in range(count)]
        del self._pending[: count * size]
        return chunks

    def flush(self) -> bytes:
        # Whole samples only: an odd trailing byte is not audio.
        rest = bytes(self._pending[: len(self._pending) // 2 * 2])
        self._pending.clear()
        return rest


class LiveAudio:
    """The PCM between the client and the WLK session: at most `max_seconds` of it waits here.

    `put()` never blocks: False means the buffer is full (queued too long, or WLK too slow).
    """

    def __init__(self, *, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        chunks = max(1, math.ceil(max_seconds / LIVE_CHUNK_SECONDS))
        send, receive = anyio.create_memory_object_stream[bytes](chunks)
        self._send: MemoryObjectSendStream[bytes] = send
        self.receive: MemoryObjectReceiveStream[bytes] = receive
        self.accepted_seconds = 0.0
        self.ended = False
        # The audio to keep (TRANSCRIBE_LIVE_KEEP_AUDIO), taken out about once a second.
        self.kept: bytearray | None = None

    def put(self, chunk: bytes) -> bool:
        if self.ended:
            return True  # after the end (or once the session is gone): nothing to keep
        try:
            self._send.send_nowait(chunk)
        except anyio.WouldBlock:
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return True
        self.accepted_seconds += len(chunk) / PCM_BYTES_PER_SECOND
        if self.kept is not None:
            self.kept += chunk
        return True

    def end(self) -> None:
        """End of audio: the session sends WLK its empty frame once the buffer is drained."""
        self.ended = True
        self._send.close()

    def close(self) -> None:
        """Free both ends (the session may never have started: refused, cancelled while queued)."""
        self.ended = True
        self._send.close()
        self.receive.close()

    @property
    def buffered_seconds(self) -> float:
        used: int = self._send.statistics().current_buffer_used
        return used * LIVE_CHUNK_SECONDS


KEEP_FLUSH_SECONDS = 1.0


@asynccontextmanager
async def keeping_audio(audio: LiveAudio, path: Path) -> AsyncIterator[None]:
    """Write what `audio` accepts to the WAV file `path` (in worker threads, once a second)."""
    if audio.kept is None:
        audio.kept = bytearray()  # before any await: the client may be sending already
    try:
        writer = await anyio.to_thread.run_sync(_open_wav, path)
    except OSError as exc:
        # The transcript matters more than the recording: go on without keeping it.
        logger.error("cannot keep the live audio in %s: %s", path, exc)
        audio.kept = None
        yield
        return

    async def flush() -> None:
        kept = audio.kept
        if kept:
            data = bytes(kept)
            kept.clear()
            # Taken out of `kept`, it must reach the file: a cancellation (the session ending
            # during a periodic flush) at the thread call's first checkpoint would lose it.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(writer.writeframesraw, data)

    async def flush_every_second() -> None:
        while True:
            await anyio.sleep(KEEP_FLUSH_SECONDS)
            await flush()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(flush_every_second)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await flush()
            audio.kept = None
            await anyio.to_thread.run_sync(writer.close)
        logger.info("live audio kept in %s", path)


def _open_wav(path: Path) -> wave.Wave_write:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = wave.open(str(path), "wb")
    writer.setnchannels(1)
    writer.setsampwidth(2)
    writer.setframerate(16000)
    return writer


@dataclass
class LiveControl:
    """What the client side tells the pipeline, and what the pipeline reports back."""

    audio: LiveAudio
    # Set when the client vanished: stop at once and store what WLK has recognised so far.
    stop: anyio.Event
    on_lag: Callable[[float], None] | None = None


async def run_live_transcription(
    job: TranscriptionJob,
    control: LiveControl,
    *,
    options: PipelineOptions,
    store: TranscriptStore,
    pool: UpstreamPool,
    on_upstream_connected: Callable[[], None] | None = None,
) -> ASRDocument:
    """Stream the client's audio through one WLK session; persist and return the document.

    The session is leased from `pool` like a file's (per-server caps, failover at connect). Ends
    at the end of audio (WLK's final flush), or at once when `control.stop` is set (the latest
    snapshot is what is stored). No resume mid-session: the audio already sent is gone.
    `job.total_seconds` becomes the audio's length.

    Raises:
        UpstreamError: see `open_upstream` and `run_session`.
        StorageError: the result could not be stored.
    """
    audio = control.audio
    current_time = 0.0
    latest: StatusSnapshot | None = None
    started = time.monotonic()
    timeline = StreamTimeline()

    def paragraphs_of(snapshot: StatusSnapshot | None, tail_end: float) -> list[ASRParagraph]:
        built = build_paragraphs(
            snapshot, tail_end=tail_end, keep_punctuation_only=options.keep_punctuation_only
        )
        return timeline.apply(built)

    def on_progress(progress: SessionProgress) -> None:
        nonlocal current_time, latest
        latest = progress.snapshot
        total = round_ms(max(current_time, progress.sent_seconds))
        current_time = round_ms(min(total, max(current_time, progress.processed_seconds)))
        job.total_seconds = total
        paragraphs = tuple(paragraphs_of(progress.snapshot, current_time))
        job.publish(
            Transcribing(job.document_id, progress.snapshot, current_time, total, paragraphs)
        )
        lag = progress.sent_seconds - progress.processed_seconds
        if control.on_lag is not None and lag > LAG_REPORT_SECONDS:
            control.on_lag(lag)

    job.publish(Transcribing(job.document_id, None, 0.0, 0.0))
    final: StatusSnapshot | None = None
    backend: Backend | None = None
    with audio.receive:
        with anyio.CancelScope() as stop_scope:
            async with open_task_group() as group:

                async def cancel_on_stop() -> None:
                    await control.stop.wait()
                    logger.info("client gone: closing the WLK session, keeping the transcript")
                    stop_scope.cancel()

                group.start_soon(cancel_on_stop)
                try:
                    async with AsyncExitStack() as stack:
                        backend, connection = await open_upstream(
                            pool,
                            stack,
                            config_timeout_seconds=options.session.config_timeout_seconds,
                            deadline=anyio.current_time() + options.resume.timeout_seconds,
                            retry=False,
                        )
                        logger.info("upstream connected: %s (live)", backend.name)
                        if on_upstream_connected is not None:
                            on_upstream_connected()
                        final = await run_session(
                            connection,
                            audio.receive,
                            options=options.session,
                            on_progress=on_progress,
                            config_received=True,
                        )
                except UpstreamError as exc:
                    if backend is not None and is_resumable(exc):
                        # The server lost the session: the pool routes the next ones elsewhere.
                        await pool.record_failure(backend, exc)
                    raise
                group.cancel_scope.cancel()
        if stop_scope.cancelled_caught:
            final = latest
    audio.ended = True
    total = round_ms(audio.accepted_seconds)
    job.total_seconds = total
    paragraphs = paragraphs_of(final, total)
    with anyio.CancelScope(shield=True):
        document = await persist_document(store, job, paragraphs, total)
    logger.info(
        "live transcription done: %.1f s of audio in %.1f s, %d paragraphs",
        total,
        time.monotonic() - started,
        len(paragraphs),
    )
    return document
