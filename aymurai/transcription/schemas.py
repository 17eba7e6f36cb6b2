"""Transcript shapes shared by the pipeline, the database and the HTTP API.

These are plain pydantic models, not tied to a wire format: the SSE encoder and the JSON routes
serialise them, the repository stores them as JSON.

What a reviewer submits (`ValidatedParagraph`) is untrusted and checked strictly (issue 8): finite,
non-negative times with ``end >= start``, ``speaker_no`` in 0..1000, text that is valid Unicode
(no lone surrogates: they cannot be encoded as UTF-8, so a stored one broke every later read)
without NUL (PostgreSQL cannot store it), and bounded lengths. What the pipeline builds from WLK
(`ASRParagraph`) is repaired instead of refused: a lone surrogate becomes U+FFFD, so a hostile
upstream cannot make a transcript unservable either.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

MAX_SPEAKER_NO = 1000
MAX_TEXT_CHARS = 100_000
MAX_NAME_CHARS = 200
MAX_PARAGRAPHS = 50_000
# Ten days: far beyond any hearing, and small enough that float arithmetic stays exact to the ms.
MAX_TIME_SECONDS = 864_000.0


def _check_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


def _repair_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value.replace("\x00", "\ufffd")


CheckedText = Annotated[str, AfterValidator(_check_text)]
RepairedText = Annotated[str, AfterValidator(_repair_text)]
Seconds = Annotated[float, Field(ge=0, le=MAX_TIME_SECONDS, allow_inf_nan=False)]


class ASRParagraph(BaseModel):
    """One speaker turn of the transcript."""

    paragraph_id: str
    speaker_no: int
    speaker_id: str | None = None
    speaker_name: RepairedText | None = None
    start: float
    end: float
    text: RepairedText
    language: str | None = None


class ASRDocument(BaseModel):
    """The whole transcript of one upload, as it stands now."""

    document_id: uuid.UUID
    document: list[ASRParagraph] = Field(default_factory=list)
    current_time: float | None = None
    total_time: float | None = None


class ValidatedParagraph(BaseModel):
    """A paragraph as a human reviewer submits it."""

    speaker_no: int = Field(ge=0, le=MAX_SPEAKER_NO)
    speaker_name: Annotated[CheckedText, Field(max_length=MAX_NAME_CHARS)] | None = None
    start: Seconds
    end: Seconds
    text: Annotated[CheckedText, Field(max_length=MAX_TEXT_CHARS)]

    @field_validator("text")
    @classmethod
    def _strip_text(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _check_order(self) -> ValidatedParagraph:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


ValidatedDocument = Annotated[list[ValidatedParagraph], Field(max_length=MAX_PARAGRAPHS)]
"""The body of a validation: at most `MAX_PARAGRAPHS` paragraphs."""


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
    live: bool = False  # a live session (WS /asr/live) rather than an upload
    ended_by: Literal["client", "disconnect"] | None = None  # live sessions, once ended
