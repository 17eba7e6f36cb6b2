"""`WS /asr/live`: a microphone through the gateway, as a job (see docs/live.md).

    client ──binary audio frames──▶ LiveConnection.receive_audio ──▶ LiveAudio ──▶ WLK session
    client ◀── session, queued, admitted, transcription, line, lag, done | error ── job events

The socket is always accepted first: a browser cannot read the status of a refused handshake, so
a refusal (queue full, shutting down, bad parameters) is an `error` message and a close code with
the detail as reason (1013 try again later, 1008 policy, 1007 bad audio, 1011 server failure).

Who ends the session: the client (an empty binary frame, or a close frame: the audio so far is
finished and transcribed, `ended_by: client`), the network (no close frame, or pings unanswered
for TRANSCRIBE_LIVE_PING_TIMEOUT_SECONDS: WLK is closed at once and what it recognised so far is
stored, `ended_by: disconnect`), or the gateway (buffer full, too fast, upstream failure: `error`).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import anyio
from fastapi import APIRouter
from starlette.websockets import WebSocket, WebSocketState

from aymurai.api.auth import LIVE_SUBPROTOCOL, authenticate_websocket
from aymurai.api.errors import close_code_for
from aymurai.api.middleware import pick_request_id
from aymurai.errors import (
    GatewayError,
    InvalidAudioError,
    JobCancelledError,
    LiveBufferFullError,
    LiveParameterError,
    LiveTooFastError,
)
from aymurai.keys import SCOPE_TRANSCRIBE
from aymurai.logs import request_id_var
from aymurai.metrics import GatewayMetrics
from aymurai.settings import Settings
from aymurai.transcription.admission import AdmissionTicket
from aymurai.transcription.jobs import QUEUED, Done, Failed, Keepalive, TranscriptionJob
from aymurai.transcription.live import (
    ENDED_BY_CLIENT,
    ENDED_BY_DISCONNECT,
    MAX_WEBM_BUFFER_BYTES,
    LiveAudio,
    LiveControl,
    RateGuard,
    Rechunker,
)
from aymurai.transcription.service import TranscriptionService
from aymurai.transcription.session import PCM_BYTES_PER_SECOND
from aymurai.transcription.webm import DecoderAborted, GrowingBuffer, decode_growing_webm

logger = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

FORMATS = ("pcm", "webm")
MAX_NAME_CHARS = 256
LANGUAGE = re.compile(r"^(auto|[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?)$")
# The client ended the session itself: a close frame with 1000 (normal) or 1001 (going away).
# Anything else means it vanished: 1006 (no close frame), and 1005 is also what the server reports
# when our pings went unanswered (the connection is still closing), so it cannot tell a client
# that closed without a code apart: such a close counts as a disconnect.
CLIENT_CLOSE_CODES = frozenset({1000, 1001})
MAX_REASON_BYTES = 120  # a close reason is at most 123 bytes of UTF-8
LAG_REPORT_INTERVAL_SECONDS = 1.0
FORWARD_GRACE_SECONDS = 5.0
SESSION_MESSAGE_TIMEOUT_SECONDS = 5.0


def _query(websocket: WebSocket, settings: Settings) -> tuple[str, str]:
    params = websocket.query_params
    fmt = params.get("format", "pcm")
    if fmt not in FORMATS:
        raise LiveParameterError("`format` must be pcm (16 kHz mono s16le) or webm.")
    _check_language(params.get("language") or "", settings.transcribe_wlk_language)
    name = params.get("name") or "live"
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise LiveParameterError(f"`name` must be printable and at most {MAX_NAME_CHARS} chars.")
    return fmt, name


def _check_language(language: str, server_language: str | None) -> None:
    """WLK's language is a server setting (`--lan`): `language` may only name it (as on /v1)."""
    if not language or language == "auto" and server_language is None:
        return
    if not LANGUAGE.match(language):
        raise LiveParameterError("`language` must be an ISO 639 code (like `es`) or `auto`.")
    primary = re.split(r"[-_]", language, maxsplit=1)[0].lower()
    if primary != server_language:
        raise LiveParameterError(
            f"This WhisperLiveKit server transcribes {server_language!r} only; its language is "
            "a server setting, not chosen per session."
            if server_language
            else "This WhisperLiveKit server detects the language itself; leave language empty."
        )


