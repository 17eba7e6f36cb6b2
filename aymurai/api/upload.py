"""Receiving an upload without holding it in memory.

The multipart body is parsed as it arrives (python-multipart's push parser); the `file` part is
spooled to a temporary file in ~1 MiB batches, and the document id is hashed incrementally from the
same batches. Writing and hashing run in worker threads. Other (text) fields are kept in memory,
at most `MAX_FIELDS` of `MAX_FIELD_BYTES` each, for APIs that take options in the form (OpenAI's
`model`, `response_format`, …). The size limit is enforced while
receiving: we stop reading as soon as it is exceeded (or at once from Content-Length). On every
failure path the temporary file is removed before the error propagates.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from aymurai.errors import (
    EmptyUploadError,
    InvalidRequestError,
    MissingFileError,
    UploadTooLargeError,
)
from aymurai.transcription.identity import DocumentHasher

logger = logging.getLogger(__name__)

FLUSH_BYTES = 1024 * 1024
# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_FIELDS = 64
MAX_FIELD_BYTES = 16 * 1024


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
    file.write(batch)
    hasher.update(batch)


async def receive_audio_upload(
    request: Request, *, max_bytes: int, spool_dir: str | None, field_name: str = "file"
) -> SpooledUpload:
    """Spool the multipart `file` field of `request` to a temporary file.

    Raises:
        UploadTooLargeError: the file (or the declared body) exceeds `max_bytes`.
        MissingFileError: not a multipart body, or no `file` field.
        EmptyUploadError: the file has no bytes.
        InvalidRequestError: too many other fields, or one too long.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise MissingFileError("Send the audio as multipart/form-data with a 'file' field.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > max_bytes + MULTIPART_OVERHEAD_BYTES:
            raise UploadTooLargeError(max_bytes)

    collector = _FilePartCollector(field_name)
    parser = MultipartParser(
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
    hasher = DocumentHasher()
    fd, name = tempfile.mkstemp(prefix="aymurai-upload-", suffix=".audio", dir=spool_dir)
    path = Path(name)
    file = os.fdopen(fd, "wb")
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if collector.received > max_bytes:
                raise UploadTooLargeError(max_bytes)
            if len(collector.pending) >= FLUSH_BYTES:
                batch = bytes(collector.pending)
                collector.pending.clear()
                await anyio.to_thread.run_sync(_write_batch, file, hasher, batch)
        parser.finalize()
        batch = bytes(collector.pending)
        collector.pending.clear()
        await anyio.to_thread.run_sync(_write_batch, file, hasher, batch)
        await anyio.to_thread.run_sync(file.close)
        if not collector.found:
            raise MissingFileError()
        if collector.received == 0:
            raise EmptyUploadError()
    except BaseException:
        file.close()
        os.unlink(path)  # a local unlink is quick; no thread hop on the error path
        raise
    return SpooledUpload(
        path=path,
        filename=collector.filename,
        size_bytes=collector.received,
        document_id=hasher.document_id(),
        fields=collector.fields,
    )
