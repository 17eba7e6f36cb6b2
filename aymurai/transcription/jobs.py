"""A transcription job: its updates, its numbered events, and who is watching it.

A job is owned by `TranscriptionService` (it runs in the service's task group), not by an HTTP
response: responses *subscribe* to it. Two layers:

- `publish()` / `updates()`: a "watch" of the newest update. WLK sends 10–20 full snapshots per
  second; the pipeline overwrites the newest one and never waits on anybody.
- `record_events()`: the job's recorder (one task per job) reads that watch at most once per
  `min_interval_seconds` and appends numbered `JobEvent`s to the job's `EventLog`: a snapshot
  that changes nothing a client can see makes no event, a progress-only change (`current_time`
  moving, same text) at most one per `progress_interval_seconds`, and each transcription event
  carries its delta from the previous one (see `deltas.py`). Every subscriber reads that log.

`watch()` counts subscribers. When the last one leaves a job that does not run unwatched (the
legacy POST stream and the blocking endpoint), the service is told (`on_unwatched`) and cancels
the job after the detached grace unless somebody reattaches. Jobs of the resource API run
unwatched: nobody watching is normal for them.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from aymurai.transcription.channel import (
    EPOCH_SPAN,
    EventKind,
    EventLog,
    JobEvent,
    MemoryEventLog,
    event_id,
)
from aymurai.transcription.deltas import compute_delta
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.transcript import build_paragraphs, final_paragraph_count
from aymurai.transcription.wlk_protocol import StatusSnapshot

if TYPE_CHECKING:
    from aymurai.db.store import StoredJob

# Job statuses, as the API and the database spell them.
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED_STATUSES = frozenset({DONE, FAILED, CANCELLED})


def wire_time(seconds: float) -> float:
    """Times on the wire are whole milliseconds."""
    return round(seconds, 3)


@dataclass(frozen=True)
class Queued:
    document_id: uuid.UUID
    position: int  # 1 = next to start


@dataclass(frozen=True)
class Transcribing:
    document_id: uuid.UUID
    snapshot: StatusSnapshot | None
    current_time: float
    total_time: float
    # Paragraphs already built (and clamped to the stream's timeline) by the pipeline; None = build
    # them from the snapshot.
    paragraphs: tuple[ASRParagraph, ...] | None = None

    @cached_property
    def document(self) -> ASRDocument:
        # Built only when the recorder actually looks at it, not for every WLK message.
        if self.paragraphs is not None:
            paragraphs = list(self.paragraphs)
        else:
            paragraphs = build_paragraphs(self.snapshot, tail_end=self.current_time)
        return ASRDocument(
            document_id=self.document_id,
            document=paragraphs,
            current_time=wire_time(self.current_time),
            total_time=wire_time(self.total_time),
        )

    @cached_property
    def final_count(self) -> int:
        """How many paragraphs of `document` are final (see `final_paragraph_count`)."""
        return final_paragraph_count(self.snapshot, self.document.document)


@dataclass(frozen=True)
class Upstream:
    """The WLK session was lost mid-file and the job is resuming (see `seam.py`).

    Unlike the other updates, these are never coalesced away: the recorder sees each one.
    """

    document_id: uuid.UUID
    state: str  # "reconnecting" | "resumed"
    attempt: int  # 1 for the first resume of this job
    resume_from: float  # the seek point, in seconds of the file


@dataclass(frozen=True)
class Done:
    document: ASRDocument


@dataclass(frozen=True)
class Failed:
    code: str
    detail: str


@dataclass(frozen=True)
class Suspended:
    """The process stops; the job is left (queued, audio kept) for the next start to re-run."""


@dataclass(frozen=True)
class Keepalive:
    """Nothing changed for a while; the SSE layer turns this into a `: keepalive` comment."""


JobUpdate = Queued | Transcribing | Upstream | Done | Failed | Suspended
KEEPALIVE = Keepalive()
# Upstream notices kept for a reader that has not seen them yet; a job has at most
# 2 × TRANSCRIBE_WS_MAX_RESUMES of them, this bounds memory all the same.
MAX_NOTICES = 32


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_plausible_job_id(job_id: str) -> bool:
    """Could `job_id` name a job (before asking the database)? Client input: bounded, plain."""
    return 0 < len(job_id) <= 64 and job_id.isascii() and job_id.isalnum()


class TranscriptionJob:
    def __init__(
        self,
        *,
        document_id: uuid.UUID,
        name: str,
        total_seconds: float,
        job_id: str | None = None,
        runs_unwatched: bool = False,
        epoch: int = 0,
        audio_path: Path | None = None,
        created_at: datetime | None = None,
        log: EventLog | None = None,
        live: bool = False,
        key_name: str = "",
        remote: bool = False,
    ) -> None:
        self.id = job_id or new_job_id()
        # Distributed mode: a job run by another replica, mirrored here from its event stream
        # (`aymurai/distributed`) so this replica's clients can follow, join and cancel it.
        self.remote = remote
        # The API key that created the job ("" when keys are off) and those that joined it: they
        # may read and cancel it (admission counts the job against `key_name` only).
        self.key_name = key_name
        self.joined_keys: set[str] = set()
        self.document_id = document_id
        self.name = name
        self.total_seconds = total_seconds
        self.runs_unwatched = runs_unwatched
        self.epoch = epoch
        self.audio_path = audio_path
        self.created_at = created_at or datetime.now(UTC)
        self.updated_at = self.created_at
        self.status = QUEUED
        self.log: EventLog = log or MemoryEventLog()
        # Live jobs (WS /asr/live): a `line` event for each paragraph once it is final, in order,
        # never retracted; `ended_by` says who ended it (client, disconnect).
        self.live = live
        self.lines_emitted = 0
        self.ended_by: str | None = None
        self.end_audio: Callable[[], None] | None = None  # live: finish the audio (shutdown)
        self.cancel_scope = anyio.CancelScope()
        self.finished = anyio.Event()
        self.recorded = anyio.Event()  # the recorder appended the terminal event
        self.client_gone = False
        self.cancelled_by_request = False
        self.subscribers = 0
        self.unwatched_since: float | None = None
        self.on_unwatched: Callable[[TranscriptionJob], None] | None = None
        self._latest: JobUpdate | None = None
        self._version = 0
        self._notices: deque[tuple[int, Upstream]] = deque(maxlen=MAX_NOTICES)
        self._changed = anyio.Event()
        self._sequence = 0
        self._current_time = 0.0

    @classmethod
    def from_row(
        cls,
        row: StoredJob,
        *,
        epoch: int | None = None,
        runs_unwatched: bool | None = None,
        audio_path: Path | None = None,
        log: EventLog | None = None,
        remote: bool = False,
    ) -> TranscriptionJob:
        """The job of a `transcription_job` row: run again (a restart, a takeover) or mirrored
        from another replica. Its status and times are the row's."""
        job = cls(
            job_id=row.id,
            document_id=row.document_id,
            name=row.name,
            total_seconds=row.total_seconds,
            runs_unwatched=row.runs_unwatched if runs_unwatched is None else runs_unwatched,
            epoch=row.epoch if epoch is None else epoch,
            audio_path=audio_path,
            created_at=row.created_at,
            log=log,
            live=row.live,
            key_name=row.key_name or "",
            remote=remote,
        )
        job.status = row.status
        job.updated_at = row.updated_at
        return job

    # --- the watch of the newest update (pipeline → recorder) ----------------------------
    @property
    def latest(self) -> JobUpdate | None:
        return self._latest

    @property
    def is_terminal(self) -> bool:
        return isinstance(self._latest, Done | Failed | Suspended)

    def publish(self, update: JobUpdate) -> None:
        if self.is_terminal:
            return  # the first terminal update is final
        self._latest = update
        self._version += 1
        if isinstance(update, Upstream):
            self._notices.append((self._version, update))
        self._changed.set()
        self._changed = anyio.Event()

    async def updates(
        self, *, min_interval_seconds: float = 0.0, keepalive_seconds: float | None = None
    ) -> AsyncIterator[JobUpdate | Keepalive]:
        """The job's updates, newest first wins, ending with a terminal one.

        At most one non-terminal update per `min_interval_seconds`; a `Keepalive` after
        `keepalive_seconds` without any.
        """
        seen = 0
        last_emit_at = -math.inf
        while True:
            if self._version == seen:
                changed = self._changed
                with anyio.move_on_after(keepalive_seconds or math.inf) as idle:
                    await changed.wait()
                if idle.cancelled_caught:
                    yield KEEPALIVE
                continue
            if not self.is_terminal:
                wait = last_emit_at + min_interval_seconds - anyio.current_time()
                if wait > 0:
                    await anyio.sleep(wait)
            update = self._latest
            assert update is not None
            notices = [n for v, n in self._notices if v > seen and n is not update]
            seen = self._version
            for notice in notices:  # published since, then overwritten: still delivered
                yield notice
            yield update
            last_emit_at = anyio.current_time()
            if isinstance(update, Done | Failed | Suspended):
                return

    # --- the numbered events (recorder → subscribers) ------------------------------------
    @property
    def current_time(self) -> float:
        """Seconds of audio transcribed, as the newest event showed (kept after a failure)."""
        return self._current_time

    @property
    def position(self) -> int | None:
        latest = self.log.latest
        if self.status == QUEUED and latest is not None and latest.kind == "queued":
            return latest.position
        return None

    def _event(self, kind: EventKind, **fields: object) -> JobEvent:
        self._sequence += 1
        return JobEvent(id=event_id(self.epoch, self._sequence), kind=kind, **fields)  # type: ignore[arg-type]

    async def record_events(
        self, *, min_interval_seconds: float, progress_interval_seconds: float
    ) -> None:
        """Turn the coalesced updates into numbered events until the terminal one."""
        previous: tuple[ASRParagraph, ...] | None = None  # of the last transcription event
        previous_time: float | None = None
        last_progress_at = -math.inf
        last_position: int | None = None
        try:
            async for update in self.updates(min_interval_seconds=min_interval_seconds):
                if isinstance(update, Queued):
                    if update.position == last_position:
                        continue
                    last_position = update.position
                    document = ASRDocument(document_id=self.document_id)
                    await self.log.append(
                        self._event("queued", document=document, position=update.position)
                    )
                elif isinstance(update, Transcribing):
                    document = update.document
                    paragraphs = tuple(document.document)
                    now = time.monotonic()
                    if paragraphs == previous and (
                        document.current_time == previous_time  # nothing a client sees changed
                        or now - last_progress_at < progress_interval_seconds  # progress only
                    ):
                        # A line may still be due (the snapshot committed a line: same text).
                        await self._append_lines(paragraphs, update.final_count)
                        continue
                    delta = compute_delta(previous or (), paragraphs)
                    # Reuse the unchanged paragraphs' objects: the events kept for followers then
                    # cost one document plus their deltas, not one document each.
                    paragraphs = (*(previous or ())[: delta.from_index], *delta.paragraphs)
                    document = document.model_copy(update={"document": list(paragraphs)})
                    previous, previous_time, last_progress_at = (
                        paragraphs,
                        document.current_time,
                        now,
                    )
                    self._current_time = document.current_time or 0.0
                    await self.log.append(
                        self._event("transcription", document=document, delta=delta)
                    )
                    await self._append_lines(document.document, update.final_count)
                elif isinstance(update, Upstream):
                    await self.log.append(
                        self._event(
                            "upstream",
                            upstream={
                                "state": update.state,
                                "attempt": update.attempt,
                                "resume_from": wire_time(update.resume_from),
                            },
                        )
                    )
                elif isinstance(update, Done):
                    self._current_time = update.document.current_time or self._current_time
                    final = update.document.document
                    await self._append_lines(final, len(final))
                    await self.log.append(self._event("done", document=update.document))
                elif isinstance(update, Failed):
                    await self.log.append(
                        self._event("error", error_code=update.code, error_detail=update.detail)
                    )
                elif isinstance(update, Suspended):
                    await self.log.append(self._event("suspended"))
        finally:
            self.recorded.set()

    async def replay_event(self, event: JobEvent) -> None:
        """Take an event another replica's recorder made (a mirror: `distributed/event_mirror.py`).

        For a job this process follows but does not run: the event joins the log as it is (same
        id, same encodings), and `current_time`, the epoch and the watch (`updates()`) follow it
        as if the recorder had made it here, so every subscriber reads the job as a local one.
        """
        await self.log.append(event)
        self.epoch = max(self.epoch, event.id // EPOCH_SPAN)
        update: JobUpdate | None = None
        document = event.document
        if event.kind == "queued":
            update = Queued(self.document_id, event.position or 0)
        elif event.kind == "transcription" and document is not None:
            self._current_time = document.current_time or 0.0
            paragraphs = tuple(document.document)
            total_time = document.total_time or 0.0
            update = Transcribing(
                self.document_id, None, self._current_time, total_time, paragraphs
            )
        elif event.kind == "upstream" and event.upstream is not None:
            notice = event.upstream
            update = Upstream(
                self.document_id, notice["state"], notice["attempt"], notice["resume_from"]
            )
        elif event.kind == "line" and event.line_index is not None:
            self.lines_emitted = max(self.lines_emitted, event.line_index + 1)
        elif event.kind == "done" and document is not None:
            self._current_time = document.current_time or self._current_time
            update = Done(document)
        elif event.kind == "error":
            update = Failed(event.error_code or "INTERNAL_ERROR", event.error_detail or "")
        elif event.kind == "suspended":
            update = Suspended()
        if update is not None:
            self.publish(update)

    async def _append_lines(self, paragraphs: Sequence[ASRParagraph], final_count: int) -> None:
        if not self.live:
            return
        while self.lines_emitted < min(final_count, len(paragraphs)):
            index = self.lines_emitted
            self.lines_emitted += 1
            await self.log.append(self._event("line", line=paragraphs[index], line_index=index))

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Count a subscriber for the time of the block (see the module docstring)."""
        self.subscribers += 1
        self.unwatched_since = None
        try:
            yield
        finally:
            self.subscribers -= 1
            if self.subscribers == 0 and not self.finished.is_set():
                self.unwatched_since = time.monotonic()
                if self.on_unwatched is not None:
                    self.on_unwatched(self)

    async def follow(
        self, *, keepalive_seconds: float | None
    ) -> AsyncIterator[tuple[JobEvent, bool] | Keepalive]:
        """The job's events for one subscriber: `(event, is_snapshot)` pairs, then the end.

        The first event (and the first after falling behind) is the newest state, flagged as a
        snapshot; the rest follow the log one by one. Ends after the terminal event. A resume
        starts here too: whatever id a client brings, it gets the newest state in full.
        """
        cursor = -1
        while True:
            read = await self.log.read_after(cursor, timeout_seconds=keepalive_seconds)
            if read is None:
                yield KEEPALIVE
                continue
            for event in read.events:
                cursor = event.id
                yield event, read.gap
                if event.is_terminal:
                    return

    async def wait_for_result(self) -> Done | Failed:
        """Block until the job ends (for the deprecated blocking endpoint)."""
        with self.watch():
            async for item in self.follow(keepalive_seconds=None):
                if isinstance(item, Keepalive):
                    continue
                event, _ = item
                if event.kind == "done":
                    assert event.document is not None
                    return Done(event.document)
                if event.kind == "error":
                    return Failed(event.error_code or "INTERNAL_ERROR", event.error_detail or "")
                if event.kind == "suspended":
                    return Failed("SHUTTING_DOWN", "The gateway is shutting down.")
        raise AssertionError("follow() always ends with a terminal event")  # pragma: no cover
