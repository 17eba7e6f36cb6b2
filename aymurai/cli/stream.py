"""The HTTP + SSE side of the client: upload a file, yield what the gateway reports.

`open_transcription()` posts the file to `POST /asr/transcribe/stream` and, once the gateway
answers 200 `text/event-stream`, iterates over typed events: `Queued`, `Progress`, `Done`. Every
failure becomes one `ClientError` with a stable `code`, whatever its origin:

    ClientError                     code                        where it comes from
    ├── GatewayRejectedError        EMPTY_UPLOAD, QUEUE_FULL, …  JSON error body before the stream
    ├── TranscriptionFailedError    UPSTREAM_*, INTERNAL_ERROR   an `event: error` frame
    ├── ConnectionFailedError       CONNECTION_FAILED, TIMEOUT,  httpx transport errors; the stream
    │                               CONNECTION_LOST              ending without a terminal frame
    └── BadResponseError            BAD_RESPONSE                 a 200 that is not our SSE contract

SSE framing is httpx-sse's job (comments such as `: keepalive` never reach us); this module only
maps frames to events. There is no terminal code here: `live.py` draws, `main.py` decides exit
codes. httpx exceptions are translated in one place, `_translate_transport_errors`.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
from httpx_sse import EventSource, ServerSentEvent, connect_sse
from pydantic import ValidationError

from aymurai.transcription.schemas import ASRDocument

STREAM_PATH = "/asr/transcribe/stream"


class ClientError(Exception):
    """A failure the user should read about in one line."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(f"{code}: {detail}")

    def describe(self) -> str:
        """`CODE: detail (HTTP 415, request_id …)` on one line."""
        extras = []
        if self.status_code is not None:
            extras.append(f"HTTP {self.status_code}")
        if self.retry_after:
            extras.append(f"retry after {self.retry_after} s")
        if self.request_id:
            extras.append(f"request_id {self.request_id}")
        detail = " ".join(self.detail.split())
        suffix = f" ({', '.join(extras)})" if extras else ""
        return f"{self.code}: {detail}{suffix}"


class GatewayRejectedError(ClientError):
    """The gateway answered with an error status before any event."""


class TranscriptionFailedError(ClientError):
    """The stream ended with an `event: error` frame."""


class ConnectionFailedError(ClientError):
    """The gateway could not be reached, or the connection broke mid-stream."""


class BadResponseError(ClientError):
    """The gateway answered something that is not the documented contract."""


@dataclass(frozen=True)
class Queued:
    """Waiting for a free recognizer; `position` 1 means next."""

    position: int


@dataclass(frozen=True)
class Progress:
    """The whole transcript as it stands now (replace, do not merge)."""

    document: ASRDocument


@dataclass(frozen=True)
class Upstream:
    """The recognizer was lost mid-file: `reconnecting`, then `resumed` from `resume_from` s."""

    state: str
    attempt: int
    resume_from: float


@dataclass(frozen=True)
class Done:
    """The final transcript; nothing follows."""

    document: ASRDocument


StreamEvent = Queued | Progress | Upstream | Done


@dataclass
class TranscriptionStream:
    """An open stream; iterate it once for the events, ending with `Done`."""

    event_source: EventSource
    request_id: str | None
    document_id: str | None

    def __iter__(self) -> Iterator[StreamEvent]:
        with _translate_transport_errors(self.request_id):
            for sse in self.event_source.iter_sse():
                event = self._parse(sse)
                if event is not None:
                    yield event
                    if isinstance(event, Done):
                        return
        raise ConnectionFailedError(
            "CONNECTION_LOST",
            "The gateway closed the stream before the transcription finished.",
            request_id=self.request_id,
        )

    def _parse(self, sse: ServerSentEvent) -> StreamEvent | None:
        try:
            if sse.event == "transcription":
                return Progress(ASRDocument.model_validate_json(sse.data))
            if sse.event == "done":
                return Done(ASRDocument.model_validate_json(sse.data))
            if sse.event == "queued":
                return Queued(int(json.loads(sse.data)["position"]))
            if sse.event == "upstream":
                body = json.loads(sse.data)
                return Upstream(
                    str(body["state"]), int(body["attempt"]), float(body["resume_from"])
                )
            if sse.event == "error":
                body = json.loads(sse.data)
                raise TranscriptionFailedError(
                    str(body.get("code") or "INTERNAL_ERROR"),
                    str(body.get("detail") or "The transcription failed."),
                    request_id=body.get("request_id") or self.request_id,
                )
        except (ValidationError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadResponseError(
                "BAD_RESPONSE",
                f"The gateway sent an unreadable {sse.event!r} event.",
                request_id=self.request_id,
            ) from exc
        # Unknown event types are ignored so that the gateway can add new ones.
        return None


@contextmanager
def _translate_transport_errors(request_id: str | None) -> Iterator[None]:
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise ConnectionFailedError(
            "CONNECTION_FAILED", f"Timed out connecting to the gateway: {exc}"
        ) from exc
    except httpx.ConnectError as exc:
        raise ConnectionFailedError(
            "CONNECTION_FAILED", f"Cannot connect to the gateway: {exc}"
        ) from exc
    except httpx.TimeoutException as exc:
        raise ConnectionFailedError(
            "TIMEOUT",
            "The gateway sent nothing for too long (see --timeout).",
            request_id=request_id,
        ) from exc
    except httpx.TransportError as exc:
        raise ConnectionFailedError(
            "CONNECTION_LOST",
            f"The connection to the gateway broke: {exc or type(exc).__name__}",
            request_id=request_id,
        ) from exc


def _rejection(response: httpx.Response) -> GatewayRejectedError:
    request_id = response.headers.get("x-request-id")
    code = f"HTTP_{response.status_code}"
    detail = response.reason_phrase or "The gateway rejected the request."
    try:
        body = json.loads(response.read())
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        raw_detail = body.get("detail")
        if raw_detail:
            detail = raw_detail if isinstance(raw_detail, str) else json.dumps(raw_detail)
        request_id = body.get("request_id") or request_id
    return GatewayRejectedError(
        code,
        detail,
        request_id=request_id,
        status_code=response.status_code,
        retry_after=response.headers.get("retry-after"),
    )


@contextmanager
def open_transcription(
    client: httpx.Client, audio: BinaryIO, *, filename: str, use_cache: bool = True
) -> Iterator[TranscriptionStream]:
    """Upload `audio` and open its event stream; leaving the block closes the connection.

    Args:
        client: an `httpx.Client` whose `base_url` is the gateway.
        audio: the open file; it is streamed, never read whole into memory.
        filename: the name sent in the multipart part (the gateway sniffs content, not names).
        use_cache: False asks the gateway to transcribe again even when it knows the audio.

    Raises:
        GatewayRejectedError: the gateway answered an error status.
        ConnectionFailedError: the gateway is unreachable.
        BadResponseError: the answer is not an event stream.
    """
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    with (
        _translate_transport_errors(None),
        connect_sse(
            client,
            "POST",
            STREAM_PATH,
            params={"use_cache": "true" if use_cache else "false"},
            files={"file": (Path(filename).name, audio, content_type)},
        ) as event_source,
    ):
        response = event_source.response
        if response.is_error:
            raise _rejection(response)
        request_id = response.headers.get("x-request-id")
        media_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if media_type != "text/event-stream":
            raise BadResponseError(
                "BAD_RESPONSE",
                f"Expected an event stream, got HTTP {response.status_code} {media_type!r}.",
                request_id=request_id,
                status_code=response.status_code,
            )
        yield TranscriptionStream(event_source, request_id, response.headers.get("x-document-id"))
