"""Receiving an upload without holding it in memory.

The multipart body is parsed as it arrives (python-multipart's push parser); the `file` part is
spooled to a temporary file in ~1 MiB batches, and the document id is hashed incrementally from the
same batches. Writing and hashing run in worker threads. Other (text) fields are kept in memory,
at most `MAX_FIELDS` of `MAX_FIELD_BYTES` each, for APIs that take options in the form (OpenAI's
`model`, `response_format`, …). The size limit is enforced while
receiving: we stop reading as soon as it is exceeded (or at once from Content-Length). On every
failure path the temporary file is removed before the error propagates.

Every byte comes from an untrusted client (issue 8):
* a body the multipart parser rejects (a part header without a colon, more than 8 part headers,
  one over ~4 kB, a boundary that never appears, a body cut short) is a 400 MALFORMED_REQUEST;
* the upload must keep a minimum average rate once a grace period is over: the next chunk must
  arrive before ``start + max(grace, received / min_rate)``. One rule stops both a silent client
  and a 1 byte/s trickle (a per-read timeout cannot stop the trickle) → 408 UPLOAD_TIMEOUT;
* uploads in progress are capped (503 TOO_MANY_UPLOADS), and a spool folder that is missing or
  full is a 503 SPOOL_UNAVAILABLE, never a 500;
* a client that goes away mid-upload raises `ClientDisconnectedError`, logged in one INFO line.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import ClientDisconnect, Request

from aymurai.errors import (
    ClientDisconnectedError,
    EmptyUploadError,
    InvalidRequestError,
    MalformedRequestError,
    MissingFileError,
    SpoolUnavailableError,
    UploadTimeoutError,
    UploadTooLargeError,
)
from aymurai.settings import Settings
from aymurai.transcription.identity import DocumentHasher
from aymurai.transcription.spool import Spool

logger = logging.getLogger(__name__)

FLUSH_BYTES = 1024 * 1024
# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_FIELDS = 64
MAX_FIELD_BYTES = 16 * 1024


@dataclass(frozen=True)
class UploadLimits:
    """How much, and how slowly, a client may upload.

    Attributes:
        max_bytes: the largest file accepted.
        min_bytes_per_second: the slowest average rate accepted once `grace_seconds` are over.
        grace_seconds: time an upload may take whatever its rate (slow starts, small files).
    """

    max_bytes: int
    min_bytes_per_second: float
    grace_seconds: float


def upload_limits(settings: Settings) -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.transcribe_max_upload_bytes,
        min_bytes_per_second=settings.transcribe_upload_min_bytes_per_second,
        grace_seconds=settings.transcribe_upload_grace_seconds,
    )


@dataclass(frozen=True)
class SpooledUpload:
    path: Path
    filename: str
    size_bytes: int
    document_id: uuid.UUID
    # Text fields other than the file, by name, in the order received.
    fields: dict[str, list[str]] = field(default_factory=dict)


def _filename_from_disposition(value: bytes) -> tuple[str | None, str | None]:
    _, params = parse_options_header(value)
    name = params.get(b"name")
    filename = params.get(b"filename")
    return (
        name.decode("utf-8", "replace") if name is not None else None,
        filename.decode("utf-8", "replace") if filename is not None else None,
    )


class _FilePartCollector:
    """Parser callbacks: collect the first `file` part's bytes into a batch buffer."""

    def __init__(self, field_name: str) -> None:
        self.field_name = field_name
        self.pending = bytearray()
        self.received = 0
        self.found = False
        self.filename = "upload"
        self._in_file_part = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self.fields: dict[str, list[str]] = {}
        self._field_count = 0
        self._field_name: str | None = None
        self._field_value = bytearray()

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._in_file_part = False
        self._field_name = None
        self._field_value.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        name, filename = _filename_from_disposition(self._disposition)
        if name == self.field_name and not self.found:
            self.found = True
            self._in_file_part = True
            if filename:
                self.filename = os.path.basename(filename)[:512] or "upload"
        elif name is not None and name != self.field_name and filename is None:
            self._field_count += 1
            if self._field_count > MAX_FIELDS:
                raise InvalidRequestError(f"More than {MAX_FIELDS} form fields.")
            self._field_name = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file_part:
            self.pending += data[start:end]
            self.received += end - start
        elif self._field_name is not None:
            self._field_value += data[start:end]
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise InvalidRequestError(
                    f"The form field {self._field_name!r} is longer than {MAX_FIELD_BYTES} bytes.",
                    param=self._field_name,
                )

    def on_part_end(self) -> None:
        self._in_file_part = False
        if self._field_name is not None:
            value = self._field_value.decode("utf-8", "replace")
            self.fields.setdefault(self._field_name, []).append(value)
            self._field_name = None


def _write_batch(file: IO[bytes], hasher: DocumentHasher, batch: bytes) -> None:
    try:
        file.write(batch)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO):
            logger.error("cannot write a spooled upload: %s", exc)
            raise SpoolUnavailableError() from exc
        raise
    hasher.update(batch)


