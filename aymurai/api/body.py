"""JSON request bodies with a size cap, parsed off the event loop.

FastAPI reads a JSON body whole, with no limit, and runs `json.loads` on the event loop: a 50 MB
body took the process from 119 MB to 978 MB and stalled `/healthz` for 4 s (issue 8). Routes that
take JSON use `CappedJSONRoute`: the body is read up to TRANSCRIBE_MAX_JSON_BODY_BYTES (413
BODY_TOO_LARGE past it, at once from Content-Length) and at the uploads' minimum rate, then parsed
in a worker thread; FastAPI finds both already cached on the request and validates as usual.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from aymurai.api.auth import check_key_before_body
from aymurai.api.upload import UploadLimits, iter_body_at_min_rate, upload_limits
from aymurai.errors import BodyTooLargeError, ClientDisconnectedError
from aymurai.settings import Settings


async def read_capped_body(request: Request, max_bytes: int, limits: UploadLimits) -> bytes:
    """The whole body, refused past `max_bytes` or when it comes slower than `limits` allow.

    Raises:
        BodyTooLargeError: the body (declared or received) is larger than `max_bytes`.
        UploadTimeoutError: the body came too slowly.
        ClientDisconnectedError: the client left mid-body.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLargeError(max_bytes)
    body = bytearray()
    try:
        async for chunk in iter_body_at_min_rate(request, limits):
            body += chunk
            if len(body) > max_bytes:
                raise BodyTooLargeError(max_bytes)
    except ClientDisconnect as exc:
        raise ClientDisconnectedError(
            f"The client disconnected after {len(body)} bytes of its body."
        ) from exc
    return bytes(body)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # FastAPI parses again on the loop and answers its own 422
        return None


class CappedJSONRoute(APIRoute):
    """An APIRoute whose JSON body is capped and parsed in a worker thread."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def capped_handler(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH"):
                check_key_before_body(request)  # never read a body for an anonymous client
                settings: Settings = request.app.state.settings
                body = await read_capped_body(
                    request, settings.transcribe_max_json_body_bytes, upload_limits(settings)
                )
                # Starlette caches both on the request; FastAPI reads them from there.
                request._body = body
                if body:
                    parsed = await anyio.to_thread.run_sync(_parse_json, body)
                    if parsed is not None:
                        request._json = parsed
            return await handler(request)

        return capped_handler
