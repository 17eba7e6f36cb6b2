"""Transcript shapes shared by the pipeline, the database and the HTTP API.

These are plain pydantic models, not tied to a wire format: the SSE encoder and the JSON routes
serialise them, the repository stores them as JSON.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator


class ASRParagraph(BaseModel):
    """One speaker turn of the transcript."""

    paragraph_id: str
    speaker_no: int
    speaker_id: str | None = None
    speaker_name: str | None = None
    start: float
    end: float
    text: str
    language: str | None = None


class ASRDocument(BaseModel):
    """The whole transcript of one upload, as it stands now."""

    document_id: uuid.UUID
    document: list[ASRParagraph] = Field(default_factory=list)
    current_time: float | None = None
    total_time: float | None = None


class ValidatedParagraph(BaseModel):
    """A paragraph as a human reviewer submits it."""

    speaker_no: int
    speaker_name: str | None = None
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str

    @field_validator("text")
    @classmethod
    def _strip_text(cls, value: str) -> str:
        return value.strip()


def speaker_id_for(speaker_no: int) -> str:
    return f"speaker-{speaker_no}"


class TranscriptionError(BaseModel):
    code: str
    detail: str


class Transcription(BaseModel):
    """A transcription job of the resource API (`/asr/transcriptions/{id}`)."""

    id: str
    document_id: uuid.UUID
    name: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    position: int | None = None
    current_time: float
    total_time: float
    created_at: datetime
    updated_at: datetime
    error: TranscriptionError | None = None
    document: ASRDocument | None = None
    events_url: str
