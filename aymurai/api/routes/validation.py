"""Human validation of a transcript: read the current document, store a reviewed one.

The body is capped and parsed off the event loop (`CappedJSONRoute`) and every paragraph is checked
(`ValidatedParagraph`), so nothing stored here can make the document unservable later.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from aymurai.api.auth import DocumentReaderDep, ValidateDep
from aymurai.api.body import CappedJSONRoute
from aymurai.api.deps import ServiceDep
from aymurai.transcription.schemas import ASRDocument, ValidatedDocument

router = APIRouter(prefix="/asr/validation", tags=["validation"], route_class=CappedJSONRoute)


@router.get("/document/{document_id}", response_model=ASRDocument)
async def get_document(
    document_id: uuid.UUID, service: ServiceDep, _: DocumentReaderDep
) -> ASRDocument:
    """The document's human validation if there is one, else its transcription."""
    return await service.get_document(document_id)


@router.post("/document/{document_id}", response_model=ASRDocument)
async def save_validation(
    document_id: uuid.UUID, paragraphs: ValidatedDocument, service: ServiceDep, _: ValidateDep
) -> ASRDocument:
    """Store a human-reviewed transcript; re-transcribing never erases it."""
    return await service.save_validation(document_id, paragraphs)
