"""A transcription job and the updates its subscribers see.

A job is owned by `TranscriptionService` (it runs in the service's task group), not by the HTTP
response: responses *subscribe* to it. The job keeps only its latest update (a "watch" channel):
WLK sends 10–20 full snapshots per second, and a subscriber that reads slowly simply gets the
newest state next time, never a backlog. Updates are therefore coalesced for free, and the reader
of the upstream socket never waits on an HTTP client.

Today a job is cancelled when its last subscriber leaves (client gone → upstream closed, nothing
cached). Resuming with Last-Event-ID and sharing a job between identical uploads build on this.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property

import anyio

from aymurai.transcription.schemas import ASRDocument
from aymurai.transcription.transcript import build_paragraphs
from aymurai.transcription.wlk_protocol import StatusSnapshot


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

    @cached_property
    def document(self) -> ASRDocument:
        # Built only when a subscriber actually emits it, not for every WLK message.
        return ASRDocument(
            document_id=self.document_id,
            document=build_paragraphs(self.snapshot, tail_end=self.current_time),
            current_time=self.current_time,
            total_time=self.total_time,
        )


@dataclass(frozen=True)
class Upstream:
    """The WLK session was lost mid-file and the job is resuming (see `seam.py`).

    Unlike the other updates, these are never coalesced away: every subscriber sees each one.
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
class Keepalive:
    """Nothing changed for a while; the SSE layer turns this into a `: keepalive` comment."""


JobUpdate = Queued | Transcribing | Upstream | Done | Failed
KEEPALIVE = Keepalive()
# Upstream notices kept for subscribers that have not seen them yet; a job has at most
# 2 × TRANSCRIBE_WS_MAX_RESUMES of them, this bounds memory all the same.
MAX_NOTICES = 32


class TranscriptionJob:
    def __init__(self, *, document_id: uuid.UUID, name: str, total_seconds: float) -> None:
        self.document_id = document_id
        self.name = name
        self.total_seconds = total_seconds
        self.cancel_scope = anyio.CancelScope()
        self.finished = anyio.Event()
        self.client_gone = False
        self._latest: JobUpdate | None = None
        self._version = 0
        self._changed = anyio.Event()
        self._subscribers = 0
        self._notices: deque[tuple[int, Upstream]] = deque(maxlen=MAX_NOTICES)

    @property
    def latest(self) -> JobUpdate | None:
        return self._latest

    @property
    def is_terminal(self) -> bool:
        return isinstance(self._latest, Done | Failed)

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
        """The job's updates as one subscriber sees them, ending with `Done` or `Failed`.

        At most one non-terminal update per `min_interval_seconds` (the newest wins); a
        `Keepalive` after `keepalive_seconds` without any. Leaving early (the generator is closed)
        unsubscribes; the last subscriber to leave an unfinished job cancels it.
        """
        self._subscribers += 1
        seen = 0
        last_emit_at = -math.inf
        try:
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
                if isinstance(update, Done | Failed):
                    return
        finally:
            self._subscribers -= 1
            if self._subscribers == 0 and not self.is_terminal:
                self.client_gone = True
                self.cancel_scope.cancel()

    async def wait_for_result(self) -> Done | Failed:
        """Block until the job ends (for the deprecated blocking endpoint)."""
        async for update in self.updates():
            if isinstance(update, Done | Failed):
                return update
        raise AssertionError("updates() always ends with a terminal update")  # pragma: no cover
