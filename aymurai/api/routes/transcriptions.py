"""The resource API: transcriptions that outlive the connection.

    POST   /asr/transcriptions              upload → 202 + Location (or 200, done, on a cache hit)
    GET    /asr/transcriptions              the newest first (?status=&limit=)
    GET    /asr/transcriptions/{id}         the current state
    DELETE /asr/transcriptions/{id}         cancel (204), 409 ALREADY_FINISHED once ended
    GET    /asr/transcriptions/{id}/events  text/event-stream for a native EventSource, resumable

Jobs created (or joined) here run to completion whether anybody watches or not, and survive
restarts. The events stream sends a full snapshot first, then deltas; see docs/jobs.md.

With API keys on (README, "API keys"), a key lists, reads and cancels the jobs it created or joined
(another key's job is 404, as if unknown; `admin` sees all), and every `events_url` carries a token
signed for that job (`api/auth.py`), the only way in for a browser's EventSource.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from aymurai.api.auth import Caller, EventTokens, JobReaderDep, OptionalCallerDep, TranscribeDep
from aymurai.api.deps import ServiceDep, SettingsDep
from aymurai.api.routes.transcription import (
    ERROR_RESPONSES,
    ERROR_SCHEMA,
    UPLOAD_OPENAPI,
    accept_upload,
    watched_events,
)
from aymurai.api.sse import EventStreamResponse, error_data, resumable_frames, single_frame
from aymurai.db.store import StoredJob
from aymurai.errors import (
    JobCancelledError,
    NotFoundError,
    ShuttingDownError,
    UnauthenticatedError,
)
from aymurai.metrics import OUTCOME_CACHE_HIT, GatewayMetrics
from aymurai.transcription.channel import JobEvent
from aymurai.transcription.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED_STATUSES,
    Done,
    Failed,
    Keepalive,
    TranscriptionJob,
    wire_time,
)
from aymurai.transcription.schemas import ASRDocument, Transcription, TranscriptionError
from aymurai.transcription.service import TranscriptionService

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/asr/transcriptions", tags=["transcriptions"])

PREFIX = "/asr/transcriptions"
MAX_EVENT_ID_DIGITS = 19  # fits a signed 64-bit integer
Status = Literal["queued", "running", "done", "failed", "cancelled"]


def _url(job_id: str) -> str:
    return f"{PREFIX}/{job_id}"


def _events_url(job_id: str, tokens: EventTokens | None) -> str:
    # With keys on, the URL carries a token for this job alone (EventSource sends no headers).
    url = f"{_url(job_id)}/events"
    return url if tokens is None else f"{url}?token={tokens.sign(job_id)}"


def get_event_tokens(request: Request) -> EventTokens | None:
    tokens: EventTokens | None = request.app.state.event_tokens
    return tokens


EventTokensDep = Annotated[EventTokens | None, Depends(get_event_tokens)]


def _owners(found: TranscriptionJob | StoredJob) -> set[str]:
    if isinstance(found, TranscriptionJob):
        return {found.key_name, *found.joined_keys}
    return {found.key_name or ""}


async def _find_own_job(
    service: TranscriptionService, job_id: str, caller: Caller
) -> TranscriptionJob | StoredJob:
    """The job, if it is the caller's (created or joined by its key; any for admin).

    Another key's job answers 404 like an unknown id: ids are not for sharing.
    """
    found = await service.find_job(job_id)
    if not caller.may_see(_owners(found)):
        raise NotFoundError(f"No transcription with id {job_id}.")
    return found


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; we only ever store UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _from_live(job: TranscriptionJob, tokens: EventTokens | None) -> Transcription:
    # A job that has just ended but is not recorded yet reads as ended: a client that saw the
    # terminal event and asks at once must not find it still running.
    outcome = job.latest
    status = job.status
    document = None
    error = None
    current_time = job.current_time
    if isinstance(outcome, Done):
        status, document = DONE, outcome.document
        current_time = wire_time(job.total_seconds)
    elif isinstance(outcome, Failed):
        status = CANCELLED if outcome.code == JobCancelledError.code else FAILED
        error = TranscriptionError(code=outcome.code, detail=outcome.detail)
    return Transcription(
        id=job.id,
        document_id=job.document_id,
        name=job.name,
        status=status,
        position=job.position,
        current_time=current_time,
        total_time=wire_time(job.total_seconds),
        created_at=_utc(job.created_at),
        updated_at=_utc(job.updated_at),
        error=error,
        document=document,
        events_url=_events_url(job.id, tokens),
        live=job.live,
        ended_by=job.ended_by if status in FINISHED_STATUSES else None,
    )


def _from_row(
    row: StoredJob, document: ASRDocument | None, tokens: EventTokens | None
) -> Transcription:
    error = None
    if row.error_code is not None:
        error = TranscriptionError(code=row.error_code, detail=row.error_detail or "")
    return Transcription(
        id=row.id,
        document_id=row.document_id,
        name=row.name,
        status=row.status,
        position=None,
        current_time=wire_time(row.current_seconds),
        total_time=wire_time(row.total_seconds),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        error=error,
        document=document,
        events_url=_events_url(row.id, tokens),
        live=row.live,
        ended_by=row.ended_by,
    )


async def _describe(
    service: TranscriptionService,
    found: TranscriptionJob | StoredJob,
    tokens: EventTokens | None,
    *,
    with_document: bool,
) -> Transcription:
    if isinstance(found, TranscriptionJob):
        if found.status not in FINISHED_STATUSES:
            return _from_live(found, tokens)
        row = await service.store.get_job(found.id)  # ended a moment ago: the row has it all
        if row is None:
            return _from_live(found, tokens)
        found = row
    document = None
    if with_document and found.status == DONE:
        document = await service.stored_document(found.document_id)
    return _from_row(found, document, tokens)


def _json(
    model: Transcription, status_code: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code, headers=headers)


@router.post(
    "",
    status_code=202,
    response_model=Transcription,
    responses={
        200: {"description": "Already transcribed (cache hit): status `done` with the document"},
        202: {"description": "Accepted; follow `Location` or `events_url`"},
        **ERROR_RESPONSES,
    },
    openapi_extra=UPLOAD_OPENAPI,
)
async def create_transcription(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    caller: TranscribeDep,
    tokens: EventTokensDep,
    use_cache: bool = True,
) -> Response:
    """Start transcribing an audio file; it runs to completion whether anybody watches or not."""
    upload, outcome, _ = await accept_upload(
        request,
        service,
        settings,
        caller=caller,
        endpoint="resource",
        use_cache=use_cache,
        runs_unwatched=True,
    )
    if isinstance(outcome, ASRDocument):
        service.metrics.count_request("resource", OUTCOME_CACHE_HIT)
        row = await service.record_cached(
            document_id=upload.document_id,
            name=upload.filename,
            document=outcome,
            key_name=caller.owner,
        )
        return _json(_from_row(row, outcome, tokens), 200, {"Location": _url(row.id)})
    service.metrics.count_request("resource", "accepted")
    return _json(_from_live(outcome, tokens), 202, {"Location": _url(outcome.id)})


@router.get("", response_model=list[Transcription])
async def list_transcriptions(
    service: ServiceDep,
    caller: JobReaderDep,
    tokens: EventTokensDep,
    status: Status | None = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> Response:
    """The newest transcriptions first (`document` is left out: GET one to read it).

    With API keys on, a key sees the transcriptions it created; an `admin` key sees them all.
    """
    own = None if caller.key_name is None or caller.is_admin else caller.key_name
    found = await service.list_jobs(status=status, limit=limit, key_name=own)
    items = [await _describe(service, item, tokens, with_document=False) for item in found]
    return JSONResponse([item.model_dump(mode="json") for item in items])


@router.get(
    "/{job_id}",
    response_model=Transcription,
    responses={404: {"description": "Unknown id (NOT_FOUND)"}},
)
async def get_transcription(
    job_id: str, service: ServiceDep, caller: JobReaderDep, tokens: EventTokensDep
) -> Response:
    """The current state of a transcription; its document once done."""
    found = await _find_own_job(service, job_id, caller)
    return _json(await _describe(service, found, tokens, with_document=True), 200)


@router.delete(
    "/{job_id}",
    status_code=204,
    responses={
        404: {"description": "Unknown id (NOT_FOUND)"},
        409: {"description": "It has ended already (ALREADY_FINISHED)"},
    },
)
async def cancel_transcription(job_id: str, service: ServiceDep, caller: JobReaderDep) -> Response:
    """Cancel a queued or running transcription: nothing is stored, subscribers get CANCELLED."""
    await _find_own_job(service, job_id, caller)
    await service.cancel(job_id)
    return Response(status_code=204)


def _ended_at(found: TranscriptionJob | StoredJob) -> float | None:
    """When the job ended (unix seconds), None while it runs or waits to be re-run."""
    if isinstance(found, TranscriptionJob) or found.status not in FINISHED_STATUSES:
        return None
    return _utc(found.updated_at).timestamp()


async def _find_by_token(
    service: TranscriptionService, job_id: str, token: str | None, tokens: EventTokens | None
) -> TranscriptionJob | StoredJob:
    """The job an events token opens (keys on, no key sent).

    Raises:
        UnauthenticatedError: no token, or not this job's, or expired; an unknown id answers the
            same (a token proves nothing about other ids).
    """
    if token is None or tokens is None:
        service.metrics.count_unauthenticated()
        raise UnauthenticatedError()
    try:
        found = await service.find_job(job_id)
    except NotFoundError:
        found = None
    if found is None or not tokens.verify(job_id, token, ended_at=_ended_at(found)):
        service.metrics.count_unauthenticated()
        raise UnauthenticatedError("The events token is not valid for this transcription.")
    return found


async def _counted(
    events: AsyncIterator[tuple[JobEvent, bool] | Keepalive], metrics: GatewayMetrics
) -> AsyncIterator[tuple[JobEvent, bool] | Keepalive]:
    """The events as they are, counted in `aymurai_sse_event_streams_active` while open."""
    metrics.event_streams_active.inc()
    try:
        async with aclosing(events):  # type: ignore[type-var]
            async for item in events:
                yield item
    finally:
        metrics.event_streams_active.dec()


def parse_event_id(value: str | None) -> int | None:
    """A Last-Event-ID as an integer; anything else counts as unknown (None)."""
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > MAX_EVENT_ID_DIGITS:
        return None
    return int(value)


@router.get(
    "/{job_id}/events",
    response_class=EventStreamResponse,
    status_code=200,
    responses={
        200: {"content": {"text/event-stream": {}}},
        204: {"description": "Last-Event-ID is the terminal event's (or later): nothing more"},
        401: {
            "description": "Keys on: no key and no valid `token` (UNAUTHENTICATED)",
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        },
        404: {
            "description": "Unknown id (NOT_FOUND)",
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        },
    },
)
async def transcription_events(
    job_id: str,
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    caller: OptionalCallerDep,
    tokens: EventTokensDep,
    last_event_id: str | None = None,
    token: str | None = Query(
        default=None,
        description="The token of this job's `events_url` (API keys on): for EventSource, "
        "which cannot send a key header",
    ),
) -> Response:
    """The transcription as Server-Sent Events: a full snapshot, then deltas; resumable."""
    after = parse_event_id(request.headers.get("last-event-id") or last_event_id)
    if caller is not None:
        found = await _find_own_job(service, job_id, caller)
    else:
        found = await _find_by_token(service, job_id, token, tokens)
    retry_ms = settings.transcribe_sse_retry_ms
    headers = {"X-Transcription-Id": job_id}
    if isinstance(found, TranscriptionJob):
        latest = found.log.latest
        if (
            after is not None
            and latest is not None
            and latest.kind in ("done", "error")
            and after >= latest.id
        ):
            return Response(status_code=204)
        events = _counted(watched_events(found, settings), service.metrics)
        frames = resumable_frames(events, retry_ms=retry_ms)
        return EventStreamResponse(frames, headers=headers)
    if found.status not in FINISHED_STATUSES:
        # Left unfinished by a previous process and not running here (shutting down, or the
        # queue was full at startup): nothing to follow on this instance.
        raise ShuttingDownError("This transcription is not running on this instance; retry later.")
    terminal = found.terminal_event_id or 1
    if after is not None and after >= terminal:
        return Response(status_code=204)
    if found.status == DONE:
        document = await service.get_document(found.document_id)
        frames = single_frame("done", document.model_dump_json, terminal, retry_ms=retry_ms)
    else:
        data = error_data(found.error_code or "INTERNAL_ERROR", found.error_detail or "")
        frames = single_frame("error", lambda: data, terminal, retry_ms=retry_ms)
    return EventStreamResponse(frames, headers=headers)
