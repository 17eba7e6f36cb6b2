"""One simulated WLK session: the receive loop, the processing task and the snapshot emitter.

Shape of the real per-session pipeline (protocol reference §2, §3, §5, §7), much simplified:

* **Receive** (the connection handler itself): binary frames only. Each frame is appended to a
  pending buffer and at most 5 s of it is handed to the "ASR" per frame, like the real
  ``max_bytes_per_sec`` cap; the excess waits for later frames. ``b""`` ends the stream. A text
  frame tears the session down silently, without a close frame, as real WLK does when
  ``receive_bytes()`` meets text. Audio after ``b""`` is ignored (but recorded). The loop keeps
  reading until the client closes, because the real server never closes the socket itself.
* **Process**: cuts the handed-over audio into 0.5 s windows on the audio clock and sleeps
  ``window / speed`` per window before recognizing it, so processing runs at ``speed`` × real
  time without blocking the event loop. At end of stream, 0.2.17 drops whatever is not yet
  processed (the sub-window tail and the pending excess) and leaves its buffers as they are;
  0.2.26 processes everything and commits it into lines.
* **Emit**: every ``snapshot_interval_seconds``, sends the snapshot if it changed. When processing
  is done it sends the final snapshot (always, even if unchanged) and then ``ready_to_stop``.

All messages leave through the emitter (or before it starts), so their order is the real one.
Faults are injected at the points where the real failures happen; see ``options.Fault``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from aymurai.simulator.options import Fault, SessionOptions
from aymurai.simulator.protocol import (
    JsonObject,
    Lags,
    build_config,
    build_error_message,
    build_error_snapshot,
    build_initial_snapshot,
    build_ready_to_stop,
    build_transcript_snapshot,
)
from aymurai.simulator.recognizer import (
    BYTES_PER_SECOND,
    WINDOW_BYTES,
    is_tail_long_enough,
    recognize_window,
)
from aymurai.simulator.record import SessionRecord
from aymurai.simulator.transcript import Transcript

logger = logging.getLogger(__name__)

# The real servers consume at most 5 s of PCM per received frame (max_bytes_per_sec = 32000 * 5).
MAX_BYTES_PER_FRAME = 5 * BYTES_PER_SECOND
FFMPEG_ERROR = (
    "FFmpeg error: simulated decoder failure (pipe:0: Invalid data found when processing input)"
)
PARAMETER_ERROR = "Unsupported language: 'xx' (simulated session-parameter error)"
CLOSE_REASON_1011 = "simulated internal server error"
OVERLOAD_ERROR = "Audio queue full for 30 s: the server is overloaded (simulated)"
# Sent before snapshots under Fault.MALFORMED_JSON: one frame that is not JSON at all, one that is
# JSON of a type no WLK version sends.
MALFORMED_FRAMES = (
    "<<not json: simulated garbage>>",
    '{"type":"simulator_noise","detail":"unknown"}',
)


class Session:
    """Drives one accepted connection until the client closes it."""

    def __init__(
        self,
        connection: ServerConnection,
        options: SessionOptions,
        record: SessionRecord,
        stopping: asyncio.Event,
        claim_fault: Callable[[], bool] = lambda: True,
    ) -> None:
        self._connection = connection
        self._options = options
        self._profile = options.profile
        self._record = record
        self._stopping = stopping
        self._claim_fault = claim_fault  # False once the simulator fired it `fault_times` times
        self._transcript = Transcript(
            pause_seconds=options.pause_seconds,
            diarization=options.diarization,
            show_ongoing_pause=self._profile.show_ongoing_pause,
            punctuation_in_pauses=options.punctuation_in_pauses,
        )
        self._pending = bytearray()  # the real pcm_buffer: received, beyond the 5 s per frame cap
        self._asr_audio = bytearray()  # handed to the ASR, on the audio clock
        self._processed_bytes = 0
        # Start of the pause being processed now (None in speech). Real WLK's VAD holds its
        # "processed" clock at the start of an ongoing pause until speech resumes.
        self._pause_since: float | None = None
        self._first_audio_at: float | None = None
        self._ended = False
        self._live = True  # False once torn down or faulted: audio is then only recorded
        self._error: str | None = None
        self._fault_fired = False
        self._audio_arrived = asyncio.Event()
        self._done = asyncio.Event()
        self._running = asyncio.Event()  # cleared while stalled: nothing moves
        self._running.set()
        self._workers: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        """Serve the session; returns once the connection is closed."""
        if self._options.fault is Fault.ERROR_MESSAGE:
            await self._send_quietly(build_error_message(PARAMETER_ERROR))
            await self._connection.close(4400, "invalid session parameters")
            return
        if not await self._send_quietly(
            build_config(self._profile, use_audio_worklet=self._options.sends_worklet_config)
        ):
            return
        initial = build_initial_snapshot(self._profile)
        if not await self._send_quietly(initial):
            return
        async with asyncio.TaskGroup() as group:
            self._workers = [
                group.create_task(self._process()),
                group.create_task(self._emit(initial)),
            ]
            try:
                await self._receive()
            finally:
                self._stop_workers()

    # Receive ------------------------------------------------------------------------------

    async def _receive(self) -> None:
        while True:
            try:
                message = await self._connection.recv()
            except ConnectionClosed:
                return
            if isinstance(message, str):
                self._on_text(message)
            else:
                await self._on_binary(message)

    def _on_text(self, message: str) -> None:
        self._record.text_frames.append(message)
        if self._live:
            logger.info("session %s: text frame, ending the session silently", self._index)
            self._live = False
            self._stop_workers()

    async def _on_binary(self, message: bytes) -> None:
        record = self._record
        record.frame_sizes.append(len(message))
        record.max_frame_bytes = max(record.max_frame_bytes, len(message))
        if not message:
            record.empty_frames += 1
        if self._ended:
            record.frames_after_end += 1
            return
        if not message:
            self._ended = True
            record.end_frame_at = time.monotonic()
            self._audio_arrived.set()
            return
        record.pcm.extend(message)
        # How far the client runs ahead of processing: what a pacing client must bound.
        lead = (len(record.pcm) - self._processed_bytes) / BYTES_PER_SECOND
        record.max_lead_seconds = max(record.max_lead_seconds, lead)
        if self._first_audio_at is None:
            self._first_audio_at = time.monotonic()
        if not self._live:
            return
        if not self._options.sends_worklet_config:
            # The real server would pipe these bytes to FFmpeg, which cannot probe raw PCM.
            self._fail_with_error_status()
            return
        self._pending.extend(message)
        take = min(len(self._pending), MAX_BYTES_PER_FRAME)
        self._asr_audio.extend(self._pending[:take])
        del self._pending[:take]
        self._audio_arrived.set()
        if (
            not self._fault_fired
            and self._options.fault is not None
            and record.audio_seconds >= self._options.fault_after_seconds
        ):
            self._fault_fired = True
            if self._claim_fault():
                record.fault_fired = True
                logger.info(
                    "session %s: firing %s after %.2f s of audio",
                    self._index,
                    self._options.fault.value,
                    record.audio_seconds,
                )
                await self._fire_fault(self._options.fault)

    async def _fire_fault(self, fault: Fault) -> None:
        if fault is Fault.CLOSE_1011:
            self._live = False
            self._stop_workers()
            await self._connection.close(1011, CLOSE_REASON_1011)
        elif fault is Fault.TCP_DROP:
            self._live = False
            self._stop_workers()
            self._connection.transport.abort()
        elif fault is Fault.ERROR_STATUS:
            self._fail_with_error_status()
        elif fault is Fault.STALL:
            await self._stall()
        elif fault is Fault.OVERLOAD:
            self._live = False
            self._stop_workers()
            await self._send_quietly(build_error_message(OVERLOAD_ERROR))
            await self._connection.close(1011, OVERLOAD_ERROR)

    def _fail_with_error_status(self) -> None:
        self._live = False
        self._error = FFMPEG_ERROR
        self._workers[0].cancel()  # the processor: no more transcript
        self._done.set()

    async def _stall(self) -> None:
        # Not reading the transport also means not answering pings, as in a real event-loop stall;
        # the emitter and processor wait too. Ends early when the simulator stops, so shutdown
        # is not held up by a close handshake nobody reads.
        logger.info("session %s: stalling for %.1f s", self._index, self._options.stall_seconds)
        self._running.clear()
        self._connection.transport.pause_reading()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._options.stall_seconds)
        finally:
            self._connection.transport.resume_reading()
            self._running.set()

    # Process ------------------------------------------------------------------------------

    async def _process(self) -> None:
        while True:
            while len(self._asr_audio) - self._processed_bytes >= WINDOW_BYTES:
                await self._process_window(WINDOW_BYTES)
            if self._ended:
                break
            self._audio_arrived.clear()
            await self._audio_arrived.wait()
        if self._profile.flush_at_end:
            self._asr_audio.extend(self._pending)
            self._pending.clear()
            while len(self._asr_audio) - self._processed_bytes >= WINDOW_BYTES:
                await self._process_window(WINDOW_BYTES)
            tail = len(self._asr_audio) - self._processed_bytes
            if tail:
                await self._process_window(tail)
            self._transcript.finish()
        else:
            unprocessed = len(self._asr_audio) - self._processed_bytes + len(self._pending)
            self._record.dropped_pcm_bytes = unprocessed
        self._done.set()

    async def _process_window(self, n_bytes: int) -> None:
        await self._running.wait()
        start = self._processed_bytes
        window = self._asr_audio[start : start + n_bytes]
        # A flushed tail too short to recognize is processed as silence rather than skipped, so
        # the processed audio clock still reaches the end of the stream.
        word = recognize_window(window) if is_tail_long_enough(n_bytes) else None
        if word is None:
            # Like WLK's VAD: a pause costs the ASR nothing, and the reported processed clock
            # stays at the pause start until speech resumes.
            if self._pause_since is None:
                self._pause_since = start / BYTES_PER_SECOND
            await asyncio.sleep(0)
        else:
            self._pause_since = None
            await asyncio.sleep(n_bytes / BYTES_PER_SECOND / self._options.speed)
        self._processed_bytes += n_bytes
        self._transcript.add_window(
            word, start / BYTES_PER_SECOND, self._processed_bytes / BYTES_PER_SECOND
        )

    # Emit ---------------------------------------------------------------------------------

    async def _emit(self, last: JsonObject) -> None:
        interval = self._options.snapshot_interval_seconds
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), interval)
            await self._running.wait()
            if self._done.is_set():
                break
            snapshot = self._snapshot()
            if snapshot != last:
                if not await self._send_snapshot(snapshot):
                    return
                last = snapshot
        if self._error is not None:
            final = build_error_snapshot(self._profile, self._error)
        else:
            final = self._snapshot()
        if not await self._send_snapshot(final):
            return
        if self._options.fault is Fault.NEVER_READY:
            return
        if await self._send_quietly(build_ready_to_stop()):
            self._record.ready_to_stop_sent_at = time.monotonic()

    def _snapshot(self) -> JsonObject:
        return build_transcript_snapshot(self._profile, self._transcript, lags=self._lags())

    def _lags(self) -> Lags:
        transcript = self._transcript
        processed = self._processed_bytes / BYTES_PER_SECOND
        if self._pause_since is not None and not self._done.is_set():
            processed = self._pause_since
        received = (len(self._asr_audio) + len(self._pending)) / BYTES_PER_SECOND
        wall = 0.0
        if self._first_audio_at is not None:
            wall = time.monotonic() - self._first_audio_at
        diarization = 0.0
        if self._options.diarization and transcript.committed_count:
            committed_end = transcript.words[transcript.committed_count - 1].end
            diarization = committed_end - transcript.attributed_end
        return Lags(
            transcription=wall - processed if self._first_audio_at is not None else 0.0,
            processing=received - processed,
            policy=max(0.0, min(processed, transcript.processed_end) - transcript.committed_end),
            diarization=diarization,
        )

    async def _send_snapshot(self, snapshot: JsonObject) -> bool:
        if self._options.fault is Fault.MALFORMED_JSON:
            for frame in MALFORMED_FRAMES:
                if not await self._send_quietly(frame):
                    return False
        return await self._send_quietly(snapshot)

    # Helpers ------------------------------------------------------------------------------

    async def _send_quietly(self, message: JsonObject | str) -> bool:
        """Send one text frame; False when the connection is already closed."""
        # Compact and non-ASCII as is, like Starlette's send_json() on the real server.
        if isinstance(message, str):
            text = message
        else:
            text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        try:
            await self._connection.send(text)
        except ConnectionClosed:
            return False
        self._record.messages_sent += 1
        return True

    def _stop_workers(self) -> None:
        for task in self._workers:
            task.cancel()

    @property
    def _index(self) -> str:
        return str(self._connection.id)