async def receive_audio_upload(
    request: Request, *, limits: UploadLimits, spool: Spool, field_name: str = "file"
) -> SpooledUpload:
    """Spool the multipart `file` field of `request` to a new file in `spool`.

    Raises:
        UploadTooLargeError: the file (or the declared body) exceeds `limits.max_bytes`.
        MissingFileError: not a multipart body, or no `file` field.
        MalformedRequestError: the multipart body cannot be parsed.
        EmptyUploadError: the file has no bytes.
        InvalidRequestError: too many other fields, or one too long.
        UploadTimeoutError: the upload came slower than `limits` allow.
        TooManyUploadsError: too many uploads are in progress.
        SpoolUnavailableError: the spool folder is missing, full or unwritable.
        ClientDisconnectedError: the client went away mid-upload.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise MissingFileError("Send the audio as multipart/form-data with a 'file' field.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limits.max_bytes + MULTIPART_OVERHEAD_BYTES:
            raise UploadTooLargeError(limits.max_bytes)
    with spool.reserve_upload():
        return await _spool_body(request, boundary, limits, spool, field_name)


async def iter_body_at_min_rate(request: Request, limits: UploadLimits) -> AsyncIterator[bytes]:
    """The body's chunks, ending in UploadTimeoutError when the rate rule is broken.

    After `limits.grace_seconds` the average rate since the first byte must stay at or above
    `limits.min_bytes_per_second`, so the next chunk must arrive before
    ``start + max(grace, received / min_rate)``.

    Raises:
        UploadTimeoutError: the next chunk did not arrive in time.
        ClientDisconnect: the client went away (Starlette's, left to the caller).
    """
    started = time.monotonic()
    received = 0
    chunks = request.stream().__aiter__()
    while True:
        deadline = started + max(limits.grace_seconds, received / limits.min_bytes_per_second)
        with anyio.move_on_after(deadline - time.monotonic()) as timer:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
        if timer.cancelled_caught:
            raise UploadTimeoutError(
                f"The body came slower than {limits.min_bytes_per_second:g} bytes/s "
                f"({received} bytes in {time.monotonic() - started:.0f} s)."
            )
        received += len(chunk)
        yield chunk


def _make_parser(boundary: bytes, collector: _FilePartCollector) -> MultipartParser:
    try:
        return MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": collector.on_part_begin,
                "on_header_field": collector.on_header_field,
                "on_header_value": collector.on_header_value,
                "on_header_end": collector.on_header_end,
                "on_headers_finished": collector.on_headers_finished,
                "on_part_data": collector.on_part_data,
                "on_part_end": collector.on_part_end,
            },
        )
    except FormParserError as exc:  # e.g. a boundary over 70 characters
        raise MalformedRequestError(f"Invalid multipart boundary: {exc}") from exc


async def _spool_body(
    request: Request,
    boundary: bytes,
    limits: UploadLimits,
    spool: Spool,
    field_name: str,
) -> SpooledUpload:
    collector = _FilePartCollector(field_name)
    parser = _make_parser(boundary, collector)
    hasher = DocumentHasher()
    fd, path = spool.create_file()
    file = os.fdopen(fd, "wb")
    body_bytes = 0
    try:
        async for chunk in iter_body_at_min_rate(request, limits):
            body_bytes += len(chunk)
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise MalformedRequestError(f"Invalid multipart body: {exc}") from exc
            if collector.received > limits.max_bytes:
                raise UploadTooLargeError(limits.max_bytes)
            if len(collector.pending) >= FLUSH_BYTES:
                batch = bytes(collector.pending)
                collector.pending.clear()
                await anyio.to_thread.run_sync(_write_batch, file, hasher, batch)
        parser.finalize()
        if parser.state != MultipartState.END and not collector.found:
            # No part ever began: the boundary of the Content-Type is not the body's. (A body
            # cut short inside the file part keeps what arrived, as it always did.)
            raise MalformedRequestError(
                "Invalid multipart body: the boundary of the Content-Type never appears."
            )
        batch = bytes(collector.pending)
        collector.pending.clear()
        await anyio.to_thread.run_sync(_write_batch, file, hasher, batch)
        await anyio.to_thread.run_sync(file.close)
        if not collector.found:
            raise MissingFileError()
        if collector.received == 0:
            raise EmptyUploadError()
    except ClientDisconnect as exc:
        _discard(file, path)
        raise ClientDisconnectedError(
            f"The client disconnected after {body_bytes} bytes of its upload."
        ) from exc
    except BaseException:
        _discard(file, path)
        raise
    return SpooledUpload(
        path=path,
        filename=collector.filename,
        size_bytes=collector.received,
        document_id=hasher.document_id(),
        fields=collector.fields,
    )


def _discard(file: IO[bytes], path: Path) -> None:
    try:
        file.close()
    except OSError:
        pass  # a full disk can fail the final flush too; the file goes anyway
    # A local unlink is quick; no thread hop on the error path.
    path.unlink(missing_ok=True)
