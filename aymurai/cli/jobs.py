"""The resource API from the client side: create, read and cancel a job, follow its events.

`create_transcription()` uploads a file to `POST /asr/transcriptions`; the job then runs at the
gateway whether or not we watch. `follow()` reads `GET /asr/transcriptions/{id}/events` like a
browser's `EventSource`: it applies the deltas to rebuild the document (`Progress` always carries
the whole document, so the views never see a delta) and, when the connection drops or goes
silent, reconnects with `Last-Event-ID` after a backoff, a bounded number of times in a row. The
gateway answers a resume with one full snapshot, then goes on live (docs/jobs.md).

Failures are the `ClientError` tree of `stream.py`, with the same codes; the resource API adds
`NOT_FOUND` and `ALREADY_FINISHED` (HTTP 404/409, `GatewayRejectedError`) and the job outcomes
`CANCELLED` and `INTERRUPTED` (`TranscriptionFailedError`, like an `event: error`).
"""

from __future__ import annotations

import mimetypes
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, ServerSentEvent, connect_sse
from pydantic import BaseModel, ValidationError

from aymurai.cli.stream import (
    BadResponseError,
    ClientError,
    ConnectionFailedError,
    Done,
    Progress,
    StreamEvent,
    TranscriptionFailedError,
    TranscriptionStream,
    _rejection,
    _translate_transport_errors,
)
from aymurai.transcription.schemas import ASRDocument, ASRParagraph, Transcription

JOBS_PATH = "/asr/transcriptions"
DEFAULT_RETRIES = 5
DEFAULT_RETRY_SECONDS = 2.0  # until the gateway's first `retry:` field says otherwise
MAX_RETRY_DELAY_SECONDS = 30.0


class TranscriptionDelta(BaseModel):
    """The data of a `transcription` event on the events stream."""

    document_id: uuid.UUID
    from_index: int
    paragraphs: list[ASRParagraph]
    length: int
    current_time: float | None = None
    total_time: float | None = None


@dataclass(frozen=True)
class Reconnect:
    """A dropped connection about to be resumed (for the one line the user reads)."""

    job_id: str
    reason: ClientError
    attempt: int
    max_attempts: int
    delay_seconds: float
    last_event_id: str | None


class LostFrameError(Exception):
    """A delta that does not fit the document we hold: resume and take the snapshot."""


def _job_url(job_id: str) -> str:
    # Ids are opaque: quote them whole, so that no id can reach another path.
    return f"{JOBS_PATH}/{quote(job_id, safe='')}"


def _parse_transcription(response: httpx.Response) -> Transcription:
    try:
        return Transcription.model_validate_json(response.read())
    except ValidationError as exc:
        raise BadResponseError(
            "BAD_RESPONSE",
            "The gateway sent an unreadable transcription.",
            request_id=response.headers.get("x-request-id"),
            status_code=response.status_code,
        ) from exc


def create_transcription(
    client: httpx.Client, audio: BinaryIO, *, filename: str, use_cache: bool = True
) -> Transcription:
    """Upload `audio`: a `queued`/`running` job (202), or a `done` one on a cache hit (200)."""
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    with _translate_transport_errors(None):
        response = client.post(
            JOBS_PATH,
            params={"use_cache": "true" if use_cache else "false"},
            files={"file": (Path(filename).name, audio, content_type)},
        )
    if response.is_error:
        raise _rejection(response)
    if response.status_code not in (200, 202):
        raise BadResponseError(
            "BAD_RESPONSE",
            f"Expected 200 or 202, got HTTP {response.status_code}.",
            request_id=response.headers.get("x-request-id"),
            status_code=response.status_code,
        )
    return _parse_transcription(response)


def get_transcription(client: httpx.Client, job_id: str) -> Transcription:
    """The job's current state; `NOT_FOUND` (404) when the gateway does not know the id."""
    with _translate_transport_errors(None):
        response = client.get(_job_url(job_id))
    if response.is_error:
        raise _rejection(response)
    return _parse_transcription(response)


def cancel_transcription(client: httpx.Client, job_id: str) -> None:
    """Cancel a queued or running job; `ALREADY_FINISHED` (409) once it ended."""
    with _translate_transport_errors(None):
        response = client.delete(_job_url(job_id))
    if response.is_error:
        raise _rejection(response)


def failure_of(transcription: Transcription) -> TranscriptionFailedError:
    """The `ClientError` a failed or cancelled job stands for."""
    error = transcription.error
    return TranscriptionFailedError(
        error.code if error else "INTERNAL_ERROR",
        error.detail if error else f"The transcription ended {transcription.status}.",
    )


def outcome(transcription: Transcription) -> ASRDocument | None:
    """The document of a finished job; `None` while it runs; raise for a failed one."""
    if transcription.status == "done":
        if transcription.document is None:
            raise BadResponseError("BAD_RESPONSE", "A done transcription came without document.")
        return transcription.document
    if transcription.status in ("failed", "cancelled"):
        raise failure_of(transcription)
    return None


