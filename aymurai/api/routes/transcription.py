"""Transcription routes: the SSE stream and the deprecated blocking endpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from aymurai.api.deps import ServiceDep, SettingsDep
from aymurai.api.errors import error_response, status_for_code
from aymurai.api.sse import EventStreamResponse, frames_from_updates, single_done_frame
from aymurai.api.upload import SpooledUpload, receive_audio_upload, upload_limits
from aymurai.errors import ClientDisconnectedError, GatewayError
from aymurai.metrics import (
    OUTCOME_CACHE_HIT,
    OUTCOME_CLIENT_GONE,
    OUTCOME_DONE,
    GatewayMetrics,
)
from aymurai.settings import Settings
from aymurai.transcription.jobs import (
    Done,
    Failed,
    JobUpdate,
    Keepalive,
    Transcribing,
    TranscriptionJob,
)
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
        422: "Malformed request (VALIDATION_ERROR)",
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


def _has_text(update: JobUpdate | Keepalive) -> bool:
    if isinstance(update, Transcribing):
        snapshot = update.snapshot
        return snapshot is not None and bool(snapshot.speech_lines or snapshot.tail_text)
    return isinstance(update, Done) and bool(update.document.document)


async def _observed(
    updates: AsyncIterator[JobUpdate | Keepalive], metrics: GatewayMetrics, *, received_at: float
) -> AsyncIterator[JobUpdate | Keepalive]:
    """A job's updates as they are, recording the stream's metrics and outcome on the way."""
    outcome = OUTCOME_CLIENT_GONE  # unless a terminal update goes out
    first_text_seen = False
    metrics.streams_active.inc()
    try:
        async with aclosing(updates):  # type: ignore[type-var]
            async for update in updates:
                if not first_text_seen and _has_text(update):
                    # A short file may go straight to `done`: that is its first transcript.
                    first_text_seen = True
                    metrics.time_to_first_transcript.observe(time.monotonic() - received_at)
                if isinstance(update, Done):
                    outcome = OUTCOME_DONE
                elif isinstance(update, Failed):
                    outcome = update.code
                yield update
    finally:
        metrics.streams_active.dec()
        metrics.count_request("stream", outcome)


async def _cached_or_started(
    service: TranscriptionService, upload: SpooledUpload, *, use_cache: bool
) -> ASRDocument | TranscriptionJob:
    """A cached result, or a started job that now owns the spooled file."""
    try:
        if use_cache:
            cached = await service.find_cached(upload.document_id)
            if cached is not None:
                logger.info("cache hit for %s", upload.document_id)
                upload.path.unlink(missing_ok=True)
                return cached
        info = await service.probe(upload.path)
        logger.info(
            "audio: %s/%s, %.2f s, %d ch, %d Hz",
            info.format_name,
            info.codec,
            info.duration_seconds,
            info.channels,
            info.sample_rate,
        )
        return service.start(
            document_id=upload.document_id,
            name=upload.filename,
            audio_path=upload.path,
            info=info,
        )
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise


async def _accept(
    request: Request,
    service: TranscriptionService,
    settings: Settings,
    *,
    endpoint: str,
    use_cache: bool,
) -> tuple[SpooledUpload, ASRDocument | TranscriptionJob, float]:
    """Receive, then answer from the cache or start a job; rejections are counted per endpoint.

    Returns the upload, the outcome and when the upload was fully received (monotonic).
    """
    try:
        upload = await _receive(request, settings)
        received_at = time.monotonic()
        outcome = await _cached_or_started(service, upload, use_cache=use_cache)
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
    request: Request, service: ServiceDep, settings: SettingsDep, use_cache: bool = True
) -> Response:
    """Transcribe an audio file, streaming the transcript as Server-Sent Events."""
    metrics = service.metrics
    upload, outcome, received_at = await _accept(
        request, service, settings, endpoint="stream", use_cache=use_cache
    )
    headers = {"X-Document-Id": str(upload.document_id)}
    if isinstance(outcome, ASRDocument):
        metrics.count_request("stream", OUTCOME_CACHE_HIT)
        return EventStreamResponse(single_done_frame(outcome), headers=headers)
    updates = outcome.updates(
        min_interval_seconds=settings.transcribe_sse_min_event_interval_seconds,
        keepalive_seconds=settings.sse_keepalive,
    )
    observed = _observed(updates, metrics, received_at=received_at)
    return EventStreamResponse(frames_from_updates(observed), headers=headers)


async def _result_unless_client_leaves(
    request: Request, job: TranscriptionJob
) -> Done | Failed | None:
    """The job's result, or None as soon as the client disconnects (issue 8: the blocking
    endpoint used to hold its WLK session until the job ended)."""
    result: Done | Failed | None = None
    async with anyio.create_task_group() as group:

        async def cancel_on_disconnect() -> None:
            # The body is fully read: the next message is the disconnect.
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(cancel_on_disconnect)
        result = await job.wait_for_result()
        group.cancel_scope.cancel()
    return result


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
    request: Request, service: ServiceDep, settings: SettingsDep, use_cache: bool = True
) -> Response:
    """Deprecated: transcribe an audio file and answer once it is done. Use the stream."""
    metrics = service.metrics
    upload, outcome, _ = await _accept(
        request, service, settings, endpoint="blocking", use_cache=use_cache
    )
    headers = {"X-Document-Id": str(upload.document_id)}
    if isinstance(outcome, TranscriptionJob):
        result = await _result_unless_client_leaves(request, outcome)
        if result is None:
            # Leaving the job cancelled it (last subscriber), as when a stream's client leaves.
            metrics.count_request("blocking", OUTCOME_CLIENT_GONE)
            logger.info("client gone; blocking transcription cancelled")
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
