"""Transcription routes: the POST SSE stream and the deprecated blocking endpoint.

Both join a queued or running job of the same document (one WLK session for identical
uploads). Their jobs need a watcher: when the last one leaves, the job waits
`TRANSCRIBE_DETACHED_GRACE_SECONDS` for another (the events stream of its `X-Transcription-Id`,
an identical upload) before it is cancelled. The resource API is in `transcriptions.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from aymurai.api.auth import Caller, TranscribeDep
from aymurai.api.deps import ServiceDep, SettingsDep
from aymurai.api.disconnect import result_unless_client_leaves
from aymurai.api.errors import error_response, status_for_code
from aymurai.api.sse import EventStreamResponse, single_done_frame, snapshot_frames
from aymurai.api.upload import SpooledUpload, receive_audio_upload, upload_limits
from aymurai.errors import ClientDisconnectedError, GatewayError, ShuttingDownError
from aymurai.metrics import (
    OUTCOME_CACHE_HIT,
    OUTCOME_CLIENT_GONE,
    OUTCOME_DONE,
    GatewayMetrics,
)
from aymurai.settings import Settings
from aymurai.transcription.channel import JobEvent
from aymurai.transcription.jobs import Failed, Keepalive, TranscriptionJob
from aymurai.transcription.schemas import ASRDocument
from aymurai.transcription.service import TranscriptionService

logger = logging.getLogger(__name__)
router = APIRouter(tags=["transcription"])

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "required": ["detail", "code"],
}
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in {
        400: "Empty upload (EMPTY_UPLOAD) or malformed multipart (MALFORMED_REQUEST)",
        408: "Upload too slow (UPLOAD_TIMEOUT)",
        413: "Upload too large (UPLOAD_TOO_LARGE) or audio too long (AUDIO_TOO_LONG)",
        415: "Not an allowed audio container, or not decodable (INVALID_AUDIO)",
        401: "No API key, or an unknown one (UNAUTHENTICATED); keys on only",
        403: "The API key lacks the scope (FORBIDDEN)",
        422: "Malformed request (VALIDATION_ERROR)",
        429: "The API key has its limit of jobs queued or running (KEY_LIMIT)",
        503: "Queue full (QUEUE_FULL), too many uploads (TOO_MANY_UPLOADS), spool folder "
        "unusable (SPOOL_UNAVAILABLE) or shutting down (SHUTTING_DOWN)",
    }.items()
}


async def _receive(request: Request, settings: Settings) -> SpooledUpload:
    upload = await receive_audio_upload(
        request, limits=upload_limits(settings), spool=request.app.state.spool
    )
    logger.info(
        "accepted upload %r (%d bytes) as document %s",
        upload.filename,
        upload.size_bytes,
        upload.document_id,
    )
    return upload


def _has_text(event: JobEvent) -> bool:
    return event.kind in ("transcription", "done") and bool(
        event.document is not None and event.document.document
    )


async def watched_events(
    job: TranscriptionJob, settings: Settings
) -> AsyncIterator[tuple[JobEvent, bool] | Keepalive]:
    """The job's events for one response, counted as a subscriber while it lasts."""
    with job.watch():
        events = job.follow(keepalive_seconds=settings.sse_keepalive)
        async with aclosing(events):  # type: ignore[type-var]
            async for item in events:
                yield item


async def _observed(
    events: AsyncIterator[tuple[JobEvent, bool] | Keepalive],
    metrics: GatewayMetrics,
    *,
    received_at: float,
) -> AsyncIterator[tuple[JobEvent, bool] | Keepalive]:
    """A job's events as they are, recording the stream's metrics and outcome on the way."""
    outcome = OUTCOME_CLIENT_GONE  # unless a terminal event goes out
    first_text_seen = False
    metrics.streams_active.inc()
    try:
        async with aclosing(events):  # type: ignore[type-var]
            async for item in events:
                if not isinstance(item, Keepalive):
                    event = item[0]
                    if not first_text_seen and _has_text(event):
                        # A short file may go straight to `done`: that is its first transcript.
                        first_text_seen = True
                        metrics.time_to_first_transcript.observe(time.monotonic() - received_at)
                    if event.kind == "done":
                        outcome = OUTCOME_DONE
                    elif event.kind == "error":
                        outcome = event.error_code or "INTERNAL_ERROR"
                    elif event.kind == "suspended":
                        outcome = ShuttingDownError.code
                yield item
    finally:
        metrics.streams_active.dec()
        metrics.count_request("stream", outcome)