class JobFollower:
    """Iterate once for the job's events, ending with `Done`; resumes dropped connections.

    Args:
        client: an `httpx.Client` whose `base_url` is the gateway.
        transcription: the job to follow (its `events_url` is used).
        retries: how many reconnects in a row may fail before the last error is raised. The
            count starts again once a reconnect brings an event newer than the last one seen.
        on_reconnect: told before each wait, to say so on stderr.
        sleep: the wait between attempts (`time.sleep`).
    """

    def __init__(
        self,
        client: httpx.Client,
        transcription: Transcription,
        *,
        retries: int = DEFAULT_RETRIES,
        on_reconnect: Callable[[Reconnect], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._job = transcription
        self._retries = retries
        self._on_reconnect = on_reconnect
        self._sleep = sleep
        self._retry_seconds = DEFAULT_RETRY_SECONDS
        self.last_event_id: str | None = None
        self.connections = 0
        self._paragraphs: list[ASRParagraph] = []

    def __iter__(self) -> Iterator[StreamEvent]:
        failures = 0
        while True:
            newest_before = self._newest_id()
            try:
                for event in self._connect():
                    yield event
                    if isinstance(event, Done):
                        return
                reason: ClientError = ConnectionFailedError(
                    "CONNECTION_LOST",
                    "The gateway closed the stream before the transcription finished.",
                )
            except ConnectionFailedError as exc:
                reason = exc
            except LostFrameError as exc:
                reason = ConnectionFailedError("CONNECTION_LOST", str(exc))
            if self._newest_id() > newest_before:
                failures = 0  # this connection made progress: the count is of failures in a row
            failures += 1
            if failures > self._retries:
                raise reason
            delay = min(self._retry_seconds * 2 ** (failures - 1), MAX_RETRY_DELAY_SECONDS)
            self._on_reconnect(
                Reconnect(self._job.id, reason, failures, self._retries, delay, self.last_event_id)
            )
            self._sleep(delay)

    def _newest_id(self) -> int:
        try:
            return int(self.last_event_id) if self.last_event_id is not None else -1
        except ValueError:
            return -1

    def _connect(self) -> Iterator[StreamEvent]:
        self.connections += 1
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        with (
            _translate_transport_errors(None),
            connect_sse(self._client, "GET", self._job.events_url, headers=headers) as source,
        ):
            response = source.response
            request_id = response.headers.get("x-request-id")
            if response.status_code == 204:
                # Our last id is the terminal one (or later): the job ended; read how.
                yield self._finished()
                return
            if response.is_error:
                raise _rejection(response)
            media_type = response.headers.get("content-type", "").partition(";")[0].strip()
            if response.status_code != 200 or media_type != "text/event-stream":
                raise BadResponseError(
                    "BAD_RESPONSE",
                    f"Expected an event stream, got HTTP {response.status_code} {media_type!r}.",
                    request_id=request_id,
                    status_code=response.status_code,
                )
            with _translate_transport_errors(request_id):
                for sse in source.iter_sse():
                    if sse.retry is not None and sse.retry >= 0:
                        self._retry_seconds = sse.retry / 1000
                    event = self._parse(sse, source, request_id)
                    # Remember the id only once the event is applied: a frame we could not use
                    # must come again in the resume snapshot.
                    if sse.id:
                        self.last_event_id = sse.id
                    if event is not None:
                        yield event
                        if isinstance(event, Done):
                            return

    def _finished(self) -> Done:
        document = outcome(get_transcription(self._client, self._job.id))
        if document is None:
            raise BadResponseError(
                "BAD_RESPONSE", "The gateway ended the events of a transcription still running."
            )
        return Done(document)

    def _parse(
        self, sse: ServerSentEvent, source: EventSource, request_id: str | None
    ) -> StreamEvent | None:
        if sse.event != "transcription":
            # Every other event (queued, done, error, and any the gateway adds) has the same data
            # as on the POST stream: one parser for both, so a new event type is added once.
            return TranscriptionStream(source, request_id, None)._parse(sse)
        try:
            delta = TranscriptionDelta.model_validate_json(sse.data)
        except ValidationError as exc:
            raise BadResponseError(
                "BAD_RESPONSE",
                "The gateway sent an unreadable 'transcription' event.",
                request_id=request_id,
            ) from exc
        return Progress(self._apply(delta))

    def _apply(self, delta: TranscriptionDelta) -> ASRDocument:
        # document = document[:from_index] + paragraphs, truncated to length (docs/jobs.md).
        if not 0 <= delta.from_index <= len(self._paragraphs) or delta.length < 0:
            raise LostFrameError(
                f"A delta from paragraph {delta.from_index} does not fit the "
                f"{len(self._paragraphs)} paragraphs received; resuming for a snapshot."
            )
        self._paragraphs = (self._paragraphs[: delta.from_index] + delta.paragraphs)[: delta.length]
        return ASRDocument(
            document_id=delta.document_id,
            document=list(self._paragraphs),
            current_time=delta.current_time,
            total_time=delta.total_time,
        )
