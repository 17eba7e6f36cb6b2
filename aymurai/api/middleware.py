"""Request id middleware (pure ASGI, so it never buffers a streaming body).

Takes the client's `X-Request-ID` when it is sane (1–64 of `A-Za-z0-9._-`), else 8 hex characters
of a UUID4; sets it for logging and returns it in the `X-Request-ID` response header.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aymurai.logs import request_id_var

SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def pick_request_id(client_value: str | None) -> str:
    if client_value and SANE_REQUEST_ID.match(client_value):
        return client_value
    return uuid.uuid4().hex[:8]


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_value = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                client_value = value.decode("latin-1")
                break
        request_id = pick_request_id(client_value)
        # For the 500 handler, which Starlette runs outside this middleware (api/errors.py).
        scope["aymurai.request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
