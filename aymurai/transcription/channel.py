"""The job event channel: the numbered events of one job, kept so subscribers can follow and resume.

A job's recorder (see `jobs.py`) turns its coalesced updates into `JobEvent`s and appends them
here; every subscriber (the legacy POST stream, the events stream, the blocking endpoint) reads
from here, so an update is computed and encoded once whatever the number of subscribers.

`EventLog` is the interface; `MemoryEventLog` keeps the newest `history` events in a ring, which
is enough for followers that are momentarily slow. A reader that fell further behind is told so
(`Read.gap`) and catches up with one full snapshot of the newest state, never with a backlog. A
shared implementation (Redis Streams) can replace the memory one without changing any reader.

Event ids are integers, strictly increasing over the job's whole life: `epoch * EPOCH_SPAN + n`
where `epoch` is a persisted run counter (bumped when a job is re-run after a restart) and `n`
counts the events of this run from 1. Plain integers, so a client or proxy comparing them as
numbers orders them correctly; the first run has epoch 0, so its ids are simply 1, 2, 3 …
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

import anyio

from aymurai.transcription.deltas import Delta
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

EPOCH_SPAN = 1_000_000_000
DEFAULT_HISTORY = 64
FULL_ENCODINGS_KEPT = 2

EventKind = Literal["queued", "transcription", "upstream", "done", "error", "suspended"]
TERMINAL_KINDS: frozenset[str] = frozenset({"done", "error", "suspended"})


def event_id(epoch: int, sequence: int) -> int:
    return epoch * EPOCH_SPAN + sequence


@dataclass(eq=False)
class JobEvent:
    """One numbered event of a job; its JSON encodings are computed once, on first use.

    `document` is the full state for `transcription` and `done`; `delta` (transcription only)
    is the change from the previous `transcription` event of the same run.
    """

    id: int
    kind: EventKind
    document: ASRDocument | None = None
    delta: Delta[ASRParagraph] | None = None
    position: int | None = None
    error_code: str | None = None
    error_detail: str | None = None
    upstream: dict[str, Any] | None = None
    """`upstream` only: {"state", "attempt", "resume_from"} of a resume (see `seam.py`)."""
    # Encoded frames, filled by the wire layer (one entry per frame flavour) for all subscribers.
    frames: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS

    @cached_property
    def document_json(self) -> str:
        """The full state as the POST stream sends it (`ASRDocument`), or the queued data."""
        if self.kind == "upstream":
            return json.dumps(self.upstream)
        if self.kind == "queued":
            assert self.document is not None
            return json.dumps(
                {"document_id": str(self.document.document_id), "position": self.position}
            )
        assert self.document is not None
        return self.document.model_dump_json()

    @cached_property
    def delta_json(self) -> str:
        """What the events stream sends: the delta for `transcription`, the full data otherwise."""
        if self.kind != "transcription":
            return self.document_json
        assert self.delta is not None
        return self._delta_data(self.delta)

    @cached_property
    def snapshot_json(self) -> str:
        """The events stream's first frame: a delta from nothing (`from_index` 0)."""
        if self.kind != "transcription":
            return self.document_json
        assert self.document is not None
        paragraphs = tuple(self.document.document)
        return self._delta_data(Delta(0, paragraphs, len(paragraphs)))

    def release_full_encodings(self) -> None:
        """Drop the whole-document encodings (kept only while the event is among the newest)."""
        for name in ("document_json", "snapshot_json"):
            self.__dict__.pop(name, None)
        self.frames.pop("snapshot", None)

    def _delta_data(self, delta: Delta[ASRParagraph]) -> str:
        assert self.document is not None
        data: dict[str, Any] = {
            "document_id": str(self.document.document_id),
            "from_index": delta.from_index,
            "paragraphs": [p.model_dump(mode="json") for p in delta.paragraphs],
            "length": delta.length,
            "current_time": self.document.current_time,
            "total_time": self.document.total_time,
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Read:
    """What a reader gets: the events after its cursor, or (gap) only the newest one."""

    events: list[JobEvent]
    gap: bool = False


class EventLog(Protocol):
    """The numbered events of one job."""

    @property
    def latest(self) -> JobEvent | None: ...

    async def append(self, event: JobEvent) -> None: ...

    async def read_after(self, after_id: int, *, timeout_seconds: float | None) -> Read | None:
        """Events with an id above `after_id`, waiting up to the timeout for one (None then).

        `after_id` is the last event the reader saw (-1: none yet). When that event is no longer
        kept (the reader fell behind), or there is none, answers `Read([latest], gap=True)`:
        the reader sends the newest state as a full snapshot and goes on from there.
        """
        ...


class MemoryEventLog:
    """`EventLog` in this process's memory: a ring of the newest events and a change signal."""

    def __init__(self, *, history: int = DEFAULT_HISTORY) -> None:
        self._events: deque[JobEvent] = deque(maxlen=history)
        self._changed = anyio.Event()

    @property
    def latest(self) -> JobEvent | None:
        return self._events[-1] if self._events else None

    @property
    def kept(self) -> list[JobEvent]:
        """The events still kept, oldest first."""
        return list(self._events)

    async def append(self, event: JobEvent) -> None:
        latest = self.latest
        if latest is not None:
            if latest.is_terminal:
                return  # the first terminal event is final
            assert event.id > latest.id, "event ids must increase"
        self._events.append(event)
        if len(self._events) > FULL_ENCODINGS_KEPT:
            # Whole-document JSON is O(document); only the newest few events keep theirs, so a
            # job's memory stays one document plus small deltas, however many events are kept.
            self._events[-1 - FULL_ENCODINGS_KEPT].release_full_encodings()
        self._changed.set()
        self._changed = anyio.Event()

    def _newest_state(self) -> list[JobEvent]:
        """The newest event that carries the job's state, and the `upstream` notices after it.

        A notice is not a state: a reader that starts (or catches up) on one would have no
        document to apply the next delta to.
        """
        events = list(self._events)
        for index in range(len(events) - 1, -1, -1):
            if events[index].kind != "upstream":
                return events[index:]
        return events[-1:]

    async def read_after(self, after_id: int, *, timeout_seconds: float | None) -> Read | None:
        latest = self.latest
        if latest is None or latest.id <= after_id:
            changed = self._changed
            with anyio.move_on_after(math.inf if timeout_seconds is None else timeout_seconds):
                await changed.wait()
            latest = self.latest
            if latest is None or latest.id <= after_id:
                return None
        if after_id < 0 or not any(event.id == after_id for event in self._events):
            return Read(self._newest_state(), gap=True)
        return Read([event for event in self._events if event.id > after_id])
