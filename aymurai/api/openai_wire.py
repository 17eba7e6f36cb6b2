"""OpenAI's audio API on the wire: request fields, response bodies, stream frames (pure, no I/O).

`api/routes/openai.py` serves these; keeping the shapes here lets unit tests check them against
OpenAI's API reference and SDK types without a server. Shapes, and why:

- Errors are OpenAI's object `{"error": {"message", "type", "param", "code"}}`; `code` is our
  stable wire code and `type` the class OpenAI's error docs use for the status. Statuses follow
  OpenAI where they differ from our own API: a full queue is 429 (both SDKs honour Retry-After),
  an undecodable or missing file 400 (OpenAI never answers 415 or 422 here).
- A parameter WLK cannot honour is refused (400 naming it), never silently ignored: `prompt`,
  word timestamps, `include[]=logprobs`, a `temperature` other than 0, a `language` other than the
  one WLK was started with (WLK's language is per server; see README), unknown fields.
- Bodies carry only what WLK really gives: segments have `id`, `start`, `end`, `text` (and
  `speaker` when diarized), never invented logprobs, tokens or temperatures. `usage` is OpenAI's
  `duration` kind, the real audio length, which both SDKs type for json bodies.
- Stream frames are one `data:` line each, never `id:` or `event:`: the Python SDK keeps the last
  id across events and, once it has seen one, turns a `: keepalive` comment block into an empty
  event that fails to parse. With no id, comments are invisible to both SDKs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from aymurai import errors
from aymurai.api.errors import status_for_code
from aymurai.settings import Settings
from aymurai.transcription.formats import is_diarized, plain_text
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

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


# --- errors ---------------------------------------------------------------------------------------
# Where OpenAI's statuses differ from our own API's (api/errors.py holds the rest).
OPENAI_STATUS_BY_CODE = {
    errors.QueueFullError.code: 429,
    errors.TooManyUploadsError.code: 429,
    errors.InvalidAudioError.code: 400,
    errors.MissingFileError.code: 400,
}


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


def openai_status_for_code(code: str) -> int:
    return OPENAI_STATUS_BY_CODE.get(code) or status_for_code(code)


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error object, every `/v1` error answer (and the last event of a failed stream)."""

    error: OpenAIErrorDetail


# --- models ---------------------------------------------------------------------------------------
class ModelPublic(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "aymurai"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


# --- request --------------------------------------------------------------------------------------
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


# --- bodies ---------------------------------------------------------------------------------------
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


def json_body(document: ASRDocument) -> dict[str, Any]:
    """OpenAI's default `json` body: the text and the audio duration as usage."""
    return {"text": plain_text(document), "usage": _usage(document)}


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


# --- stream frames --------------------------------------------------------------------------------
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
