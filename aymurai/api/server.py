"""uvicorn settings and the HTTP protocol the gateway serves with.

uvicorn bounds a request's headers in size (httptools) but not in time: its keep-alive timer is
cancelled by every byte received, and a new connection has no timer at all, so a client sending
one header byte every few seconds (slowloris) holds a connection forever (issue 8). The protocol
below closes a connection, with a 408, when the request line and headers of a request are not
complete `API_HEADER_TIMEOUT_SECONDS` after its connection opened or its first byte arrived. The
body is bounded by the upload rate rule (`api/upload.py`), idle keep-alive connections by
uvicorn's own `timeout_keep_alive` (set to the same value).

`aymurai-api` uses it already. Under a plain uvicorn, pass
``--http aymurai.api.server:HeaderTimeoutProtocol --timeout-keep-alive 10``; under gunicorn, use
the worker class ``aymurai.api.worker.GatewayUvicornWorker``. Both read the timeout from the
settings (API_HEADER_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aymurai.settings import Settings, get_settings

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request headers took too long.\r\n"
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers.

    The deadline is `header_timeout_seconds`, or API_HEADER_TIMEOUT_SECONDS when it is None (the
    class used by import string from uvicorn's command line).
    """

    header_timeout_seconds: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # A keep-alive connection's next request starts here: it gets its own deadline.
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        timeout = self.header_timeout_seconds
        if timeout is None:
            timeout = get_settings().api_header_timeout_seconds
        self._header_timer = self.loop.call_later(timeout, self._on_header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy:  # never write into a response in progress (pipelined requests)
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def header_timeout_protocol(timeout_seconds: float) -> type[HeaderTimeoutProtocol]:
    return type(
        "GatewayHttpProtocol", (HeaderTimeoutProtocol,), {"header_timeout_seconds": timeout_seconds}
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn.Config keywords that protect the server from slow or hostile clients."""
    return {
        "http": header_timeout_protocol(settings.api_header_timeout_seconds),
        "timeout_keep_alive": max(1, round(settings.api_header_timeout_seconds)),
        # Live clients (WS /asr/live) that vanish without a close are found by these pings
        # (uvicorn's sans-I/O `websockets` implementation; wsproto sends none).
        "ws": "websockets-sansio",
        "ws_ping_interval": settings.transcribe_live_ping_interval_seconds or None,
        "ws_ping_timeout": settings.transcribe_live_ping_timeout_seconds or None,
        # Live audio frames are small (a MediaRecorder slice, 0.1-1 s of PCM): 1 MiB bounds one.
        "ws_max_size": 1024 * 1024,
    }


def make_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    return uvicorn.Config(app, **{**server_options(settings), **overrides})
