"""SSE framing of job events (pure): the POST stream's snapshots and the resumable stream."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from aymurai.api.sse import (
    KEEPALIVE_FRAME,
    encode_event,
    resumable_frames,
    snapshot_frames,
)
from aymurai.transcription.channel import JobEvent
from aymurai.transcription.deltas import compute_delta
from aymurai.transcription.jobs import KEEPALIVE, Keepalive
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

DOC_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")

Item = tuple[JobEvent, bool] | Keepalive


def _paragraph(index: int, text: str) -> ASRParagraph:
    return ASRParagraph(
        paragraph_id=f"p{index}", speaker_no=1, start=index, end=index + 1, text=text
    )


def _transcription(event_id: int, previous: list[ASRParagraph], texts: list[str]) -> JobEvent:
    paragraphs = [_paragraph(i, text) for i, text in enumerate(texts)]
    document = ASRDocument(
        document_id=DOC_ID, document=paragraphs, current_time=float(event_id), total_time=9.0
    )
    return JobEvent(
        id=event_id,
        kind="transcription",
        document=document,
        delta=compute_delta(previous, paragraphs),
    )


async def _collect(frames: AsyncIterator[bytes]) -> list[bytes]:
    return [frame async for frame in frames]


async def _source(items: list[Item]) -> AsyncIterator[Item]:
    for item in items:
        yield item


def _data(frame: bytes) -> dict[str, object]:
    return json.loads(frame.split(b"data: ")[1])  # type: ignore[no-any-return]


def test_encode_event_is_one_frame() -> None:
    """id, event and a single data line, ended by a blank line; `retry:` first when asked."""
    assert encode_event("done", '{"a":1}', 3) == b'id: 3\nevent: done\ndata: {"a":1}\n\n'
    assert encode_event("done", "{}", 3, retry_ms=2000).startswith(b"retry: 2000\nid: 3\n")


async def test_snapshot_frames_number_events_but_not_keepalives() -> None:
    """The POST stream: ids 1, 2, 3 … whatever the job's ids; full documents; ends at done."""
    queued = JobEvent(id=7, kind="queued", document=ASRDocument(document_id=DOC_ID), position=2)
    first = _transcription(8, [], ["a"])
    second = _transcription(9, list(first.document.document), ["a", "b"])  # type: ignore[union-attr]
    done = JobEvent(id=10, kind="done", document=second.document)
    frames = await _collect(
        snapshot_frames(
            _source([(queued, True), KEEPALIVE, (first, False), (second, False), (done, False)])
        )
    )
    assert frames[1] == KEEPALIVE_FRAME == b": keepalive\n\n"
    assert frames[0].startswith(b"id: 1\nevent: queued\n")
    assert _data(frames[0]) == {"document_id": str(DOC_ID), "position": 2}
    assert frames[3].startswith(b"id: 3\nevent: transcription\n")
    assert [p["text"] for p in _data(frames[3])["document"]] == ["a", "b"]  # type: ignore[attr-defined]
    assert frames[4].startswith(b"id: 4\nevent: done\n")
    assert len(frames) == 5


async def test_snapshot_frames_error_carries_code_detail_and_request_id() -> None:
    """A failure is one `error` frame with code, detail and request_id."""
    failed = JobEvent(id=4, kind="error", error_code="UPSTREAM_TIMEOUT", error_detail="too slow")
    [frame] = await _collect(snapshot_frames(_source([(failed, True)])))
    assert frame.startswith(b"id: 1\nevent: error\n")
    data = _data(frame)
    assert data["code"] == "UPSTREAM_TIMEOUT"
    assert data["detail"] == "too slow"
    assert "request_id" in data


async def test_resumable_frames_snapshot_first_then_deltas_with_job_ids() -> None:
    """First frame: retry + full snapshot; then deltas; ids are the job's event ids."""
    first = _transcription(5, [], ["a", "b"])
    second = _transcription(6, list(first.document.document), ["a", "b", "c"])  # type: ignore[union-attr]
    frames = await _collect(
        resumable_frames(_source([(first, True), (second, False)]), retry_ms=1500)
    )
    assert frames[0].startswith(b"retry: 1500\nid: 5\nevent: transcription\n")
    assert _data(frames[0])["from_index"] == 0
    assert _data(frames[0])["length"] == 2
    assert frames[1].startswith(b"id: 6\nevent: transcription\n")
    delta = _data(frames[1])
    assert (delta["from_index"], delta["length"]) == (2, 3)
    assert [p["text"] for p in delta["paragraphs"]] == ["c"]  # type: ignore[attr-defined]


async def test_resumable_frames_are_encoded_once_for_every_subscriber() -> None:
    """Two subscribers get the very same bytes object for a shared event."""
    first = _transcription(5, [], ["a"])
    second = _transcription(6, list(first.document.document), ["a", "b"])  # type: ignore[union-attr]
    one = await _collect(resumable_frames(_source([(first, True), (second, False)]), retry_ms=1))
    two = await _collect(resumable_frames(_source([(first, True), (second, False)]), retry_ms=1))
    assert one[1] is two[1]


async def test_resumable_frames_end_silently_when_suspended() -> None:
    """A job left for the next start ends the stream without a frame (the client reconnects)."""
    suspended = JobEvent(id=3, kind="suspended")
    assert await _collect(resumable_frames(_source([(suspended, True)]), retry_ms=1)) == []


async def test_upstream_event_in_both_streams() -> None:
    """A resume is an `upstream` event with state, attempt and resume_from in both streams."""
    notice = {"state": "reconnecting", "attempt": 2, "resume_from": 12.346}
    event = JobEvent(id=5, kind="upstream", upstream=notice)
    [posted] = await _collect(snapshot_frames(_source([(event, False)])))
    [resumable] = await _collect(resumable_frames(_source([(event, False)]), retry_ms=1))
    assert posted.startswith(b"id: 1\nevent: upstream\n")
    assert b"id: 5\nevent: upstream\n" in resumable
    assert _data(posted) == _data(resumable) == notice
