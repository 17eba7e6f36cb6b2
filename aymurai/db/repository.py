"""Unit-of-work functions over `audio_transcription` and `transcription_job`, one session each.

These are blocking calls: the async `TranscriptStore` runs them in worker threads.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from aymurai.db.models import AudioTranscription, TranscriptionJobRow, utc_now


def get_transcription(session: Session, document_id: uuid.UUID) -> AudioTranscription | None:
    return session.get(AudioTranscription, document_id)


def upsert_transcription(
    session: Session,
    *,
    document_id: uuid.UUID,
    name: str,
    duration_seconds: float,
    paragraphs: list[dict[str, Any]],
) -> None:
    """Insert or replace the machine transcript atomically; the validation is left untouched.

    One INSERT … ON CONFLICT statement, so two uploads of the same bytes finishing together
    never raise an integrity error.
    """
    now = utc_now()
    values = {
        "id": document_id,
        "name": name,
        "duration_seconds": duration_seconds,
        "transcription": paragraphs,
        "created_at": now,
        "updated_at": now,
    }
    replaced = {
        "name": name,
        "duration_seconds": duration_seconds,
        "transcription": paragraphs,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    table = AudioTranscription.__table__  # type: ignore[attr-defined]
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(table).values(**values)
        session.execute(pg_stmt.on_conflict_do_update(index_elements=["id"], set_=replaced))
    elif dialect == "sqlite":
        lite_stmt = sqlite.insert(table).values(**values)
        session.execute(lite_stmt.on_conflict_do_update(index_elements=["id"], set_=replaced))
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    session.commit()


def save_validation(
    session: Session, *, document_id: uuid.UUID, paragraphs: list[dict[str, Any]]
) -> AudioTranscription | None:
    """Store the human validation; None when the document is unknown."""
    result = session.execute(
        update(AudioTranscription)
        .where(AudioTranscription.id == document_id)  # type: ignore[arg-type]
        .values(validation=paragraphs, updated_at=utc_now())
    )
    session.commit()
    if result.rowcount == 0:  # type: ignore[attr-defined]
        return None
    return get_transcription(session, document_id)


# --- transcription_job ---------------------------------------------------------------------


def insert_job(session: Session, row: TranscriptionJobRow) -> None:
    session.add(row)
    session.commit()


def update_job(session: Session, job_id: str, values: dict[str, Any]) -> None:
    session.execute(
        update(TranscriptionJobRow)
        .where(TranscriptionJobRow.id == job_id)  # type: ignore[arg-type]
        .values(**values, updated_at=utc_now())
    )
    session.commit()


def get_job(session: Session, job_id: str) -> TranscriptionJobRow | None:
    return session.get(TranscriptionJobRow, job_id)


def list_jobs(
    session: Session, *, status: str | None, limit: int, key_name: str | None = None
) -> list[TranscriptionJobRow]:
    """The newest jobs first, optionally of one status, or of one API key."""
    query = select(TranscriptionJobRow)
    if status is not None:
        query = query.where(TranscriptionJobRow.status == status)
    if key_name is not None:
        query = query.where(TranscriptionJobRow.key_name == key_name)
    query = query.order_by(
        col(TranscriptionJobRow.created_at).desc(), col(TranscriptionJobRow.id).desc()
    ).limit(limit)
    return list(session.exec(query).all())


def unfinished_jobs(session: Session) -> list[TranscriptionJobRow]:
    """Jobs a previous process left queued or running, oldest first."""
    query = (
        select(TranscriptionJobRow)
        .where(col(TranscriptionJobRow.status).in_(("queued", "running")))
        .order_by(col(TranscriptionJobRow.created_at))
    )
    return list(session.exec(query).all())