def _reason(detail: str) -> str:
    encoded = detail.encode()[:MAX_REASON_BYTES]
    return encoded.decode(errors="ignore")


def _message(kind: str, data: str) -> str:
    """`{"type": kind, ...data}` without decoding the event's shared JSON again."""
    body = data[1:].strip()
    return f'{{"type":"{kind}"' + ("," + body if body != "}" else "}")


@router.websocket("/asr/live")
async def live_session(websocket: WebSocket) -> None:
    """Live audio in, transcript out; see the module docstring and docs/live.md."""
    request_id = pick_request_id(websocket.headers.get("x-request-id"))
    token = request_id_var.set(request_id)
    try:
        app = websocket.app
        connection = LiveConnection(
            websocket, app.state.service, app.state.settings, request_id=request_id
        )
        await connection.run()
    finally:
        request_id_var.reset(token)


class LiveConnection:
    def __init__(
        self,
        websocket: WebSocket,
        service: TranscriptionService,
        settings: Settings,
        *,
        request_id: str,
    ) -> None:
        self.websocket = websocket
        self.service = service
        self.settings = settings
        self.metrics: GatewayMetrics = service.metrics
        self.request_id = request_id
        self.send_lock = anyio.Lock()
        self.client_gone = False
        self.failure: GatewayError | None = None
        self.job: TranscriptionJob | None = None
        self.source: GrowingBuffer | None = None  # format=webm: the recording being decoded
        self.input_ended = False  # no more audio is taken (empty frame, close, shutdown)
        self.rate = RateGuard()
        self.rechunker = Rechunker()
        self.forwarded = anyio.Event()
        self.audio: LiveAudio
        self.control: LiveControl
        self.lag_seconds = 0.0
        self.lag_changed = anyio.Event()

    # --- sending ------------------------------------------------------------------------------
    async def send(self, text: str) -> None:
        if self.client_gone:
            return
        async with self.send_lock:
            try:
                await self.websocket.send_text(text)
            except Exception:  # the socket is gone (closed, reset): the receiver will say why
                self.client_gone = True

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.send(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    async def close(self, code: int, reason: str = "") -> None:
        if self.client_gone or self.websocket.application_state == WebSocketState.DISCONNECTED:
            return
        async with self.send_lock:
            try:
                await self.websocket.close(code, _reason(reason))
            except Exception:
                self.client_gone = True

    async def refuse(self, exc: GatewayError) -> None:
        logger.info("live session refused: %s: %s", exc.code, exc.detail)
        self.metrics.live_errors.inc()
        await self.send_json({"type": "error", "code": exc.code, "detail": exc.detail})
        await self.close(close_code_for(exc), exc.detail)

    # --- the session --------------------------------------------------------------------------
    async def run(self) -> None:
        offered = self.websocket.scope.get("subprotocols") or []
        # A browser that offered subprotocols fails the handshake unless one is selected.
        await self.websocket.accept(LIVE_SUBPROTOCOL if LIVE_SUBPROTOCOL in offered else None)
        try:
            caller = authenticate_websocket(self.websocket, SCOPE_TRANSCRIBE)
            fmt, name = _query(self.websocket, self.settings)
            job, ticket = await self.service.open_live(name=name, key_name=caller.owner)
        except GatewayError as exc:
            await self.refuse(exc)
            return
        self.job = job
        self.audio = LiveAudio(max_seconds=self.settings.transcribe_live_max_buffer_seconds)
        self.control = LiveControl(self.audio, stop=anyio.Event(), on_lag=self._on_lag)
        job.end_audio = self._end_audio_on_shutdown
        try:
            await self.run_session(job, ticket, fmt, name)
        finally:
            self.audio.close()

    async def run_session(
        self, job: TranscriptionJob, ticket: AdmissionTicket, fmt: str, name: str
    ) -> None:
        logger.info(
            "live session %s opened: format %s, document %s, name %r",
            job.id,
            fmt,
            job.document_id,
            name,
        )
        # Shielded (and bounded): between `open_live` and `run_live` the job holds a slot that
        # only `run_live` releases, so nothing here may be cancelled.
        with anyio.move_on_after(SESSION_MESSAGE_TIMEOUT_SECONDS, shield=True):
            await self.send_json(
                {
                    "type": "session",
                    "id": job.id,
                    "document_id": str(job.document_id),
                    "request_id": self.request_id,
                }
            )
        async with anyio.create_task_group() as group:
            group.start_soon(self.forward_events, job)
            group.start_soon(self.report_lag)
            if fmt == "webm":
                self.source = GrowingBuffer(max_bytes=MAX_WEBM_BUFFER_BYTES)
                group.start_soon(self.decode_webm, self.source)
            group.start_soon(self.receive_audio)
            try:
                await self.run_job(job, ticket)
                with anyio.move_on_after(FORWARD_GRACE_SECONDS):
                    await self.forwarded.wait()
            finally:
                group.cancel_scope.cancel()
        await self.close(self._close_code(job), self._close_reason(job))
        logger.info(
            "live session %s ended: %s, by %s, %.1f s of audio",
            job.id,
            "done" if isinstance(job.latest, Done) else "failed",
            job.ended_by or "the gateway",
            self.audio.accepted_seconds,
        )

    async def run_job(self, job: TranscriptionJob, ticket: AdmissionTicket) -> None:
        await self.service.run_live(job, ticket, self.control)

    def _close_code(self, job: TranscriptionJob) -> int:
        outcome = job.latest
        if not isinstance(outcome, Failed):
            return 1000
        if self.failure is not None:
            return close_code_for(self.failure)
        if outcome.code == JobCancelledError.code:
            return 1000  # DELETE /asr/transcriptions/{id}: asked for, not a failure
        return 1013 if outcome.code in ("SHUTTING_DOWN", "QUEUE_FULL") else 1011

    def _close_reason(self, job: TranscriptionJob) -> str:
        outcome = job.latest
        return outcome.detail if isinstance(outcome, Failed) else "done"

    def fail(self, exc: GatewayError) -> None:
        """The gateway ends the session (too fast, buffer full, bad audio): the job fails."""
        if self.failure is not None or self.job is None:
            return
        self.failure = exc
        logger.info("ending live session: %s: %s", exc.code, exc.detail)
        self.audio.ended = True
        self.job.publish(Failed(exc.code, exc.detail))
        self.job.cancel_scope.cancel()

    # --- audio in -----------------------------------------------------------------------------
    async def receive_audio(self) -> None:
        """Client frames → audio, until the end of audio; then watch for the client leaving."""
        source = self.source
        ended = False
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    self.client_gone = True
                    self._on_client_left(int(message.get("code") or 1005))
                    return
                data = message.get("bytes")
                if data is None:
                    continue  # text frames carry nothing for us
                if ended or self.input_ended or self.failure is not None:
                    continue
                if not data:
                    ended = True
                    self.job_ended_by(ENDED_BY_CLIENT)
                    logger.info("end of audio from the client")
                    self._end_audio()
                    continue
                if source is None:
                    self.accept_pcm(data)
                elif not source.feed(data):
                    self.fail(LiveBufferFullError("Too much undecoded audio is waiting."))
        finally:
            # A normal end still lets the decoder finish what it has; anything else stops it.
            if source is not None and not self.input_ended:
                source.abort()

    def job_ended_by(self, who: str) -> None:
        if self.job is not None and self.job.ended_by is None:
            self.job.ended_by = who

    def _end_audio(self) -> None:
        self.input_ended = True
        if self.source is None:
            self._flush_pcm()
        else:
            self.source.finish()  # the decoder flushes, then ends the audio

    def _end_audio_on_shutdown(self) -> None:
        if not self.input_ended:
            logger.info("shutting down: ending the live audio so its transcript is stored")
            self._end_audio()

    def _flush_pcm(self) -> None:
        rest = self.rechunker.flush()
        if rest:
            self.audio.put(rest)
        self.audio.end()

    def _on_client_left(self, code: int) -> None:
        job = self.job
        assert job is not None
        if code not in CLIENT_CLOSE_CODES:
            self.job_ended_by(ENDED_BY_DISCONNECT)
            logger.info("client vanished (close code %d)", code)
            if not job.is_terminal and job.status == QUEUED:
                self.fail(JobCancelledError("The client left before its turn."))
            self.control.stop.set()
            return
        self.job_ended_by(ENDED_BY_CLIENT)
        logger.info("client closed the socket (code %d)", code)
        if not self.input_ended:
            self._end_audio()

    def accept_pcm(self, pcm: bytes) -> None:
        if self.audio.ended:
            return
        if self.rate.add(len(pcm) / PCM_BYTES_PER_SECOND, anyio.current_time()):
            self.fail(LiveTooFastError())
            return
        for chunk in self.rechunker.feed(pcm):
            if not self.audio.put(chunk):
                self.fail(LiveBufferFullError())
                return

    async def decode_webm(self, source: GrowingBuffer) -> None:
        def emit(pcm: bytes) -> None:
            anyio.from_thread.run_sync(self.accept_pcm, pcm)

        try:
            await anyio.to_thread.run_sync(
                decode_growing_webm,
                source,
                emit,
                abandon_on_cancel=True,
                limiter=self.service.live_decode_limiter,
            )
        except DecoderAborted:
            return
        except InvalidAudioError as exc:
            self.fail(exc)
            return
        self._flush_pcm()

    # --- events out ---------------------------------------------------------------------------
    async def forward_events(self, job: TranscriptionJob) -> None:
        queued = admitted = False
        first_transcription = True
        try:
            with job.watch():
                async for item in job.follow(keepalive_seconds=None):
                    if isinstance(item, Keepalive):
                        continue
                    event, snapshot = item
                    if event.kind == "queued":
                        queued = True
                        await self.send_json({"type": "queued", "position": event.position})
                        continue
                    if queued and not admitted:
                        admitted = True
                        await self.send_json({"type": "admitted"})
                    if event.kind == "transcription":
                        full = snapshot or first_transcription
                        first_transcription = False
                        data = event.snapshot_json if full else event.delta_json
                        await self.send(_message("transcription", data))
                    elif event.kind == "line":
                        await self.send(_message("line", event.document_json))
                    elif event.kind == "done":
                        await self.send(f'{{"type":"done","document":{event.document_json}}}')
                    elif event.kind in ("error", "suspended"):
                        code = event.error_code or "SHUTTING_DOWN"
                        detail = event.error_detail or "The gateway is shutting down."
                        await self.send_json({"type": "error", "code": code, "detail": detail})
        finally:
            self.forwarded.set()

    def _on_lag(self, seconds: float) -> None:
        self.lag_seconds = seconds
        self.lag_changed.set()

    async def report_lag(self) -> None:
        while True:
            await self.lag_changed.wait()
            self.lag_changed = anyio.Event()
            seconds = round(self.lag_seconds, 3)
            self.metrics.live_lag.observe(seconds)
            logger.info("WLK is %.1f s behind the live audio", seconds)
            await self.send_json({"type": "lag", "seconds": seconds})
            await anyio.sleep(LAG_REPORT_INTERVAL_SECONDS)
