"""The memory event log: followers, a reader that fell behind, the terminal event, encodings."""

from __future__ import annotations

import uuid

import anyio

from aymurai.transcription.channel import EPOCH_SPAN, JobEvent, MemoryEventLog, event_id
from aymurai.transcription.deltas import full_snapshot
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

DOC_ID = uuid.uuid4()


def _queued(number: int) -> JobEvent:
    return JobEvent(id=number, kind="queued", document=ASRDocument(document_id=DOC_ID), position=1)


async def test_channel_reader_follows_then_falls_behind_to_a_gap() -> None:
    """Known cursor → the events after it; a cursor no longer kept → the newest alone, gap."""
    log = MemoryEventLog(history=4)
    for number in range(1, 4):
        await log.append(_queued(number))
    read = await log.read_after(1, timeout_seconds=0)
    assert read is not None and [e.id for e in read.events] == [2, 3] and not read.gap
    for number in range(4, 10):
        await log.append(_queued(number))
    behind = await log.read_after(2, timeout_seconds=0)
    assert behind is not None and [e.id for e in behind.events] == [9] and behind.gap
    start = await log.read_after(-1, timeout_seconds=0)
    assert start is not None and [e.id for e in start.events] == [9] and start.gap


async def test_channel_read_waits_for_the_next_event_or_times_out() -> None:
    """Nothing newer: None after the timeout; an append wakes a waiting reader."""
    log = MemoryEventLog()
    await log.append(_queued(1))
    assert await log.read_after(1, timeout_seconds=0.01) is None
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: log.append(_queued(2)))
        with anyio.fail_after(1):
            read = await log.read_after(1, timeout_seconds=None)
    assert read is not None and [e.id for e in read.events] == [2]


async def test_channel_terminal_event_is_final() -> None:
    """Nothing is appended after done/error."""
    log = MemoryEventLog()
    await log.append(JobEvent(id=1, kind="error", error_code="CANCELLED", error_detail="x"))
    await log.append(_queued(2))
    assert log.latest is not None and log.latest.id == 1


async def test_channel_old_events_drop_their_whole_document_encodings() -> None:
    """Only the newest events keep whole-document JSON; deltas stay."""
    log = MemoryEventLog()
    paragraph = ASRParagraph(paragraph_id="p0", speaker_no=1, start=0, end=1, text="a")
    events = [
        JobEvent(
            id=number,
            kind="transcription",
            document=ASRDocument(document_id=DOC_ID, document=[paragraph]),
            delta=full_snapshot([paragraph]),
        )
        for number in range(1, 5)
    ]
    for event in events:
        assert event.document_json and event.delta_json
        await log.append(event)
    assert "document_json" not in events[0].__dict__
    assert "delta_json" in events[0].__dict__
    assert "document_json" in events[-1].__dict__


def test_channel_event_ids_order_across_epochs() -> None:
    """Any id of a later run is above every id of an earlier one."""
    assert event_id(0, EPOCH_SPAN - 1) < event_id(1, 1) < event_id(2, 1)