async def accept_upload(
    request: Request,
    service: TranscriptionService,
    settings: Settings,
    *,
    caller: Caller,
    endpoint: str,
    use_cache: bool,
    runs_unwatched: bool,
) -> tuple[SpooledUpload, ASRDocument | TranscriptionJob, float]:
    """Receive, then join a running job, answer from the cache or start a job.

    Rejections are counted per endpoint. Returns the upload, the outcome and when the upload
    was fully received (monotonic).
    """
    try:
        upload = await _receive(request, settings)
        received_at = time.monotonic()
        outcome = await service.accept(
            document_id=upload.document_id,
            name=upload.filename,
            audio_path=upload.path,
            use_cache=use_cache,
            runs_unwatched=runs_unwatched,
            key_name=caller.owner,
        )
    except GatewayError as exc:
        service.metrics.count_request(endpoint, exc.code)
        raise
    return upload, outcome, received_at


@router.post(
    "/asr/transcribe/stream",
    response_class=EventStreamResponse,
    status_code=200,
    responses={200: {"content": {"text/event-stream": {}}}, **ERROR_RESPONSES},
    openapi_extra=UPLOAD_OPENAPI,
)
async def transcribe_stream(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    caller: TranscribeDep,
    use_cache: bool = True,
) -> Response:
    """Transcribe an audio file, streaming the transcript as Server-Sent Events."""
    metrics = service.metrics
    upload, outcome, received_at = await accept_upload(
        request,
        service,
        settings,
        caller=caller,
        endpoint="stream",
        use_cache=use_cache,
        runs_unwatched=False,
    )
    headers = {"X-Document-Id": str(upload.document_id)}
    if isinstance(outcome, ASRDocument):
        metrics.count_request("stream", OUTCOME_CACHE_HIT)
        return EventStreamResponse(single_done_frame(outcome), headers=headers)
    headers["X-Transcription-Id"] = outcome.id
    observed = _observed(watched_events(outcome, settings), metrics, received_at=received_at)
    return EventStreamResponse(snapshot_frames(observed), headers=headers)


@router.post(
    "/asr/transcribe",
    response_model=ASRDocument,
    deprecated=True,
    responses={
        **ERROR_RESPONSES,
        502: {"description": "WhisperLiveKit failed (UPSTREAM_*)"},
        504: {"description": "WhisperLiveKit timed out (UPSTREAM_TIMEOUT)"},
    },
    openapi_extra=UPLOAD_OPENAPI,
)
async def transcribe_blocking(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    caller: TranscribeDep,
    use_cache: bool = True,
) -> Response:
    """Deprecated: transcribe an audio file and answer once it is done. Use the stream."""
    metrics = service.metrics
    upload, outcome, _ = await accept_upload(
        request,
        service,
        settings,
        caller=caller,
        endpoint="blocking",
        use_cache=use_cache,
        runs_unwatched=False,
    )
    headers = {"X-Document-Id": str(upload.document_id)}
    if isinstance(outcome, TranscriptionJob):
        headers["X-Transcription-Id"] = outcome.id
        result = await result_unless_client_leaves(request, outcome)
        if result is None:
            # Its job, if nobody else follows it, is cancelled after the detached grace, as when a
            # stream's client leaves.
            metrics.count_request("blocking", OUTCOME_CLIENT_GONE)
            logger.info("client gone from the blocking endpoint")
            return error_response(
                499, ClientDisconnectedError.code, ClientDisconnectedError.default_detail
            )
        if isinstance(result, Failed):
            metrics.count_request("blocking", result.code)
            return error_response(
                status_for_code(result.code), result.code, result.detail, headers=headers
            )
        metrics.count_request("blocking", OUTCOME_DONE)
        outcome = result.document
    else:
        metrics.count_request("blocking", OUTCOME_CACHE_HIT)
    return JSONResponse(outcome.model_dump(mode="json"), headers=headers)
