"""Incremental decoding of a growing WebM/Opus stream (a browser's `MediaRecorder`) to 16 kHz PCM.

A browser records WebM/Opus and sends it as it records: the gateway decodes it while it grows and
sends WLK PCM, so WLK keeps running with `--pcm-input`. FFmpeg reads through a file-like object
without `seek` (FFmpeg then treats it as a non-seekable stream, as a pipe); `read()` blocks until
the WebSocket handler feeds more bytes, so the decoder runs in a worker thread of its own for the
whole session, and PCM comes out as soon as each block of audio is decoded, not at the end.

Like `decode.py` this module imports no async library: the caller decides where the thread runs.
The buffer of undecoded bytes is bounded (`max_bytes`): a client sending faster than we decode is
refused rather than buffered without bound.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import av

from aymurai.errors import InvalidAudioError
from aymurai.transcription.decode import _iter_resampled, _select_audio_stream, _to_s16le

# Opus in WebM states its parameters in the header: no need to read ahead to probe the stream
# (the default probe would wait for seconds of a live recording before the first PCM).
_STREAM_OPTIONS = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"}
_DEMUXER = "matroska,webm"


class DecoderAborted(Exception):
    """The session ended before the end of the stream: the decoder thread stops."""


class GrowingBuffer:
    """A thread-safe, non-seekable byte stream fed from the event loop, read by FFmpeg.

    `feed()` never blocks; `read()` blocks until bytes, `finish()` (end of stream: FFmpeg reads
    EOF) or `abort()` (the read raises, so the decoder stops at once).
    """

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._condition = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._finished = False
        self._aborted = False

    @property
    def aborted(self) -> bool:
        return self._aborted

    @property
    def buffered_bytes(self) -> int:
        return self._size

    def feed(self, data: bytes) -> bool:
        """Append `data`; False (and nothing appended) if it would pass `max_bytes`."""
        with self._condition:
            if self._size + len(data) > self.max_bytes:
                return False
            if data:
                self._chunks.append(bytes(data))
                self._size += len(data)
                self._condition.notify_all()
            return True

    def finish(self) -> None:
        with self._condition:
            self._finished = True
            self._condition.notify_all()

    def abort(self) -> None:
        with self._condition:
            self._aborted = True
            self._chunks.clear()
            self._size = 0
            self._condition.notify_all()

    def read(self, size: int = -1) -> bytes:
        with self._condition:
            while not self._chunks and not self._finished and not self._aborted:
                self._condition.wait()
            if self._aborted or not self._chunks:
                # End of stream for FFmpeg (an exception here would only be printed by PyAV);
                # the decoder checks `aborted` afterwards.
                return b""
            wanted = self._size if size is None or size < 0 else size
            parts: list[bytes] = []
            taken = 0
            while self._chunks and taken < wanted:
                chunk = self._chunks.popleft()
                room = wanted - taken
                if len(chunk) > room:
                    self._chunks.appendleft(chunk[room:])
                    chunk = chunk[:room]
                parts.append(chunk)
                taken += len(chunk)
            self._size -= taken
            return b"".join(parts)


def decode_growing_webm(source: GrowingBuffer, emit: Callable[[bytes], None]) -> None:
    """Decode `source` as it grows, calling `emit(pcm)` with 16 kHz mono s16le blocks.

    Returns at the end of the stream; runs in a worker thread (blocks on `source.read`).

    Raises:
        InvalidAudioError: not WebM/Matroska audio, or corrupt.
        DecoderAborted: `source.abort()` was called.
    """
    try:
        container = av.open(
            source,
            mode="r",
            format=_DEMUXER,
            options=_STREAM_OPTIONS,
            metadata_errors="ignore",
        )
    except av.FFmpegError as exc:
        if source.aborted:
            raise DecoderAborted() from exc
        raise InvalidAudioError("not a WebM/Opus recording") from exc
    with container:
        stream = _select_audio_stream(container)
        for block in _iter_resampled(container, stream):
            if source.aborted:
                break
            if block.size:
                emit(_to_s16le(block))
    if source.aborted:
        raise DecoderAborted()
