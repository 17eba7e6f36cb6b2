"""WebSocket adapter to WhisperLiveKit's `/asr`: the one place `websockets` errors enter our code.

`connect_wlk()` opens the session with our timeouts, ping settings and size limit, and always closes
it ourselves (WLK never closes after `ready_to_stop`), even when the caller is being cancelled: the
close is shielded and bounded by the close timeout, then the transport is aborted.

Translation at this boundary:
- cannot connect, DNS failure, handshake refused or timed out → `UpstreamUnavailableError`;
- connection lost mid-stream (1011 keepalive timeout, 1006 drop, any close before `ready_to_stop`)
  → `UpstreamServiceError`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from aymurai.errors import UpstreamServiceError, UpstreamUnavailableError
from aymurai.transcription.wlk_protocol import UnknownMessage, WLKMessage, parse_message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionOptions:
    uri: str
    open_timeout_seconds: float = 10.0
    close_timeout_seconds: float = 1.0
    ping_interval_seconds: float | None = 20.0
    ping_timeout_seconds: float | None = 60.0
    max_message_bytes: int = 64 * 1024 * 1024


def _describe_close(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "the connection was lost without a close frame (1006)"
    reason = f" ({frame.reason})" if frame.reason else ""
    return f"the connection was closed with code {frame.code}{reason}"


def close_code_of(exc: BaseException) -> int | None:
    """The WebSocket close code behind an upstream failure, for logs and metrics (1006 = lost)."""
    cause = exc.__cause__
    if isinstance(cause, ConnectionClosed):
        frame = cause.rcvd or cause.sent
        return frame.code if frame is not None else 1006
    return None


class WLKConnection:
    """One open `/asr` session. Send binary PCM, receive parsed messages."""

    def __init__(self, websocket: ClientConnection) -> None:
        self._ws = websocket

    async def send_audio(self, pcm: bytes) -> None:
        """Send one binary PCM frame. An empty frame means end of audio: use `send_end_of_audio`."""
        if not pcm:
            raise ValueError("an empty frame ends the session; call send_end_of_audio()")
        await self._send(pcm)

    async def send_end_of_audio(self) -> None:
        await self._send(b"")

    async def _send(self, frame: bytes) -> None:
        try:
            await self._ws.send(frame)
        except ConnectionClosed as exc:
            raise UpstreamServiceError(
                f"The speech recognition server dropped the session: {_describe_close(exc)}."
            ) from exc

    async def receive(self) -> WLKMessage:
        """Next message from WLK. A close of any kind is a failure: a session ends with
        `ready_to_stop`, never with a close from the server."""
        try:
            frame = await self._ws.recv()
        except ConnectionClosedOK as exc:
            raise UpstreamServiceError(
                "The speech recognition server closed the session before finishing "
                f"({_describe_close(exc)})."
            ) from exc
        except ConnectionClosed as exc:
            raise UpstreamServiceError(
                f"The speech recognition server dropped the session: {_describe_close(exc)}."
            ) from exc
        if isinstance(frame, bytes):
            return UnknownMessage("unexpected binary frame", raw=f"{len(frame)} bytes")
        return parse_message(frame)

    @property
    def latency_seconds(self) -> float:
        """Round-trip time of the last ping/pong (0 before the first)."""
        return float(self._ws.latency)


@asynccontextmanager
async def connect_wlk(options: ConnectionOptions) -> AsyncIterator[WLKConnection]:
    """Open a session with WLK `/asr`; closes it on exit, within the close timeout.

    Raises:
        UpstreamUnavailableError: the server cannot be reached or refused the handshake.
    """
    try:
        websocket = await connect(
            options.uri,
            open_timeout=options.open_timeout_seconds,
            close_timeout=options.close_timeout_seconds,
            ping_interval=options.ping_interval_seconds,
            ping_timeout=options.ping_timeout_seconds,
            max_size=options.max_message_bytes,
            # PCM does not compress; deflate would only cost CPU on both ends.
            compression=None,
        )
    except InvalidStatus as exc:
        raise UpstreamUnavailableError(
            "The speech recognition server refused the connection "
            f"(HTTP {exc.response.status_code})."
        ) from exc
    except InvalidURI as exc:
        raise UpstreamUnavailableError(
            "The speech recognition server address (TRANSCRIBE_WS_URI) is not valid."
        ) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise UpstreamUnavailableError(
            "The speech recognition server cannot be reached: "
            f"{type(exc).__name__}: {exc or 'no details'}."
        ) from exc
    try:
        yield WLKConnection(websocket)
    finally:
        # Shielded so a cancelled caller (client gone) still closes the socket; bounded so a
        # server that never answers the close cannot hold us.
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(options.close_timeout_seconds + 0.5):
                await websocket.close()
            if websocket.transport is not None and not websocket.transport.is_closing():
                websocket.transport.abort()
