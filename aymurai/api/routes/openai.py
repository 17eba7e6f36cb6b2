"""OpenAI's audio API: `POST /v1/audio/transcriptions` (with `stream`) and `GET /v1/models`.

The same machinery as the other routes (upload spooling, cache, admission, jobs) behind OpenAI's
request and response shapes (`api/openai_wire.py`), so the `openai` SDKs, Open WebUI and other
OpenAI clients work unchanged; test/integration/test_openai_sdk.py checks them with the official
Python and Node SDKs.

- This router's own route class turns every error into OpenAI's error object, so that shape stays
  scoped to `/v1` while the rest of the API keeps `{"detail", "code", "request_id"}`; a catch-all
  route gives unknown `/v1` paths OpenAI's 404 too.
- With API keys on, every `/v1` route needs a `transcribe` key: the SDKs send their `api_key` as
  `Authorization: Bearer`, so the gateway's key goes there; 401 (with `WWW-Authenticate`), 403 and
  429 `KEY_LIMIT` come in OpenAI's shape, which the SDKs raise as AuthenticationError,
  PermissionDeniedError and RateLimitError.
- A stream reads the job's updates (WLK's snapshots) and sends committed text only
  (`transcription/text_deltas.py`), so the deltas add up to the `done` text and the stored
  transcript; WLK's volatile buffer never goes out. An upstream failure after the first byte is
  one last `{"type": "error", ...}` event, which both SDKs raise.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from aymurai import errors
from aymurai.api.auth import TranscribeDep
from aymurai.api.deps import ServiceDep, SettingsDep
from aymurai.api.disconnect import result_unless_client_leaves
from aymurai.api.errors import status_for
from aymurai.api.openai_wire import (
    OPENAI_STATUS_BY_CODE,
    RESPONSE_FORMATS,
    ModelList,
    ModelPublic,
    OpenAIErrorBody,
    ResponseFormat,
    cached_frames,
    delta_frame,
    diarized_json_body,
    done_frame,
    error_frame,
    error_object,
    json_body,
    openai_status_for_code,
    parse_transcription_request,
    verbose_json_body,
)
from aymurai.api.sse import KEEPALIVE_FRAME, EventStreamResponse
from aymurai.api.upload import receive_audio_upload, upload_limits
from aymurai.metrics import (
    OUTCOME_CACHE_HIT,
    OUTCOME_CLIENT_GONE,
    OUTCOME_DONE,
    GatewayMetrics,
)
from aymurai.settings import Settings
from aymurai.transcription.formats import is_diarized, plain_text, render_srt, render_vtt
from aymurai.transcription.jobs import (
    Done,
    Failed,
    JobUpdate,
    Keepalive,
    Suspended,
    Transcribing,
    TranscriptionJob,
)
from aymurai.transcription.schemas import ASRDocument
from aymurai.transcription.text_deltas import CommittedTextDeltas, committed_text

logger = logging.getLogger(__name__)

# Listed by GET /v1/models when TRANSCRIBE_OPENAI_MODELS is empty (any name is accepted then).
DEFAULT_MODEL = "whisperlivekit"
METRICS_ENDPOINT = "openai"


# --- errors -----------------------------------------------------------------------------------


def openai_error_response(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    log = logger.error if status >= 500 else logger.info
    log("answered %d %s: %s", status, code, message)
    body = {"error": error_object(status, code, message, param)}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def response_for_gateway_error(exc: errors.GatewayError) -> JSONResponse:
    status = OPENAI_STATUS_BY_CODE.get(exc.code) or status_for(exc)
    headers = {}
    if isinstance(exc, errors.QueueFullError | errors.TooManyUploadsError | errors.KeyLimitError):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    elif isinstance(exc, errors.UnauthenticatedError):
        headers["WWW-Authenticate"] = "Bearer"
    param = exc.param if isinstance(exc, errors.InvalidRequestError) else None
    if isinstance(exc, errors.EmptyUploadError | errors.MissingFileError):
        param = "file"
    return openai_error_response(status, exc.code, exc.detail, param=param, headers=headers)


class OpenAIRoute(APIRoute):
    """Every error a `/v1` route raises becomes OpenAI's error object (and never a 422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except errors.GatewayError as exc:
                return response_for_gateway_error(exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
                message = f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid')}"
                return openai_error_response(
                    400, "INVALID_REQUEST", message, param=".".join(loc) or None
                )
            except StarletteHTTPException as exc:
                return openai_error_response(exc.status_code, "HTTP_ERROR", str(exc.detail))
            except Exception:
                logger.exception("unhandled error in the OpenAI API")
                return openai_error_response(
                    500, "INTERNAL_ERROR", "The gateway failed unexpectedly."
                )

        return guarded


router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    route_class=OpenAIRoute,
    responses={"default": {"model": OpenAIErrorBody, "description": "OpenAI's error object"}},
)


