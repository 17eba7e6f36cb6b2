"""Transcript deltas: what changed between two versions of a document's paragraph list (pure).

A delta `(from_index k, paragraphs, length n)` means `document = previous[:k] + paragraphs`,
truncated to `n` paragraphs. WLK's committed lines never change, so between two snapshots only
the last paragraph or two differ: a delta is usually one or two paragraphs whatever the length of
the document, which is what keeps the events stream's bytes linear in the audio.

`compute_delta` takes the longest common prefix; `apply_delta` is its inverse, so applying the
deltas of a sequence of documents in order, starting from an empty list (or any full snapshot, a
delta with `from_index` 0), rebuilds every document exactly. Paragraphs are compared with `==`;
any value type works (pydantic models or plain dicts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass(frozen=True)
class Delta(Generic[P]):
    from_index: int
    paragraphs: tuple[P, ...]
    length: int


def compute_delta(previous: Sequence[P], current: Sequence[P]) -> Delta[P]:
    """The smallest prefix-based delta that turns `previous` into `current`."""
    common = 0
    limit = min(len(previous), len(current))
    while common < limit and previous[common] == current[common]:
        common += 1
    return Delta(from_index=common, paragraphs=tuple(current[common:]), length=len(current))


def full_snapshot(current: Sequence[P]) -> Delta[P]:
    """A delta that needs no previous state (`from_index` 0)."""
    return Delta(from_index=0, paragraphs=tuple(current), length=len(current))


def apply_delta(previous: Sequence[P], delta: Delta[P]) -> list[P]:
    """`previous[:from_index] + paragraphs`, truncated to `length`.

    Raises:
        ValueError: the delta does not fit `previous` (from_index beyond its end, or a length
            the result cannot have); a client that sees this lost a frame and must resume.
    """
    if delta.from_index < 0 or delta.from_index > len(previous):
        raise ValueError(f"from_index {delta.from_index} is beyond {len(previous)} paragraphs")
    result = [*previous[: delta.from_index], *delta.paragraphs]
    if delta.length < 0 or delta.length > len(result):
        raise ValueError(f"length {delta.length} does not fit {len(result)} paragraphs")
    return result[: delta.length]
