"""OpenAI's audio API: `POST /v1/audio/transcriptions` (with `stream`) and `GET /v1/models`.

The same machinery as the other routes (upload spooling, cache, admission, jobs) behind OpenAI's
request and response shapes, so the `openai` SDKs, Open WebUI and other OpenAI clients work
unchanged. We follow the published API reference and check the shapes against the official
Python and Node SDKs (test/integration/test_openai_sdk.py). Choices, and why:

- Errors are OpenAI's object `{"error": {"message", "type", "param", "code"}}`, produced by this
  router's own route class, so they stay scoped to `/v1` while the rest of the API keeps its
  `{"detail", "code", "request_id"}` body. `code` is our stable wire code. Statuses follow OpenAI
  where it differs from our own API: a full queue is 429 (with Retry-After, which both SDKs honour),
  an undecodable or missing file 400 (OpenAI never answers 415 or 422 here).
- A parameter WLK cannot honour is refused (400 naming it), never silently ignored: `prompt`,
  word timestamps, `include[]=logprobs`, a `temperature` other than 0, a `language` other than
  the one WLK was started with (WLK's language is per server; see README).
- The stream is OpenAI's SSE framing: `data:` lines only, no `id:` or `event:` line. Idle comments
  (`: keepalive`) are safe for both SDKs as long as no `id:` was ever sent (the Python SDK keeps the
  last id across events, and would turn a comment block into an empty event once one was seen).
- Deltas carry committed text only (`transcription/text_deltas.py`), so their concatenation is
  the `done` text and the stored transcript; WLK's volatile buffer never goes out.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from aymurai import errors
from aymurai.api.deps import ServiceDep, SettingsDep
from aymurai.api.errors import status_for, status_for_code
from aymurai.api.sse import KEEPALIVE_FRAME, EventStreamResponse
from aymurai.api.upload import SpooledUpload, receive_audio_upload, upload_limits
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
    Transcribing,
    TranscriptionJob,
)
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.service import TranscriptionService
from aymurai.transcription.text_deltas import CommittedTextDeltas, committed_text

logger = logging.getLogger(__name__)

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json", "diarized_json"]
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = (
    "json",
    "text",
    "srt",
    "vtt",
    "verbose_json",
    "diarized_json",
)
STREAM_FORMATS = ("json", "text")
# Listed by GET /v1/models when TRANSCRIBE_OPENAI_MODELS is empty (any name is accepted then).
DEFAULT_MODEL = "whisperlivekit"
METRICS_ENDPOINT = "openai"

# Where OpenAI's statuses differ from our own API's (api/errors.py holds the rest).
OPENAI_STATUS_BY_CODE = {
    errors.QueueFullError.code: 429,
    errors.TooManyUploadsError.code: 429,
    errors.InvalidAudioError.code: 400,
    errors.MissingFileError.code: 400,
}


# --- errors -----------------------------------------------------------------------------------
def error_type_for(status: int) -> str:
    """OpenAI's error `type` for a status (the types its error-code docs use)."""
    if status == 429:
        return "rate_limit_error"
    if status == 503:
        return "service_unavailable_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_object(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"message": message, "type": error_type_for(status), "param": param, "code": code}


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


def openai_status_for_code(code: str) -> int:
    return OPENAI_STATUS_BY_CODE.get(code) or status_for_code(code)


def response_for_gateway_error(exc: errors.GatewayError) -> JSONResponse:
    status = OPENAI_STATUS_BY_CODE.get(exc.code) or status_for(exc)
    headers = {}
    if isinstance(exc, errors.QueueFullError | errors.TooManyUploadsError):
        headers["Retry-After"] = str(exc.retry_after_seconds)
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


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error object, every `/v1` error answer (and the last event of a failed stream)."""

    error: OpenAIErrorDetail


class ModelPublic(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "aymurai"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    route_class=OpenAIRoute,
    responses={"default": {"model": OpenAIErrorBody, "description": "OpenAI's error object"}},
)


# --- request ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TranscriptionRequest:
    model: str
    response_format: ResponseFormat
    stream: bool


# Fields we read; array fields come as `name[]` from the SDKs (and plain `name` from some tools).
KNOWN_FIELDS = {
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities",
    "stream",
    "include",
    "chunking_strategy",
    "known_speaker_names",
    "known_speaker_references",
    "keywords",
    "languages",
}


def _single(fields: Mapping[str, list[str]], name: str) -> str | None:
    values = fields.get(name, [])
    if len(values) > 1:
        raise errors.InvalidRequestError(f"'{name}' is given more than once.", param=name)
    return values[0].strip() if values else None


def _multi(fields: Mapping[str, list[str]], name: str) -> list[str]:
    return [v.strip() for v in fields.get(name, []) + fields.get(f"{name}[]", []) if v.strip()]


def _parse_bool(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    raise errors.InvalidRequestError(f"'{name}' must be true or false, not {value!r}.", param=name)


def _reject(name: str, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(message, param=name)


def _primary_language(value: str) -> str:
    # "en-US" and "en_us" name the language WLK knows as "en".
    return value.strip().lower().replace("_", "-").split("-")[0]


def _check_languages(fields: Mapping[str, list[str]], server_language: str | None) -> None:
    """`language` must be the server's; `languages[]` (candidates) must include it."""
    language = _primary_language(_single(fields, "language") or "")
    if language and language != server_language:
        raise _reject(
            "language",
            f"This WhisperLiveKit server transcribes {server_language!r} only; "
            "its language is a server setting, not chosen per request."
            if server_language
            else "This WhisperLiveKit server detects the language itself and cannot be asked "
            "for one per request; leave language empty.",
        )
    candidates = {_primary_language(value) for value in _multi(fields, "languages")}
    if candidates and server_language not in candidates:
        raise _reject(
            "languages",
            f"This WhisperLiveKit server transcribes {server_language!r} only."
            if server_language
            else "This WhisperLiveKit server detects the language itself and cannot be limited "
            "to candidates; leave languages empty.",
        )


