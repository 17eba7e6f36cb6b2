"""A job event as a Redis stream entry, and back, byte for byte (pure).

A job's stream is `stream_key(shared, job_id)`. The entry id is the event id (`<id>-0`); the
fields, `k` (the kind, always first: the append script reads it) and then:

| kind | fields |
|---|---|
| `queued` | `q`: its data `{"document_id", "position"}` |
| `transcription` | `d`: the delta as the events stream sends it; `f`: sometimes, the document |
| `upstream` | `u`: the notice `{"state", "attempt", "resume_from"}` |
| `line` | `l`: `{"index", "paragraph"}` |
| `done` | `f`: the full document |
| `error` | `e`: `[code, detail]` |
| `suspended` | nothing |

Decoding rebuilds the `JobEvent` the owner had: same document, delta, position, line, so its
`delta_json`, `snapshot_json` and `document_json` are the owner's, byte for byte. The models are
built without validation (`model_construct`): the entries were written by our own replicas from
validated models, and validating again could change a value's type (an int time becoming a
float) and so its encoding. A `transcription` entry without `f` is a delta: it needs the
paragraphs of the entry just before it (`previous`), unless it starts at index 0; with `f` it
stands alone (and shares the unchanged paragraphs with `previous`, so a reader's events cost one
document plus their deltas, as the owner's do).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from aymurai.distributed.connection import SharedRedis
from aymurai.transcription.channel import JobEvent
from aymurai.transcription.deltas import Delta, apply_delta, compute_delta
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

SELF_CONTAINED_KINDS = frozenset({"queued", "done", "error", "suspended"})
"""States that need nothing before them (a `transcription` may be one too: see `is_full_state`)."""
KINDS = frozenset({*SELF_CONTAINED_KINDS, "transcription", "upstream", "line"})


def stream_key(shared: SharedRedis, job_id: str) -> str:
    """The key of a job's event stream."""
    return shared.key("events", job_id)


def encode_entry(event: JobEvent, *, full: bool) -> dict[bytes, bytes]:
    """The fields of `event`'s entry; `full`: a transcription carries its whole document too.

    Raises:
        ValueError: the event cannot be encoded (lone surrogates, pydantic serialisation errors).
    """
    fields: dict[str, str] = {"k": event.kind}
    if event.kind == "queued":
        fields["q"] = event.document_json
    elif event.kind == "transcription":
        fields["d"] = event.delta_json
        assert event.delta is not None
        if full and event.delta.from_index > 0:  # from index 0, the delta is the document
            fields["f"] = event.document_json
    elif event.kind == "upstream":
        fields["u"] = event.document_json
    elif event.kind == "line":
        fields["l"] = event.document_json
    elif event.kind == "done":
        fields["f"] = event.document_json
    elif event.kind == "error":
        fields["e"] = json.dumps([event.error_code, event.error_detail], ensure_ascii=False)
    return {name.encode(): value.encode() for name, value in fields.items()}


def is_full_state(fields: Mapping[bytes, bytes]) -> bool:
    """The entry is a state of the job that a reader can start from, with nothing before it."""
    kind = fields[b"k"].decode()
    if kind in SELF_CONTAINED_KINDS:
        return True
    if kind != "transcription":
        return False
    return b"f" in fields or json.loads(fields[b"d"])["from_index"] == 0


def decode_entry(
    entry_id: int, fields: Mapping[bytes, bytes], previous: Sequence[ASRParagraph] | None
) -> JobEvent | None:
    """The event of an entry; None for a delta that `previous` (None: unknown) cannot take.

    Raises:
        ValueError, KeyError, TypeError: the entry is not one we write.
    """
    kind = fields[b"k"].decode()
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    if kind == "queued":
        data = json.loads(fields[b"q"])
        document = ASRDocument.model_construct(document_id=uuid.UUID(data["document_id"]))
        return JobEvent(entry_id, "queued", document=document, position=data["position"])
    if kind == "transcription":
        return _transcription(entry_id, fields, previous)
    if kind == "upstream":
        return JobEvent(entry_id, "upstream", upstream=json.loads(fields[b"u"]))
    if kind == "line":
        data = json.loads(fields[b"l"])
        line = _paragraph(data["paragraph"])
        return JobEvent(entry_id, "line", line=line, line_index=data["index"])
    if kind == "done":
        return JobEvent(entry_id, "done", document=_document(json.loads(fields[b"f"])))
    if kind == "error":
        code, detail = json.loads(fields[b"e"])
        return JobEvent(entry_id, "error", error_code=code, error_detail=detail)
    return JobEvent(entry_id, "suspended")


def _transcription(
    entry_id: int, fields: Mapping[bytes, bytes], previous: Sequence[ASRParagraph] | None
) -> JobEvent | None:
    data = json.loads(fields[b"d"])
    delta = Delta(
        data["from_index"], tuple(_paragraph(p) for p in data["paragraphs"]), data["length"]
    )
    if b"f" in fields:  # the whole document: right whatever this reader had before
        document = _document(json.loads(fields[b"f"]))
        if previous:  # share the paragraphs that did not change, as the owner's recorder does
            common = compute_delta(previous, document.document).from_index
            document.document[:common] = previous[:common]
        return JobEvent(entry_id, "transcription", document=document, delta=delta)
    if previous is None and delta.from_index > 0:
        return None
    try:
        paragraphs = apply_delta(previous or (), delta)  # reuses the unchanged paragraphs
    except ValueError:
        return None  # does not fit what this reader has: it lost its place
    document = ASRDocument.model_construct(
        document_id=uuid.UUID(data["document_id"]),
        document=paragraphs,
        current_time=data["current_time"],
        total_time=data["total_time"],
    )
    return JobEvent(entry_id, "transcription", document=document, delta=delta)


def _paragraph(data: dict[str, Any]) -> ASRParagraph:
    return ASRParagraph.model_construct(**data)


def _document(data: dict[str, Any]) -> ASRDocument:
    return ASRDocument.model_construct(
        document_id=uuid.UUID(data["document_id"]),
        document=[_paragraph(p) for p in data["document"]],
        current_time=data["current_time"],
        total_time=data["total_time"],
    )