# --- responses --------------------------------------------------------------------------------


def render_response(
    document: ASRDocument, response_format: ResponseFormat, settings: Settings
) -> Response:
    """The finished transcript in the requested format (non-streaming answer)."""
    if response_format == "json":
        return JSONResponse(json_body(document))
    if response_format == "verbose_json":
        return JSONResponse(verbose_json_body(document, settings))
    if response_format == "diarized_json":
        return JSONResponse(diarized_json_body(document))
    label_speakers = is_diarized(document)
    if response_format == "srt":
        return PlainTextResponse(render_srt(document, label_speakers=label_speakers))
    if response_format == "vtt":
        return PlainTextResponse(render_vtt(document, label_speakers=label_speakers))
    text = plain_text(document)
    return PlainTextResponse(text + "\n" if text else "")


# --- stream -----------------------------------------------------------------------------------


async def stream_frames(
    updates: AsyncIterator[JobUpdate | Keepalive],
    *,
    keepalive_seconds: float | None,
    metrics: GatewayMetrics,
    received_at: float,
) -> AsyncIterator[bytes]:
    """A job's updates as OpenAI stream events: committed-text deltas, then done or error.

    Updates that add no committed text (queue moves, buffer-only changes) send a keepalive comment
    once the stream has been silent for `keepalive_seconds`, so proxies see bytes flowing. The
    stream counts in the open-streams gauge, its first delta in the time to first transcript
    (`received_at` is when the upload was received, monotonic), its end in the requests.
    """
    deltas = CommittedTextDeltas()
    last_write = time.monotonic()
    outcome = OUTCOME_CLIENT_GONE
    first_delta_seen = False

    def delta_out(delta: str) -> bytes:
        nonlocal first_delta_seen, last_write
        last_write = time.monotonic()
        if not first_delta_seen:
            first_delta_seen = True
            metrics.time_to_first_transcript.observe(last_write - received_at)
        return delta_frame(delta)

    metrics.streams_active.inc()
    try:
        async with aclosing(updates):  # type: ignore[type-var]
            async for update in updates:
                if isinstance(update, Transcribing):
                    delta = deltas.advance(committed_text(update.snapshot))
                    if delta:
                        yield delta_out(delta)
                        continue
                elif isinstance(update, Done):
                    finish = deltas.finish(plain_text(update.document))
                    if not finish.consistent:
                        logger.warning(
                            "WLK changed committed text after it was streamed; "
                            "the done event carries the stored transcript"
                        )
                    if finish.delta:
                        yield delta_out(finish.delta)
                    outcome = OUTCOME_DONE
                    yield done_frame(finish.text)
                    return
                elif isinstance(update, Failed):
                    outcome = update.code
                    yield error_frame(update.code, update.detail)
                    return
                elif isinstance(update, Suspended):
                    # The job is kept for the next start; this stream cannot follow it there.
                    outcome = errors.ShuttingDownError.code
                    yield error_frame(outcome, errors.ShuttingDownError.default_detail)
                    return
                idle_for = time.monotonic() - last_write
                if isinstance(update, Keepalive) or (
                    keepalive_seconds is not None and idle_for >= keepalive_seconds
                ):
                    last_write = time.monotonic()
                    yield KEEPALIVE_FRAME
    finally:
        metrics.streams_active.dec()
        metrics.count_request(METRICS_ENDPOINT, outcome)


async def watched_updates(
    job: TranscriptionJob, settings: Settings
) -> AsyncIterator[JobUpdate | Keepalive]:
    """The job's newest updates for one response, counted as a subscriber while it lasts.

    We read the updates (WLK's snapshots), not the job's numbered events: only a snapshot tells
    committed lines from the volatile buffer, which the deltas need. Leaving early unsubscribes;
    a job nobody watches any more is cancelled after the detached grace, as for the POST stream.
    """
    with job.watch():
        updates = job.updates(
            min_interval_seconds=settings.transcribe_sse_min_event_interval_seconds,
            keepalive_seconds=settings.sse_keepalive,
        )
        async with aclosing(updates):  # type: ignore[type-var]
            async for update in updates:
                yield update


# --- routes -----------------------------------------------------------------------------------
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "language": {"type": "string"},
                        "prompt": {"type": "string"},
                        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
                        "temperature": {"type": "number"},
                        "timestamp_granularities[]": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["segment"]},
                        },
                        "stream": {"type": "boolean"},
                    },
                    "required": ["file", "model"],
                }
            }
        },
    }
}


