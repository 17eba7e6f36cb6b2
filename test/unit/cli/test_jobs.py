"""The CLI resource API client: deltas, resume, 204, retries (httpx.MockTransport, no sockets)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from aymurai.cli.jobs import JobFollower, Reconnect
from aymurai.cli.stream import (
    ConnectionFailedError,
    Done,
    Progress,
    Queued,
    StreamEvent,
    TranscriptionFailedError,
)
from aymurai.transcription.schemas import Transcription

DOC_ID = str(uuid.UUID(int=7))
JOB_ID = "a" * 32


def paragraph(index: int, text: str) -> dict[str, Any]:
    return {
        "paragraph_id": f"p{index}",
        "speaker_no": 1,
        "speaker_id": None,
        "speaker_name": None,
        "start": float(index),
        "end": index + 0.5,
        "text": text,
        "language": None,
    }


def frame(event: str, event_id: int, data: dict[str, Any], retry: int | None = None) -> str:
    head = f"retry: {retry}\n" if retry is not None else ""
    return f"{head}id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


def delta(from_index: int, paragraphs: list[dict[str, Any]], length: int) -> dict[str, Any]:
    return {
        "document_id": DOC_ID,
        "from_index": from_index,
        "paragraphs": paragraphs,
        "length": length,
        "current_time": float(length),
        "total_time": 10.0,
    }


def done_data(texts: list[str]) -> dict[str, Any]:
    return {
        "document_id": DOC_ID,
        "document": [paragraph(i, t) for i, t in enumerate(texts)],
        "current_time": 10.0,
        "total_time": 10.0,
    }


def job(status: str = "running", **extra: Any) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    return {
        "id": JOB_ID,
        "document_id": DOC_ID,
        "name": "a.wav",
        "status": status,
        "position": None,
        "current_time": 0.0,
        "total_time": 10.0,
        "created_at": now,
        "updated_at": now,
        "error": None,
        "document": None,
        "events_url": f"/asr/transcriptions/{JOB_ID}/events",
        **extra,
    }


Answer = Callable[[httpx.Request], httpx.Response]


def sse(body: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def follow(
    answers: list[Answer], retries: int = 3
) -> tuple[list[StreamEvent], list[httpx.Request], list[Reconnect]]:
    requests: list[httpx.Request] = []
    reconnects: list[Reconnect] = []
    pending = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return pending.pop(0)(request)

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gw") as client:
        follower = JobFollower(
            client,
            Transcription.model_validate(job()),
            retries=retries,
            on_reconnect=reconnects.append,
            sleep=lambda _: None,
        )
        events: list[StreamEvent] = []
        try:
            for event in follower:
                events.append(event)
        finally:
            assert not pending, "unused answers"
    return events, requests, reconnects


def broken(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("cut", request=request)


def texts(event: StreamEvent) -> list[str]:
    assert isinstance(event, Progress | Done)
    return [p.text for p in event.document.document]


def test_follower_applies_deltas_and_resumes_with_last_event_id() -> None:
    """Deltas rebuild the document; a stream cut without done resumes with the last id."""
    first = (
        frame("queued", 1, {"document_id": DOC_ID, "position": 2}, retry=500)
        + frame("transcription", 2, delta(0, [paragraph(0, "a")], 1))
        + frame("transcription", 3, delta(0, [paragraph(0, "ab"), paragraph(1, "c")], 2))
    )
    second = frame(
        "transcription", 4, delta(0, [paragraph(0, "ab"), paragraph(1, "cd")], 2)
    ) + frame("transcription", 5, delta(1, [paragraph(1, "cde"), paragraph(2, "f")], 3))
    third = frame("done", 6, done_data(["ab", "cde", "f"]))
    events, requests, reconnects = follow(
        [lambda _: sse(first), lambda _: sse(second), lambda _: sse(third)]
    )
    assert events[0] == Queued(2)
    assert [texts(e) for e in events[1:]] == [
        ["a"],
        ["ab", "c"],
        ["ab", "cd"],
        ["ab", "cde", "f"],
        ["ab", "cde", "f"],
    ]
    assert isinstance(events[-1], Done)
    assert [r.headers.get("last-event-id") for r in requests] == [None, "3", "5"]
    assert [(r.attempt, r.delay_seconds, r.last_event_id) for r in reconnects] == [
        (1, 0.5, "3"),
        (1, 0.5, "5"),
    ]


def test_follower_lost_frame_resumes_for_a_snapshot() -> None:
    """A delta beyond the document held is not applied: resume from the previous id."""
    first = frame("transcription", 1, delta(0, [paragraph(0, "a")], 1)) + frame(
        "transcription", 2, delta(3, [paragraph(3, "x")], 4)
    )
    second = frame("done", 3, done_data(["a", "b"]))
    events, requests, _ = follow([lambda _: sse(first), lambda _: sse(second)])
    assert [texts(e) for e in events] == [["a"], ["a", "b"]]
    assert requests[1].headers["last-event-id"] == "1"


def test_follower_204_reads_the_finished_job() -> None:
    """A 204 on resume (the job ended): the stored document from GET is the result."""
    stored = job("done", document=done_data(["x"]))
    events, requests, _ = follow(
        [broken, lambda _: httpx.Response(204), lambda _: httpx.Response(200, json=stored)]
    )
    assert [texts(e) for e in events] == [["x"]] and isinstance(events[0], Done)
    assert requests[2].url.path == f"/asr/transcriptions/{JOB_ID}"


def test_follower_cancelled_job_raises_its_error() -> None:
    """An `event: error` CANCELLED ends the follow with that code (no resume)."""
    body = frame("error", 4, {"code": "CANCELLED", "detail": "cancelled", "request_id": "r"})
    with pytest.raises(TranscriptionFailedError) as caught:
        follow([lambda _: sse(body)])
    assert caught.value.code == "CANCELLED"


def test_follower_gives_up_after_retries_in_a_row() -> None:
    """Failures in a row beyond --retries raise the last one."""
    with pytest.raises(ConnectionFailedError) as caught:
        follow([broken, broken, broken], retries=2)
    assert caught.value.code == "CONNECTION_LOST"


def test_follower_backoff_doubles_per_failure() -> None:
    """Each failed attempt in a row doubles the wait (from the default 2 s)."""
    done = frame("done", 1, done_data(["a"]))
    _, _, reconnects = follow([broken, broken, broken, lambda _: sse(done)])
    assert [(r.attempt, r.delay_seconds) for r in reconnects] == [(1, 2.0), (2, 4.0), (3, 8.0)]
