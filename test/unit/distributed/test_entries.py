"""Job events as stream entries and back: the same event, byte for byte, and only what is needed."""

from __future__ import annotations

import uuid

import pytest

from aymurai.distributed.entries import decode_entry, encode_entry, is_full_state
from aymurai.transcription.channel import JobEvent
from aymurai.transcription.deltas import compute_delta
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

DOC_ID = uuid.uuid4()


def _paragraph(index: int, text: str) -> ASRParagraph:
    return ASRParagraph(
        paragraph_id=f"p{index}",
        speaker_no=1,
        speaker_id="speaker-1",
        start=index * 1.5,
        end=index * 1.5 + 1.25,
        text=text,
    )


def _encodings(event: JobEvent) -> tuple[object, ...]:
    if event.kind in ("error", "suspended"):
        return event.id, event.kind, event.error_code, event.error_detail
    return event.id, event.kind, event.document_json, event.delta_json, event.snapshot_json


def _transcription(
    event_id: int, previous: list[ASRParagraph], current: list[ASRParagraph]
) -> JobEvent:
    document = ASRDocument(
        document_id=DOC_ID, document=current, current_time=12.345, total_time=60.0
    )
    return JobEvent(event_id, "transcription", document, compute_delta(previous, current))


def test_every_kind_round_trips_byte_for_byte() -> None:
    """Queued, upstream, line, done, error and suspended need nothing before them."""
    paragraphs = [_paragraph(0, "«hola» ñandú 🎙"), _paragraph(1, 'dijo "no"\\n')]
    events = [
        JobEvent(1, "queued", ASRDocument(document_id=DOC_ID), position=4),
        JobEvent(2, "upstream", upstream={"state": "resumed", "attempt": 2, "resume_from": 3.5}),
        JobEvent(3, "line", line=paragraphs[0], line_index=0),
        JobEvent(
            4,
            "done",
            ASRDocument(document_id=DOC_ID, document=paragraphs, current_time=9, total_time=9),
        ),
        JobEvent(5, "error", error_code="UPSTREAM_LOST", error_detail="perdió «WLK»"),
        JobEvent(6, "error"),
        JobEvent(7, "suspended"),
    ]
    for event in events:
        fields = encode_entry(event, full=False)
        assert is_full_state(fields) == (event.kind not in ("upstream", "line"))
        decoded = decode_entry(event.id, fields, None)
        assert decoded is not None and _encodings(decoded) == _encodings(event)


def test_a_delta_needs_the_previous_paragraphs_unless_full() -> None:
    """A delta from index > 0 applies to `previous`; with `full` it stands alone."""
    before = [_paragraph(0, "uno"), _paragraph(1, "dos")]
    after = [before[0], _paragraph(1, "dos tres"), _paragraph(2, "cuatro")]
    event = _transcription(9, before, after)
    delta_only = encode_entry(event, full=False)
    assert set(delta_only) == {b"k", b"d"} and not is_full_state(delta_only)
    assert decode_entry(9, delta_only, None) is None
    decoded = decode_entry(9, delta_only, before)
    assert decoded is not None and _encodings(decoded) == _encodings(event)
    assert decoded.document is not None and decoded.document.document[0] is before[0]
    full = encode_entry(event, full=True)
    assert b"f" in full and is_full_state(full)
    for previous in (None, [_paragraph(0, "otro")], before):  # unknown, wrong, right
        decoded = decode_entry(9, full, previous)
        assert decoded is not None and _encodings(decoded) == _encodings(event)
    assert decoded.document is not None and decoded.document.document[0] is before[0]


def test_a_delta_from_index_zero_is_the_document_itself() -> None:
    """No document repeated next to a delta that already holds it all."""
    event = _transcription(1, [], [_paragraph(0, "uno")])
    fields = encode_entry(event, full=True)
    assert set(fields) == {b"k", b"d"} and is_full_state(fields)
    decoded = decode_entry(1, fields, None)
    assert decoded is not None and _encodings(decoded) == _encodings(event)


def test_values_keep_their_type_and_so_their_encoding() -> None:
    """An int time stays an int (validating again would make it 5.0 and change the bytes)."""
    paragraph = ASRParagraph.model_construct(
        paragraph_id="p0", speaker_no=1, start=1, end=2, text="x", speaker_id=None
    )
    document = ASRDocument.model_construct(
        document_id=DOC_ID, document=[paragraph], current_time=5, total_time=7
    )
    event = JobEvent(3, "done", document)
    decoded = decode_entry(3, encode_entry(event, full=False), None)
    assert decoded is not None and decoded.document_json == event.document_json


def test_what_cannot_be_encoded_or_decoded_says_so() -> None:
    """A lone surrogate cannot be written; an entry we did not write is refused."""
    broken = _paragraph(0, "ok").model_copy(update={"text": "\ud800"})
    with pytest.raises(ValueError):
        encode_entry(_transcription(1, [], [broken]), full=False)
    with pytest.raises(ValueError):
        decode_entry(1, {b"k": b"mystery"}, None)
    with pytest.raises(KeyError):
        decode_entry(1, {b"k": b"transcription"}, None)
