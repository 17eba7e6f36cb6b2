"""What the page should render for a document, shared by the Chromium and Firefox tests."""

from __future__ import annotations

from aymurai.transcription.formats import format_clock, speaker_label
from aymurai.transcription.schemas import ASRDocument


def expected_paragraphs(document: ASRDocument) -> list[dict[str, object]]:
    """The rendered paragraphs (as the page's DOM reports them) for a finished document."""
    return [
        {
            "id": p.paragraph_id,
            "clock": format_clock(p.start),
            "speaker": speaker_label(p),
            "text": p.text,
            "tentative": False,
        }
        for p in document.document
    ]
