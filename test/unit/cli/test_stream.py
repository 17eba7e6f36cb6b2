"""Mapping HTTP answers and SSE frames to events and errors (httpx.MockTransport, no sockets)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable

import httpx
import pytest

from aymurai.cli.main import EXIT_BUSY, EXIT_CONNECTION, EXIT_REJECTED, exit_code_for
from aymurai.cli.stream import (
    BadResponseError,
    ClientError,
    ConnectionFailedError,
    Done,
    GatewayRejectedError,
    Progress,
    Queued,
    StreamEvent,
    TranscriptionFailedError,
    open_transcription,
)

DOC_ID = str(uuid.UUID(int=7))


def document_json(text: str, current: float, total: float = 2.0) -> str:
    paragraph = {
        "paragraph_id": "p0",
        "speaker_no": 1,
        "speaker_id": "speaker-1",
        "speaker_name": None,
        "start": 0.0,
        "end": current,
        "text": text,
        "language": None,
    }
    return json.dumps(
        {
            "document_id": DOC_ID,
            "document": [paragraph],
            "current_time": current,
            "total_time": total,
        }
    )


def sse_response(body: str) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/asr/transcribe/stream"
        return httpx.Response(
            200,
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "x-request-id": "req-1",
                "x-document-id": DOC_ID,
            },
            content=body.encode(),
        )

    return handler


def collect(handler: Callable[[httpx.Request], httpx.Response]) -> list[StreamEvent]:
    transport = httpx.MockTransport(handler)
    with (
        httpx.Client(transport=transport, base_url="http://gateway") as client,
        open_transcription(client, io.BytesIO(b"RIFF"), filename="a.wav") as stream,
    ):
        assert stream.request_id == "req-1"
        assert stream.document_id == DOC_ID
        return list(stream)


def test_stream_yields_queued_progress_and_done() -> None:
    """Frames become typed events; comments, CRLF and multi-line data are handled."""
    head, _, tail = document_json("f440", 1.0).partition(", ")  # a newline between tokens is legal
    body = (
        'id: 1\r\nevent: queued\r\ndata: {"document_id": "x", "position": 2}\r\n\r\n'
        ": keepalive\n\n"
        f"id: 2\nevent: transcription\ndata: {head},\ndata: {tail}\n\n"
        f"id: 3\nevent: done\ndata: {document_json('f440 f880', 2.0)}\n\n"
    )
    events = collect(sse_response(body))
    assert events[0] == Queued(position=2)
    assert isinstance(events[1], Progress)
    assert events[1].document.document[0].text == "f440"
    assert isinstance(events[2], Done)
    assert events[2].document.current_time == 2.0


def test_stream_error_event_raises_with_code_and_request_id() -> None:
    """An `event: error` frame becomes TranscriptionFailedError carrying the code."""
    body = (
        "id: 1\nevent: error\n"
        'data: {"code": "UPSTREAM_TIMEOUT", "detail": "too slow", "request_id": "req-9"}\n\n'
    )
    with pytest.raises(TranscriptionFailedError) as caught:
        collect(sse_response(body))
    assert caught.value.code == "UPSTREAM_TIMEOUT"
    assert caught.value.describe() == "UPSTREAM_TIMEOUT: too slow (request_id req-9)"


def test_stream_without_terminal_frame_is_connection_lost() -> None:
    """A stream that ends before `done` or `error` is reported, not treated as success."""
    body = f"id: 1\nevent: transcription\ndata: {document_json('f440', 1.0)}\n\n"
    with pytest.raises(ConnectionFailedError) as caught:
        collect(sse_response(body))
    assert caught.value.code == "CONNECTION_LOST"
    assert exit_code_for(caught.value) == EXIT_CONNECTION


def test_stream_unreadable_data_is_bad_response() -> None:
    """A transcription frame whose data is not an ASRDocument raises BadResponseError."""
    with pytest.raises(BadResponseError):
        collect(sse_response('event: transcription\ndata: {"nope": 1}\n\n'))


def test_stream_error_body_before_stream_is_rejected() -> None:
    """A JSON error body keeps code, detail, status, request id and Retry-After."""

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503,
            headers={"retry-after": "7"},
            json={"detail": "Too many.", "code": "QUEUE_FULL", "request_id": "req-2"},
        )

    with pytest.raises(GatewayRejectedError) as caught:
        collect(handler)
    assert caught.value.describe() == (
        "QUEUE_FULL: Too many. (HTTP 503, retry after 7 s, request_id req-2)"
    )
    assert exit_code_for(caught.value) == EXIT_BUSY


def test_stream_non_json_error_body_uses_status() -> None:
    """An error page that is not JSON still yields a code and the X-Request-ID header."""

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, headers={"x-request-id": "req-3"}, text="<html>")

    with pytest.raises(GatewayRejectedError) as caught:
        collect(handler)
    assert caught.value.code == "HTTP_404"
    assert caught.value.request_id == "req-3"
    assert exit_code_for(caught.value) == EXIT_REJECTED


def test_stream_connect_failure_is_connection_failed() -> None:
    """A refused connection becomes CONNECTION_FAILED."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ConnectionFailedError) as caught:
        collect(handler)
    assert caught.value.code == "CONNECTION_FAILED"


def test_exit_code_for_unknown_server_code_is_failure() -> None:
    """Codes the client does not know map to the generic failure exit code."""
    assert exit_code_for(ClientError("INTERNAL_ERROR", "bug")) == 1
    assert exit_code_for(ClientError("SOMETHING_NEW", "x", status_code=418)) == EXIT_REJECTED