def parse_transcription_request(
    fields: Mapping[str, list[str]], settings: Settings
) -> TranscriptionRequest:
    """Read and check the form fields of a transcription request.

    Raises:
        InvalidRequestError: a field is malformed or asks for what WLK cannot do; `param` names it.
    """
    unknown = sorted({name.removesuffix("[]") for name in fields} - KNOWN_FIELDS)
    if unknown:
        raise _reject(unknown[0], f"Unrecognized request argument supplied: {unknown[0]}")

    model = _single(fields, "model")
    if not model:
        raise _reject("model", "You must provide a model parameter.")
    allowed = settings.transcribe_openai_models
    if allowed and model not in allowed:
        raise _reject(
            "model", f"The model {model!r} is not served here; use one of: {', '.join(allowed)}."
        )

    response_format = _single(fields, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise _reject(
            "response_format",
            f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, "
            f"not {response_format!r}.",
        )
    stream = _parse_bool(_single(fields, "stream") or "", "stream")
    if stream and response_format not in STREAM_FORMATS:
        raise _reject(
            "response_format",
            f"response_format {response_format!r} cannot be streamed; "
            "use json or text with stream=true.",
        )

    _check_languages(fields, settings.transcribe_wlk_language)
    if _single(fields, "prompt"):
        raise _reject(
            "prompt",
            "WhisperLiveKit takes no prompt per request (its prompt is a server setting); "
            "leave prompt empty.",
        )
    temperature = _single(fields, "temperature")
    if temperature:
        try:
            value = float(temperature)
        except ValueError:
            raise _reject(
                "temperature", f"temperature must be a number, not {temperature!r}."
            ) from None
        if value != 0:
            raise _reject("temperature", "WhisperLiveKit decodes at temperature 0 only.")
    for granularity in _multi(fields, "timestamp_granularities"):
        if granularity == "word":
            raise _reject(
                "timestamp_granularities",
                "Word timestamps are not available from WhisperLiveKit; ask for 'segment'.",
            )
        if granularity != "segment":
            raise _reject(
                "timestamp_granularities",
                f"timestamp_granularities must be 'segment', not {granularity!r}.",
            )
    if _multi(fields, "include"):
        raise _reject("include", "WhisperLiveKit returns no logprobs; leave include empty.")
    chunking = _single(fields, "chunking_strategy")
    if chunking and chunking != "auto":
        raise _reject(
            "chunking_strategy", "WhisperLiveKit segments the audio itself; only 'auto' is valid."
        )
    for name in ("known_speaker_names", "known_speaker_references"):
        if _multi(fields, name):
            raise _reject(name, f"WhisperLiveKit cannot match known speakers; leave {name} empty.")
    if _multi(fields, "keywords"):
        raise _reject("keywords", "WhisperLiveKit takes no keywords per request; leave it empty.")
    return TranscriptionRequest(model=model, response_format=response_format, stream=stream)


# --- responses --------------------------------------------------------------------------------
def _ms(seconds: float | None) -> float:
    return round(max(seconds or 0.0, 0.0), 3)


def _usage(document: ASRDocument) -> dict[str, Any]:
    # OpenAI's "duration" usage: real audio seconds, the shape both SDKs type for json bodies.
    return {"type": "duration", "seconds": _ms(document.total_time)}


def _speaker(paragraph: ASRParagraph) -> str:
    name = (paragraph.speaker_name or "").strip()
    return name or paragraph.speaker_id or f"speaker-{paragraph.speaker_no}"


def _language(document: ASRDocument, settings: Settings) -> str:
    detected = next((p.language for p in document.document if p.language), None)
    # The SDKs type `language` as a required string; "unknown" says so rather than guessing.
    return detected or settings.transcribe_wlk_language or "unknown"


def _segments(document: ASRDocument) -> list[ASRParagraph]:
    return [p for p in document.document if p.text.split()]


def verbose_json_body(document: ASRDocument, settings: Settings) -> dict[str, Any]:
    """OpenAI's verbose_json: segments carry only fields WLK gives (no logprobs, tokens, seek)."""
    diarized = is_diarized(document)
    segments = []
    for index, paragraph in enumerate(_segments(document)):
        segment: dict[str, Any] = {
            "id": index,
            "start": _ms(paragraph.start),
            "end": _ms(max(paragraph.end, paragraph.start)),
            "text": " ".join(paragraph.text.split()),
        }
        if diarized:
            segment["speaker"] = _speaker(paragraph)
        segments.append(segment)
    return {
        "task": "transcribe",
        "language": _language(document, settings),
        "duration": _ms(document.total_time),
        "text": plain_text(document),
        "segments": segments,
        "usage": _usage(document),
    }


def diarized_json_body(document: ASRDocument) -> dict[str, Any]:
    segments = [
        {
            "type": "transcript.text.segment",
            "id": f"seg_{index}",
            "start": _ms(paragraph.start),
            "end": _ms(max(paragraph.end, paragraph.start)),
            "speaker": _speaker(paragraph),
            "text": " ".join(paragraph.text.split()),
        }
        for index, paragraph in enumerate(_segments(document))
    ]
    return {
        "task": "transcribe",
        "duration": _ms(document.total_time),
        "text": plain_text(document),
        "segments": segments,
        "usage": _usage(document),
    }


def render_response(
    document: ASRDocument, response_format: ResponseFormat, settings: Settings
) -> Response:
    """The finished transcript in the requested format (non-streaming answer)."""
    if response_format == "json":
        return JSONResponse({"text": plain_text(document), "usage": _usage(document)})
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
def encode_data(payload: Mapping[str, Any]) -> bytes:
    # One `data:` line: json.dumps escapes newlines inside strings.
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def delta_frame(delta: str) -> bytes:
    return encode_data({"type": "transcript.text.delta", "delta": delta})


def done_frame(text: str) -> bytes:
    return encode_data({"type": "transcript.text.done", "text": text})


def error_frame(code: str, message: str) -> bytes:
    status = openai_status_for_code(code)
    return encode_data({"type": "error", "error": error_object(status, code, message)})


async def cached_frames(document: ASRDocument) -> AsyncIterator[bytes]:
    """A cache hit streams too: one delta per paragraph, then done."""
    sent: list[str] = []
    for paragraph in document.document:
        words = " ".join(paragraph.text.split())
        if words:
            yield delta_frame(f" {words}" if sent else words)
            sent.append(words)
    yield done_frame(" ".join(sent))


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
    """The job's newest updates for one response; leaving early unsubscribes.

    We read the updates (WLK's snapshots), not rendered documents: only a snapshot tells
    committed lines from the volatile buffer, which the deltas need.
    """
    updates = job.updates(
        min_interval_seconds=settings.transcribe_sse_min_event_interval_seconds,
        keepalive_seconds=settings.sse_keepalive,
    )
    async with aclosing(updates):  # type: ignore[type-var]
        async for update in updates:
            yield update


# --- routes -----------------------------------------------------------------------------------
async def _cached_or_started(
    service: TranscriptionService, upload: SpooledUpload
) -> ASRDocument | TranscriptionJob:
    """A cached result, or a started job that now owns the spooled file."""
    try:
        cached = await service.find_cached(upload.document_id)
        if cached is not None:
            logger.info("cache hit for %s", upload.document_id)
            upload.path.unlink(missing_ok=True)
            return cached
        info = await service.probe(upload.path)
        return service.start(
            document_id=upload.document_id,
            name=upload.filename,
            audio_path=upload.path,
            info=info,
        )
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise


async def _result_unless_client_leaves(
    request: Request, job: TranscriptionJob
) -> Done | Failed | None:
    """The job's result, or None as soon as the client disconnects (so WLK is freed at once)."""
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
    request: Request, service: ServiceDep, settings: SettingsDep
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
        outcome = await _cached_or_started(service, upload)
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
    if params.stream:
        frames = stream_frames(
            watched_updates(job, settings),
            keepalive_seconds=settings.sse_keepalive,
            metrics=metrics,
            received_at=received_at,
        )
        return EventStreamResponse(frames, headers=headers)

    result = await _result_unless_client_leaves(request, job)
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
async def list_models(settings: SettingsDep) -> ModelList:
    """The model names `/v1/audio/transcriptions` accepts, in OpenAI's list shape."""
    return ModelList(data=[ModelPublic(id=name) for name in _model_names(settings)])


@router.get("/models/{model}", response_model=ModelPublic)
async def retrieve_model(model: str, settings: SettingsDep) -> ModelPublic:
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
