"""Document ids: known vectors and incremental == one-shot."""

from __future__ import annotations

import random
import uuid

import pytest

from aymurai.transcription.identity import DocumentHasher, document_id_for_bytes

# Computed once, independently of this module: BLAKE2b-128 hex digest (the empty-input digest is
# the published BLAKE2b-128 vector cae66941…), then UUIDv5 built by hand from SHA-1 over the
# NAMESPACE_DNS bytes + the hex digest, with the version and variant bits set.
_PATTERN_1MIB = bytes(range(256)) * 4096
_VECTORS = [
    (b"", "8505addd-fa2d-58c3-a1f2-de15119c1824"),
    (b"abc", "0ae8bd31-cf88-52e8-b6cb-6c903eec901b"),
    (_PATTERN_1MIB, "f40cd734-6e65-5246-b24f-d8f1c09b2a78"),
]


@pytest.mark.parametrize(("data", "expected"), _VECTORS, ids=["empty", "abc", "pattern-1MiB"])
def test_document_id_for_bytes_matches_known_vectors(data: bytes, expected: str) -> None:
    """The one-shot id equals the independently computed backend-compatible id."""
    assert document_id_for_bytes(data) == uuid.UUID(expected)


@pytest.mark.parametrize(("data", "expected"), _VECTORS, ids=["empty", "abc", "pattern-1MiB"])
def test_document_hasher_matches_known_vectors(data: bytes, expected: str) -> None:
    """Feeding the bytes in one piece gives the known id."""
    hasher = DocumentHasher()
    hasher.update(data)
    assert hasher.document_id() == uuid.UUID(expected)


@pytest.mark.parametrize("seed", range(5))
def test_document_hasher_random_chunking_equals_one_shot(seed: int) -> None:
    """Any split of the bytes into chunks (including empty ones) gives the one-shot id."""
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(0, 300_000))
    hasher = DocumentHasher()
    pos = 0
    while pos < len(data):
        size = rng.choice([0, 1, rng.randrange(1, 65_536)])
        hasher.update(data[pos : pos + size])
        pos += size
    assert hasher.document_id() == document_id_for_bytes(data)


def test_document_hasher_id_is_not_consuming() -> None:
    """Asking for the id midway does not change the final id."""
    hasher = DocumentHasher()
    hasher.update(b"ab")
    assert hasher.document_id() == document_id_for_bytes(b"ab")
    hasher.update(b"c")
    assert hasher.document_id() == uuid.UUID(_VECTORS[1][1])


def test_document_id_for_bytes_is_version_5() -> None:
    """Ids are name-based SHA-1 UUIDs (version 5, RFC 4122 variant)."""
    doc_id = document_id_for_bytes(b"audio")
    assert doc_id.version == 5
    assert doc_id.variant == uuid.RFC_4122
