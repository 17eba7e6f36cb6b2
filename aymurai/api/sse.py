"""Server-Sent Events: encoding job updates as frames, and the streaming response.

We write our own small response rather than use sse-starlette or `fastapi.sse`, because the
contract needs things neither gives as is: `: keepalive` comments only while idle, consecutive
`id:` numbers per response (the basis for Last-Event-ID resume), no global patching of uvicorn's
shutdown, and an explicit `aclose()` of the frame generator the moment the client disconnects
(uvicorn drops writes to a closed connection silently, so we watch `http.disconnect` ourselves).
See docs/architecture.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from aymurai.errors import DocumentUnreadableError, InternalError
from aymurai.logs import request_id_var
from aymurai.transcription.jobs import (
    Done,
    Failed,
    JobUpdate,
    Keepalive,
    Queued,
    Transcribing,
    Upstream,
)
from aymurai.transcription.schemas import ASRDocument

logger = logging.getLogger(__name__)

KEEPALIVE_FRAME = b": keepalive\n\n"

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode_event(event: str, data: str, event_id: int) -> bytes:
    # `data` is single-line JSON: json and pydantic escape newlines, so one `data:` line suffices.
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


def error_data(code: str, detail: str) -> str:
    return json.dumps({"code": code, "detail": detail, "request_id": request_id_var.get()})


def encode_update(update: JobUpdate, event_id: int) -> bytes:
    """One frame for `update`; a document that cannot be encoded becomes an `error` frame."""
    try:
        return _encode_update(update, event_id)
    except ValueError as exc:  # UnicodeEncodeError, pydantic's serialisation errors
        logger.error("cannot encode a %s event: %s", type(update).__name__, exc)
        error = DocumentUnreadableError()
        return encode_event("error", error_data(error.code, error.detail), event_id)


def _encode_update(update: JobUpdate, event_id: int) -> bytes:
    if isinstance(update, Transcribing):
        return encode_event("transcription", update.document.model_dump_json(), event_id)
    if isinstance(update, Queued):
        data = json.dumps({"document_id": str(update.document_id), "position": update.position})
        return encode_event("queued", data, event_id)
    if isinstance(update, Upstream):
        data = json.dumps(
            {
                "state": update.state,
                "attempt": update.attempt,
                "resume_from": round(update.resume_from, 3),
            }
        )
        return encode_event("upstream", data, event_id)
    if isinstance(update, Done):
        return encode_event("done", update.document.model_dump_json(), event_id)
    return encode_event("error", error_data(update.code, update.detail), event_id)


async def frames_from_updates(
    updates: AsyncIterator[JobUpdate | Keepalive],
) -> AsyncIterator[bytes]:
    """Encode a job's updates; ids are 1, 2, 3 … within this response."""
    event_id = 0
    async with aclosing(updates):  # type: ignore[type-var]
        async for update in updates:
            if isinstance(update, Keepalive):
                yield KEEPALIVE_FRAME
                continue
            event_id += 1
            yield encode_update(update, event_id)
            if isinstance(update, Done | Failed):
                return


async def single_done_frame(document: ASRDocument) -> AsyncIterator[bytes]:
    yield encode_update(Done(document), 1)


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self, frames: AsyncIterator[bytes], *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(content=None, headers={**SSE_HEADERS, **(headers or {})})
        # Response sets "content-length: 0" for an empty body; a stream has no length.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._frames = frames

    async def __call__(self, _scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async with anyio.create_task_group() as group:

            async def cancel_on_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(cancel_on_disconnect)
            try:
                async with aclosing(self._frames) as frames:  # type: ignore[type-var]
                    async for frame in frames:
                        await send({"type": "http.response.body", "body": frame, "more_body": True})
            except Exception:
                # A bug must not end a stream silently: the client gets a last `error` frame.
                logger.exception("the event stream failed")
                error = InternalError("The gateway failed unexpectedly.")
                data = error_data(error.code, error.detail)
                last = f"event: error\ndata: {data}\n\n".encode()
                await send({"type": "http.response.body", "body": last, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()
