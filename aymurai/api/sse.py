"""Server-Sent Events: encoding job events as frames, and the streaming response.

Two flavours read the same job events (see `transcription/channel.py`):
- `snapshot_frames`: the POST stream's contract, every event a full document, ids 1, 2, 3 … per
  response;
- `resumable_frames`: `GET /asr/transcriptions/{id}/events`, the job's own ids (strictly
  increasing for all subscribers and across restarts), a full snapshot first and deltas after,
  each frame encoded once and shared by every subscriber.

We write our own small response rather than use sse-starlette or `fastapi.sse`, because the
contract needs things neither gives as is: `: keepalive` comments only while idle, our own `id:`
numbering, no global patching of uvicorn's shutdown, and an explicit `aclose()` of the frame
generator the moment the client disconnects (uvicorn drops writes to a closed connection
silently, so we watch `http.disconnect` ourselves). See docs/architecture.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from functools import partial

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from aymurai.errors import DocumentUnreadableError, InternalError, ShuttingDownError
from aymurai.logs import request_id_var
from aymurai.transcription.channel import JobEvent
from aymurai.transcription.jobs import Keepalive
from aymurai.transcription.schemas import ASRDocument

logger = logging.getLogger(__name__)

KEEPALIVE_FRAME = b": keepalive\n\n"

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode_event(event: str, data: str, event_id: int, *, retry_ms: int | None = None) -> bytes:
    # `data` is single-line JSON: json and pydantic escape newlines, so one `data:` line suffices.
    retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f"{retry}id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


def error_data(code: str, detail: str) -> str:
    return json.dumps({"code": code, "detail": detail, "request_id": request_id_var.get()})


def _error_of(event: JobEvent) -> tuple[str, str]:
    if event.kind == "suspended":
        return ShuttingDownError.code, ShuttingDownError.default_detail
    return event.error_code or "INTERNAL_ERROR", event.error_detail or ""


def _encoded(event: str, build: Callable[[], str], event_id: int) -> bytes:
    """One frame whose data `build()` encodes; a document that cannot be encoded (lone
    surrogates, pydantic serialisation errors) becomes an `error` frame instead."""
    try:
        return encode_event(event, build(), event_id)
    except ValueError as exc:  # UnicodeEncodeError, pydantic's serialisation errors
        logger.error("cannot encode a %s event: %s", event, exc)
        error = DocumentUnreadableError()
        return encode_event("error", error_data(error.code, error.detail), event_id)


async def snapshot_frames(
    events: AsyncIterator[tuple[JobEvent, bool] | Keepalive],
) -> AsyncIterator[bytes]:
    """The POST stream: every event as a full snapshot; ids 1, 2, 3 … within this response.

    A job left for the next start (`suspended`) ends this stream with `SHUTTING_DOWN`, as
    this stream always did on shutdown.
    """
    number = 0
    async with aclosing(events):  # type: ignore[type-var]
        async for item in events:
            if isinstance(item, Keepalive):
                yield KEEPALIVE_FRAME
                continue
            event, _ = item
            number += 1
            if event.kind in ("error", "suspended"):
                yield encode_event("error", error_data(*_error_of(event)), number)
            else:
                yield _encoded(event.kind, partial(getattr, event, "document_json"), number)
            if event.is_terminal:
                return


def _shared_frame(event: JobEvent, *, snapshot: bool) -> bytes:
    """The events stream's frame of `event`, encoded once for every subscriber."""
    flavour = "snapshot" if snapshot else "delta"
    frame = event.frames.get(flavour)
    if frame is None:

        def data() -> str:
            return event.snapshot_json if snapshot else event.delta_json

        frame = event.frames[flavour] = _encoded(event.kind, data, event.id)
    return frame


async def resumable_frames(
    events: AsyncIterator[tuple[JobEvent, bool] | Keepalive], *, retry_ms: int
) -> AsyncIterator[bytes]:
    """The events stream: the job's own ids, deltas after a first full snapshot.

    The first frame carries `retry:`. A job left for the next start ends the stream without a
    frame, so an EventSource reconnects (to this instance after its restart, or another one).
    """
    first = True
    async with aclosing(events):  # type: ignore[type-var]
        async for item in events:
            if isinstance(item, Keepalive):
                yield KEEPALIVE_FRAME
                continue
            event, snapshot = item
            if event.kind == "suspended":
                return
            if event.kind == "error":
                # Per subscriber: the data names this request's id.
                frame = encode_event("error", error_data(*_error_of(event)), event.id)
            else:
                frame = _shared_frame(event, snapshot=snapshot or first)
            if first:
                frame = f"retry: {retry_ms}\n".encode() + frame
                first = False
            yield frame
            if event.is_terminal:
                return


async def single_frame(
    event: str, build: Callable[[], str], event_id: int, *, retry_ms: int | None = None
) -> AsyncIterator[bytes]:
    """A stream of one frame (a cache hit, a finished job's terminal event)."""
    frame = _encoded(event, build, event_id)
    yield frame if retry_ms is None else f"retry: {retry_ms}\n".encode() + frame


async def single_done_frame(document: ASRDocument) -> AsyncIterator[bytes]:
    yield _encoded("done", document.model_dump_json, 1)


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
