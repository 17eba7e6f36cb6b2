"""Content-addressed document ids for uploaded audio.

The id of an upload is ``uuid5(NAMESPACE_DNS, blake2b(data, digest_size=16).hexdigest())``: the
same bytes always give the same id, which is what the AymurAI backend computes, so a transcript
stored here can be found by the backend and the other way round. The hash is incremental so that
the upload can be hashed while it is spooled, without holding it in memory.

Pure and deterministic: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["DocumentHasher", "document_id_for_bytes"]

_DIGEST_SIZE_BYTES = 16


class DocumentHasher:
    """Incremental document id: feed the upload with `update` as it arrives.

    `document_id` may be called at any time; it does not consume the hasher, so more bytes may be
    fed afterwards (the id then covers everything fed so far).
    """

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=_DIGEST_SIZE_BYTES)

    def update(self, chunk: bytes) -> None:
        """Add the next bytes of the upload, in order."""
        self._hash.update(chunk)

    def document_id(self) -> uuid.UUID:
        """Return the id of every byte fed so far."""
        return uuid.uuid5(uuid.NAMESPACE_DNS, self._hash.hexdigest())


def document_id_for_bytes(data: bytes) -> uuid.UUID:
    """Return the document id of a whole upload held in memory."""
    hasher = DocumentHasher()
    hasher.update(data)
    return hasher.document_id()