@router.post(
    "/audio/transcriptions",
    openapi_extra=UPLOAD_OPENAPI,
    responses={200: {"content": {"text/event-stream": {}, "text/plain": {}}}},
)
async def create_transcription(
    request: Request, service: ServiceDep, settings: SettingsDep, caller: TranscribeDep
) -> Response:
    """Transcribe an audio file, OpenAI-style: the whole result, or `stream=true` for SSE."""
    metrics = service.metrics
    try:
        upload = await receive_audio_upload(
            request, limits=upload_limits(settings), spool=request.app.state.spool
        )
        received_at = time.monotonic()
        try:
            params = parse_transcription_request(upload.fields, settings)
        except BaseException:
            upload.path.unlink(missing_ok=True)
            raise
        logger.info(
            "accepted upload %r (%d bytes) as document %s: model %r, %s%s",
            upload.filename,
            upload.size_bytes,
            upload.document_id,
            params.model,
            params.response_format,
            ", streaming" if params.stream else "",
        )
        # Joins an unfinished job of the same bytes from any API (one WLK session), else the
        # cache, else a new job.
        outcome = await service.accept(
            document_id=upload.document_id,
            name=upload.filename,
            audio_path=upload.path,
            use_cache=True,
            runs_unwatched=False,
            key_name=caller.owner,
        )
    except errors.GatewayError as exc:
        metrics.count_request(METRICS_ENDPOINT, exc.code)
        raise
    headers = {"X-Document-Id": str(upload.document_id)}

    if isinstance(outcome, ASRDocument):
        metrics.count_request(METRICS_ENDPOINT, OUTCOME_CACHE_HIT)
        if params.stream:
            return EventStreamResponse(cached_frames(outcome), headers=headers)
        response = render_response(outcome, params.response_format, settings)
        response.headers.update(headers)
        return response

    job = outcome
    headers["X-Transcription-Id"] = job.id
    if params.stream:
        frames = stream_frames(
            watched_updates(job, settings),
            keepalive_seconds=settings.sse_keepalive,
            metrics=metrics,
            received_at=received_at,
        )
        return EventStreamResponse(frames, headers=headers)

    result = await result_unless_client_leaves(request, job)
    if result is None:
        # Leaving the job cancelled it (last subscriber), as when a stream's client leaves.
        metrics.count_request(METRICS_ENDPOINT, OUTCOME_CLIENT_GONE)
        logger.info("client gone; transcription cancelled")
        error = errors.ClientDisconnectedError
        return openai_error_response(499, error.code, error.default_detail)
    if isinstance(result, Failed):
        metrics.count_request(METRICS_ENDPOINT, result.code)
        return openai_error_response(
            openai_status_for_code(result.code), result.code, result.detail, headers=headers
        )
    metrics.count_request(METRICS_ENDPOINT, OUTCOME_DONE)
    response = render_response(result.document, params.response_format, settings)
    response.headers.update(headers)
    return response


def _model_names(settings: Settings) -> list[str]:
    return settings.transcribe_openai_models or [DEFAULT_MODEL]


@router.get("/models", response_model=ModelList)
async def list_models(settings: SettingsDep, _: TranscribeDep) -> ModelList:
    """The model names `/v1/audio/transcriptions` accepts, in OpenAI's list shape."""
    return ModelList(data=[ModelPublic(id=name) for name in _model_names(settings)])


@router.get("/models/{model}", response_model=ModelPublic)
async def retrieve_model(model: str, settings: SettingsDep, _: TranscribeDep) -> ModelPublic:
    """One accepted model name (any name, when none are configured)."""
    if settings.transcribe_openai_models and model not in settings.transcribe_openai_models:
        raise errors.NotFoundError(f"The model {model!r} does not exist.")
    return ModelPublic(id=model)


# Paths served above (as matched by `path`) and their methods, for telling 405 from 404.
ALLOWED_METHODS = {
    re.compile(r"audio/transcriptions"): "POST",
    re.compile(r"models(/[^/]+)?"): "GET",
}


@router.api_route(
    "/{path:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
async def unknown_route(request: Request, path: str) -> Response:
    """Anything else under /v1: OpenAI's 404 (or 405 on a known path) instead of ours."""
    for pattern, allowed in ALLOWED_METHODS.items():
        if pattern.fullmatch(path):
            return openai_error_response(
                405,
                "METHOD_NOT_ALLOWED",
                f"{request.method} is not allowed on /v1/{path}.",
                headers={"Allow": allowed},
            )
    return openai_error_response(
        404, "NOT_FOUND", f"Invalid URL ({request.method} /v1/{path}): no such route."
    )
