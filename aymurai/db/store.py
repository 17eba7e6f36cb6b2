"""Async facade over the repository: one short session per call, run in a bounded thread pool.

We never hold a session across a stream: each read or write opens its own, so a long
transcription never pins a connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from aymurai.db import repository
from aymurai.db.engine import is_schema_current
from aymurai.db.models import AudioTranscription, TranscriptionJobRow
from aymurai.errors import StorageError

T = TypeVar("T")


@dataclass(frozen=True)
class StoredTranscription:
    document_id: uuid.UUID
    name: str
    duration_seconds: float | None
    transcription: list[dict[str, Any]] | None
    validation: list[dict[str, Any]] | None


@dataclass(frozen=True)
class StoredJob:
    id: str
    document_id: uuid.UUID
    name: str
    status: str
    runs_unwatched: bool
    spool_path: str | None
    total_seconds: float
    current_seconds: float
    epoch: int
    terminal_event_id: int | None
    error_code: str | None
    error_detail: str | None
    created_at: datetime
    updated_at: datetime
    live: bool = False
    ended_by: str | None = None
    key_name: str | None = None


def _freeze_job(row: TranscriptionJobRow | None) -> StoredJob | None:
    if row is None:
        return None
    return StoredJob(
        id=row.id,
        document_id=row.document_id,
        name=row.name,
        status=row.status,
        runs_unwatched=row.runs_unwatched,
        spool_path=row.spool_path,
        total_seconds=row.total_seconds,
        current_seconds=row.current_seconds,
        epoch=row.epoch,
        terminal_event_id=row.terminal_event_id,
        error_code=row.error_code,
        error_detail=row.error_detail,
        created_at=row.created_at,
        updated_at=row.updated_at,
        live=row.live,
        ended_by=row.ended_by,
        key_name=row.key_name,
    )


def _freeze(row: AudioTranscription | None) -> StoredTranscription | None:
    if row is None:
        return None
    return StoredTranscription(
        document_id=row.id,
        name=row.name,
        duration_seconds=row.duration_seconds,
        transcription=row.transcription,
        validation=row.validation,
    )


class TranscriptStore:
    def __init__(self, engine: Engine, *, max_threads: int, schema_current: bool = True) -> None:
        self._engine = engine
        self._limiter = anyio.CapacityLimiter(max_threads)
        self._schema_current = schema_current

    async def _run(self, work: Callable[[Session], T]) -> T:
        def in_thread() -> T:
            try:
                with Session(self._engine, expire_on_commit=False) as session:
                    return work(session)
            except SQLAlchemyError as exc:
                raise StorageError(
                    f"The transcript database failed: {type(exc).__name__}."
                ) from exc

        return await anyio.to_thread.run_sync(in_thread, limiter=self._limiter)

    async def get(self, document_id: uuid.UUID) -> StoredTranscription | None:
        return await self._run(lambda s: _freeze(repository.get_transcription(s, document_id)))

    async def save_transcription(
        self,
        *,
        document_id: uuid.UUID,
        name: str,
        duration_seconds: float,
        paragraphs: list[dict[str, Any]],
    ) -> None:
        await self._run(
            lambda s: repository.upsert_transcription(
                s,
                document_id=document_id,
                name=name,
                duration_seconds=duration_seconds,
                paragraphs=paragraphs,
            )
        )

    async def save_validation(
        self, *, document_id: uuid.UUID, paragraphs: list[dict[str, Any]]
    ) -> StoredTranscription | None:
        return await self._run(
            lambda s: _freeze(
                repository.save_validation(s, document_id=document_id, paragraphs=paragraphs)
            )
        )

    # --- jobs ---------------------------------------------------------------------------------
    async def insert_job(self, job: StoredJob) -> None:
        row = TranscriptionJobRow(
            id=job.id,
            document_id=job.document_id,
            name=job.name,
            status=job.status,
            runs_unwatched=job.runs_unwatched,
            spool_path=job.spool_path,
            total_seconds=job.total_seconds,
            current_seconds=job.current_seconds,
            epoch=job.epoch,
            terminal_event_id=job.terminal_event_id,
            error_code=job.error_code,
            error_detail=job.error_detail,
            created_at=job.created_at,
            updated_at=job.updated_at,
            live=job.live,
            ended_by=job.ended_by,
            key_name=job.key_name,
        )
        await self._run(lambda s: repository.insert_job(s, row))

    async def update_job(self, job_id: str, **values: Any) -> None:
        """Set columns of one job (and its `updated_at`)."""
        await self._run(lambda s: repository.update_job(s, job_id, values))

    async def get_job(self, job_id: str) -> StoredJob | None:
        return await self._run(lambda s: _freeze_job(repository.get_job(s, job_id)))

    async def list_jobs(
        self, *, status: str | None, limit: int, key_name: str | None = None
    ) -> list[StoredJob]:
        def work(s: Session) -> list[StoredJob]:
            return [
                frozen
                for row in repository.list_jobs(s, status=status, limit=limit, key_name=key_name)
                if (frozen := _freeze_job(row)) is not None
            ]

        return await self._run(work)

    async def unfinished_jobs(self) -> list[StoredJob]:
        def work(s: Session) -> list[StoredJob]:
            return [
                frozen
                for row in repository.unfinished_jobs(s)
                if (frozen := _freeze_job(row)) is not None
            ]

        return await self._run(work)

    async def is_schema_current(self) -> bool:
        """Is the database at the newest migration? Asked again only until it is."""
        if not self._schema_current:
            self._schema_current = await self._run(lambda s: is_schema_current(s.connection()))
        return self._schema_current

    async def ping(self) -> None:
        """Raise if the database does not answer a trivial query."""
        await self._run(lambda s: s.execute(text("SELECT 1")))

    async def ping_write(self) -> None:
        """Raise if the database refuses writes (a read-only or immutable SQLite file, a
        read-only PostgreSQL replica), without changing anything.

        The UPDATE matches no row, but it still opens a write transaction, which is what a
        read-only database refuses; it is rolled back.
        """

        def probe(session: Session) -> None:
            session.execute(text("UPDATE audio_transcription SET name = name WHERE 1 = 0"))
            session.rollback()

        await self._run(probe)
