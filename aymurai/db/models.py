"""SQL tables. One row per uploaded audio (keyed by its document UUID).

`transcription` and `validation` are JSON lists of paragraph objects: the machine transcript
(replaced by each complete re-transcription) and the human-reviewed one (never erased by a
re-transcription). Only complete results are ever stored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, MetaData
from sqlmodel import Field, SQLModel

# Explicit constraint names keep migrations identical on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utc_now() -> datetime:
    return datetime.now(UTC)


class AudioTranscription(SQLModel, table=True):
    __tablename__ = "audio_transcription"

    id: uuid.UUID = Field(primary_key=True)
    name: str = Field(max_length=512)
    duration_seconds: float | None = None
    transcription: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    validation: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class TranscriptionJobRow(SQLModel, table=True):
    """One transcription job (`/asr/transcriptions/{id}`): its state survives restarts.

    `spool_path` is the uploaded audio while the job is unfinished (a restart re-runs it from
    there); `epoch` counts the runs, so event ids keep increasing across restarts;
    `terminal_event_id` is the id of the job's last event once it has finished; `key_name` is
    the name of the API key that created it (None when keys were off).
    """

    __tablename__ = "transcription_job"

    id: str = Field(primary_key=True, max_length=64)
    document_id: uuid.UUID = Field(index=True)
    name: str = Field(max_length=512)
    status: str = Field(max_length=16, index=True)
    runs_unwatched: bool = False
    spool_path: str | None = Field(default=None, max_length=4096)
    total_seconds: float = 0.0
    current_seconds: float = 0.0
    epoch: int = 0
    terminal_event_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    error_code: str | None = Field(default=None, max_length=64)
    error_detail: str | None = Field(default=None, max_length=2048)
    # Live sessions (WS /asr/live, migration 0003): who ended it, `client` or `disconnect`.
    live: bool = False
    ended_by: str | None = Field(default=None, max_length=16)
    key_name: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(
        default_factory=utc_now,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True),
    )
    updated_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
