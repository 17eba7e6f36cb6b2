"""SSE framing of job updates (pure)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from aymurai.api.sse import KEEPALIVE_FRAME, encode_event, frames_from_updates
from aymurai.transcription.jobs import (
    KEEPALIVE,
    Done,
    Failed,
    JobUpdate,
    Keepalive,
    Queued,
    Upstream,
)
from aymurai.transcription.schemas import ASRDocument

DOC_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_encode_event_is_one_frame() -> None:
    """id, event and a single data line, ended by a blank line."""
    assert encode_event("done", '{"a":1}', 3) == b'id: 3\nevent: done\ndata: {"a":1}\n\n'


async def _frames(updates: list[JobUpdate | Keepalive]) -> list[bytes]:
    async def source() -> AsyncIterator[JobUpdate | Keepalive]:
        for update in updates:
            yield update

    return [frame async for frame in frames_from_updates(source())]


async def test_frames_number_events_but_not_keepalives() -> None:
    """Ids are consecutive over events; keepalives are bare comments; the stream ends at done."""
    document = ASRDocument(document_id=DOC_ID, document=[], current_time=1.0, total_time=1.0)
    frames = await _frames(
        [Queued(DOC_ID, 2), KEEPALIVE, Queued(DOC_ID, 1), Done(document), Queued(DOC_ID, 9)]
    )
    assert frames[1] == KEEPALIVE_FRAME == b": keepalive\n\n"
    assert frames[0].startswith(b"id: 1\nevent: queued\n")
    assert json.loads(frames[0].split(b"data: ")[1]) == {
        "document_id": str(DOC_ID),
        "position": 2,
    }
    assert frames[2].startswith(b"id: 2\nevent: queued\n")
    assert frames[3].startswith(b"id: 3\nevent: done\n")
    assert len(frames) == 4


async def test_frames_error_carries_code_detail_and_request_id() -> None:
    """A failure is one `error` frame with code, detail and request_id."""
    [frame] = await _frames([Failed("UPSTREAM_TIMEOUT", "too slow")])
    assert frame.startswith(b"id: 1\nevent: error\n")
    data = json.loads(frame.split(b"data: ")[1])
    assert data["code"] == "UPSTREAM_TIMEOUT"
    assert data["detail"] == "too slow"
    assert "request_id" in data


async def test_frames_upstream_event_carries_state_attempt_and_resume_from() -> None:
    """A resume is an `upstream` event: state, attempt, resume_from in whole milliseconds."""
    [frame] = await _frames([Upstream(DOC_ID, "reconnecting", 2, 12.34567)])
    assert frame.startswith(b"id: 1\nevent: upstream\n")
    assert json.loads(frame.split(b"data: ")[1]) == {
        "state": "reconnecting",
        "attempt": 2,
        "resume_from": 12.346,
    }
