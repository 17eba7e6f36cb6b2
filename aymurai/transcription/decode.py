"""Blocking audio decoder: an uploaded file → 16 kHz mono s16le PCM, one chunk at a time.

The async pipeline pulls `iter_pcm_chunks` one chunk per thread hop and closes it in ``finally``;
this module therefore never touches an event loop (no asyncio, anyio or websockets here).

Invariants:

* Output is 16 kHz, mono (the mean of all channels), signed 16-bit little-endian. Samples are
  clipped to [-1, 1] before scaling, so a hot float file saturates instead of wrapping around.
* Every chunk is exactly ``round(chunk_seconds * 16000) * 2`` bytes except the last, which is
  shorter and never empty.
* Memory does not grow with the audio length: FFmpeg (through PyAV) demuxes and decodes packet by
  packet and one `soxr.ResampleStream` per stream carries the resampler state across packets.
* Closing the generator closes the container at once (its file descriptor included).

We decode with PyAV for every format, not soundfile for WAV/FLAC/Vorbis and PyAV for the rest,
because PyAV alone meets the speed and memory targets (docs/decoding.md has the numbers) and one
path means one set of edge cases. We decode from the spooled file, never from a pipe: MP4/M4A with
the ``moov`` atom at the end needs to seek, and FFmpeg reading a pipe yields no samples for it.

Only real audio containers are opened, and only the spooled file itself (issue 8): we pick the
demuxer from the file's magic bytes (`ALLOWED_DEMUXERS`) and force it, and FFmpeg is told to
refuse any other demuxer (``format_whitelist``) and any protocol but ``file``
(``protocol_whitelist``), with the path given as a ``file:`` URL. We never let FFmpeg guess the
format: its probe happily picks ``concat``, ``hls`` or ``image2`` for a crafted upload, and those
open other files or URLs.
None of the allowed demuxers follows references to other files (MP4 data references stay off:
``enable_drefs`` defaults to 0).

The audio length is bounded (`max_seconds`): by the probe, which reads the header (or demuxes the
timestamps, stopping as soon as the limit is passed), and again while decoding, since a header can
lie (a 72 kB FLAC can hold 10 h of silence).

Where FFmpeg leaves encoder padding behind we trim it (see `_sample_limit`): AAC in MP4 ends with
up to one frame of padding that FFmpeg does not cut although the edit list says where the audio
ends. Priming at the start (AAC edit lists, the LAME tag of MP3, Opus pre-skip) FFmpeg already
drops.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.container
import av.stream
import numpy as np
import numpy.typing as npt
import soxr

from aymurai.errors import AudioTooLongError, InvalidAudioError

__all__ = [
    "ALLOWED_DEMUXERS",
    "TARGET_SAMPLE_RATE",
    "AudioInfo",
    "iter_pcm_chunks",
    "probe_audio",
    "sniff_demuxer",
]

logger = logging.getLogger(__name__)

TARGET_SAMPLE_RATE = 16000
"""The rate WhisperLiveKit expects in --pcm-input mode."""

_SAMPLE_WIDTH_BYTES = 2

ALLOWED_DEMUXERS = ("wav", "flac", "ogg", "mp3", "aac", "mov", "matroska", "aiff", "asf")
"""FFmpeg demuxers we open: self-contained audio/video containers that never open another file.

WAV, FLAC, Ogg, MP3, ADTS AAC, MP4/M4A/MOV and Matroska/WebM are what recorders, phones and
browsers write; AIFF is what Apple tools export; ASF holds the WMA files Windows dictation
recorders still produce. Everything else (playlists, scripts, image sequences, raw formats) is
refused before FFmpeg reads past the first bytes.
"""
_FORMAT_WHITELIST = ",".join(ALLOWED_DEMUXERS)
# Forced by their full FFmpeg names, so `container.format.name` reads as when FFmpeg probed.
_MOV = "mov,mp4,m4a,3gp,3g2,mj2"
_MATROSKA = "matroska,webm"
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_MOV_ATOMS = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
_SNIFF_BYTES = 16
# The WAV demuxer reads 4096-byte packets by default (23 ms of 44.1 kHz stereo): per-packet Python
# overhead then dominates. 256 KiB packets cut it by 64x and still bound memory. The header holds
# every stream parameter, so stream probing is cut to the minimum: with the default 5 MB probe,
# opening takes 0.3 s with big packets (decided on content, not on the file name).
_WAV_OPTIONS = {"max_size": str(256 * 1024), "probesize": "32", "analyzeduration": "0"}
# Decoded frames are gathered until this many native-rate samples before mixing and resampling:
# Opus and Vorbis frames are tiny (2.5-20 ms) and per-call numpy/soxr overhead would dominate.
_BATCH_SAMPLES = 16384
# Probe: the first packets must yield samples. Decoders may buffer a few packets before output.
_PROBE_MAX_PACKETS = 64
# A corrupt packet here and there is skipped (as ffmpeg(1) does); a run this long is a broken file.
_MAX_CONSECUTIVE_BAD_PACKETS = 8
_SAMPLE_DTYPES: dict[str, type[np.generic]] = {
    "u8": np.uint8,
    "s16": np.int16,
    "s32": np.int32,
    "s64": np.int64,
    "flt": np.float32,
    "dbl": np.float64,
}
_SAMPLE_SCALES = {"u8": 1 / 2**7, "s16": 1 / 2**15, "s32": 1 / 2**31, "s64": 1 / 2**63}

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about the audio stream we will decode.

    Attributes:
        format_name: FFmpeg's demuxer name, e.g. ``"wav"``, ``"mov,mp4,m4a,3gp,3g2,mj2"``,
            ``"matroska,webm"``.
        codec: FFmpeg's codec name, e.g. ``"pcm_s16le"``, ``"flac"``, ``"opus"``, ``"aac"``.
        duration_seconds: length of the audio, > 0; matches the decoded length within ~10 ms.
        channels: channels in the stream (the decoder mixes them down to mono).
        sample_rate: the stream's native rate in Hz (the decoder resamples to 16 kHz).
    """

    format_name: str
    codec: str
    duration_seconds: float
    channels: int
    sample_rate: int


def probe_audio(path: Path, *, max_seconds: float | None = None) -> AudioInfo:
    """Describe the audio in `path` and check that it decodes, without decoding all of it.

    The duration comes from the container when it knows it (WAV, FLAC, Ogg, MP3 with a Xing/LAME
    header, MP4). When it does not (WebM from MediaRecorder, MP3 without a header), packets are
    demuxed without decoding and their timestamps give the duration: bounded memory, and about
    1 s per hour of audio.

    Args:
        path: a seekable regular file.
        max_seconds: the longest audio accepted; None for no limit.

    Raises:
        InvalidAudioError: not an allowed container, no audio stream, the first packets do not
            decode, or the stream has no samples.
        AudioTooLongError: the audio is longer than `max_seconds`.
    """
    with _open_input(path) as container:
        stream = _select_audio_stream(container)
        _check_first_samples(container, stream)
        format_name = container.format.name
        codec = stream.codec_context.name
        channels = stream.codec_context.channels
        sample_rate = stream.codec_context.sample_rate
        duration = _header_duration_seconds(container, stream, path)
    if duration is None:
        duration = _demuxed_duration_seconds(path, max_seconds=max_seconds)
    if duration <= 0:
        raise InvalidAudioError("audio stream has no samples")
    if max_seconds is not None and duration > max_seconds:
        raise AudioTooLongError(max_seconds)
    return AudioInfo(format_name, codec, duration, channels, sample_rate)


def iter_pcm_chunks(
    path: Path,
    *,
    chunk_seconds: float = 1.0,
    max_seconds: float | None = None,
    start_seconds: float = 0.0,
) -> Generator[bytes, None, None]:
    """Decode `path` to 16 kHz mono s16le PCM, yielding fixed-size chunks.

    A generator (not just an iterator) so callers can ``close()`` it: nothing is opened until the
    first ``next()``, and ``close()`` releases the file at once.

    Args:
        path: a seekable regular file (not a pipe: see the module docstring).
        chunk_seconds: chunk length in seconds of output audio; every chunk but the last is
            exactly ``round(chunk_seconds * 16000) * 2`` bytes.
        max_seconds: the longest audio decoded; None for no limit. Checked on the decoded
            samples, whatever the header said (the probe already checked the header).
        start_seconds: output starts at this position (a resumed transcription's seek point),
            exact to the sample: see `_skip_samples`. Past the end, nothing is yielded.

    Raises:
        ValueError: `chunk_seconds` is too small for one sample.
        InvalidAudioError: the file cannot be opened as audio, it has no samples, or decoding
            fails mid-stream (after the chunks decoded so far were yielded).
        AudioTooLongError: more than `max_seconds` of audio decoded (after the chunks up to
            the limit were yielded).
    """
    chunk_bytes = round(chunk_seconds * TARGET_SAMPLE_RATE) * _SAMPLE_WIDTH_BYTES
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_seconds={chunk_seconds} is shorter than one sample")
    # The probe's length matches the decoded one within ~10 ms (codec padding): allow 1 s of slack
    # so a file just under the limit is never cut at the end.
    max_bytes = (
        None
        if max_seconds is None
        else math.ceil((max_seconds + 1.0) * TARGET_SAMPLE_RATE) * _SAMPLE_WIDTH_BYTES
    )
    pending = bytearray()
    emitted = False
    with _open_input(path) as container:
        stream = _select_audio_stream(container)
        start_sample = round(max(0.0, start_seconds) * TARGET_SAMPLE_RATE)
        # The limit is on the position in the file, not on what is sent after a seek point.
        decoded_bytes = start_sample * _SAMPLE_WIDTH_BYTES
        for block in _skip_samples(_iter_resampled(container, stream), start_sample):
            pcm = _to_s16le(block)
            decoded_bytes += len(pcm)
            if max_bytes is not None and decoded_bytes > max_bytes:
                assert max_seconds is not None
                raise AudioTooLongError(max_seconds)
            pending += pcm
            while len(pending) >= chunk_bytes:
                emitted = True
                yield bytes(pending[:chunk_bytes])
                del pending[:chunk_bytes]
    if pending:
        yield bytes(pending)
    elif not emitted and start_seconds <= 0:
        raise InvalidAudioError("audio stream has no samples")


def _skip_samples(blocks: Iterator[FloatArray], count: int) -> Iterator[FloatArray]:
    """`blocks` without their first `count` samples (16 kHz output samples).

    We decode from the start and drop, rather than seek the container: after a seek FFmpeg lands
    on a packet boundary and the resampler starts cold, so the samples would differ from those
    of the first session; decoding is 100-1000x real time (docs/decoding.md), cheap next to a
    reconnect.
    """
    for block in blocks:
        if count >= len(block):
            count -= len(block)
            continue
        yield block[count:] if count else block
        count = 0


def sniff_demuxer(path: Path) -> str | None:
    """The allowed FFmpeg demuxer for `path` from its first bytes, or None if none fits.

    A leading ID3v2 tag is skipped (MP3, AAC and FLAC files may carry one; FFmpeg skips it for
    every demuxer before reading the header).
    """
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
        if head[:3] == b"ID3" and len(head) >= 10:
            # ID3v2 size is a 28-bit "syncsafe" integer after the 10-byte header (+10 if a footer).
            size = head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9]
            file.seek(10 + size + (10 if head[5] & 0x10 else 0))
            head = file.read(_SNIFF_BYTES)
    return _demuxer_for_head(head)


def _demuxer_for_head(head: bytes) -> str | None:
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _MATROSKA
    if head[4:8] in _MOV_ATOMS:
        return _MOV
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:16] == _ASF_GUID:
        return "asf"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # 12-bit sync, layer 00: ADTS AAC
            return "aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # 11-bit sync, layer I-III: MPEG audio
            return "mp3"
    return None


def _open_input(path: Path) -> av.container.InputContainer:
    demuxer = sniff_demuxer(path)
    if demuxer is None:
        raise InvalidAudioError(
            "not an audio file of an accepted container: send WAV, FLAC, Ogg, MP3, AAC, "
            "MP4/M4A, WebM/Matroska, AIFF or WMA"
        )
    options = {"protocol_whitelist": "file", "format_whitelist": _FORMAT_WHITELIST}
    if demuxer == "wav":
        options.update(_WAV_OPTIONS)
    elif demuxer == _MOV:
        # Already FFmpeg's defaults; spelled out because these are what would let an MP4 point
        # at other files (data references, absolute paths in them).
        options.update(enable_drefs="0", use_absolute_path="0")
    try:
        return av.open(
            f"file:{path}",
            mode="r",
            format=demuxer,
            options=options,
            metadata_errors="ignore",
        )
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # our own spooling went wrong: a bug, not the user's audio
    except av.FFmpegError as exc:
        raise InvalidAudioError("not an audio file") from exc


def _select_audio_stream(container: av.container.InputContainer) -> av.AudioStream:
    if not container.streams.audio:
        raise InvalidAudioError("not an audio file: it has no audio stream")
    stream = container.streams.best("audio") or container.streams.audio[0]
    assert isinstance(stream, av.AudioStream)
    return stream


def _check_first_samples(container: av.container.InputContainer, stream: av.AudioStream) -> None:
    try:
        for count, packet in enumerate(container.demux(stream), start=1):
            if any(frame.samples for frame in packet.decode()):
                return
            if count >= _PROBE_MAX_PACKETS:
                break
        else:
            raise InvalidAudioError("audio stream has no samples")
    except av.FFmpegError as exc:
        raise InvalidAudioError("truncated or corrupt audio") from exc
    raise InvalidAudioError("truncated or corrupt audio: the first packets decode to nothing")


def _header_duration_seconds(
    container: av.container.InputContainer, stream: av.AudioStream, path: Path
) -> float | None:
    if container.format.name == "mp3" and not _has_mp3_length_header(path):
        # Without a Xing/Info/VBRI header FFmpeg guesses the length from the first bitrate,
        # which is wrong for VBR files.
        return None
    seconds = _stream_seconds(stream)
    if seconds is not None:
        if container.format.name == "ogg" and stream.codec_context.name == "opus":
            # Ogg Opus granule positions count the pre-skip the decoder drops (RFC 7845 §4.2).
            seconds -= stream.codec_context.delay / 48000
        return seconds
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _has_mp3_length_header(path: Path) -> bool:
    with path.open("rb") as file:
        head = file.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:
            # ID3v2 size is a 28-bit "syncsafe" integer after the 10-byte header.
            offset = 10 + (head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9])
        file.seek(offset)
        first_frame = file.read(4096)
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))


def _demuxed_duration_seconds(path: Path, *, max_seconds: float | None) -> float:
    """End of the last packet minus the start of the first, from timestamps alone (no decoding).

    Stops as soon as the length passes `max_seconds` (the caller refuses it then).
    """
    start: float | None = None
    end = 0.0
    with _open_input(path) as container:
        stream = _select_audio_stream(container)
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                pts = float(packet.pts * packet.time_base)
                # Negative timestamps mark pre-skip (Opus) that the decoder drops.
                start = max(0.0, pts) if start is None else start
                end = max(end, pts + float((packet.duration or 0) * packet.time_base))
                if max_seconds is not None and end - start > max_seconds:
                    break
        except av.FFmpegError as exc:
            raise InvalidAudioError("truncated or corrupt audio") from exc
    return end - (start or 0.0)


def _sample_limit(container: av.container.InputContainer, stream: av.AudioStream) -> int | None:
    """Native-rate samples the stream really holds, when the container says so authoritatively.

    Only MP4 edit lists and Ogg granule positions are trusted: other containers may estimate
    the duration from the bitrate, and trimming to an estimate would cut real audio.
    """
    trusted = container.format.name.startswith("mov,") or container.format.name == "ogg"
    seconds = _stream_seconds(stream)
    if not trusted or seconds is None:
        return None
    return math.ceil(seconds * stream.codec_context.sample_rate - 1e-6)


def _stream_seconds(stream: av.AudioStream) -> float | None:
    if not stream.duration or stream.duration <= 0 or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _iter_resampled(
    container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[FloatArray]:
    """Yield float32 mono blocks at 16 kHz, in order, flushing the resampler at the end."""
    resampler: soxr.ResampleStream | None = None
    rate = 0
    for block, block_rate in _iter_native_mono(container, stream):
        if block_rate != rate:
            # One resampler per stream (not per frame: that is slow for small-frame codecs);
            # a new one only if the rate changes mid-stream, after flushing the old one.
            if resampler is not None:
                yield resampler.resample_chunk(np.empty(0, np.float32), last=True)
            rate = block_rate
            resampler = (
                None
                if rate == TARGET_SAMPLE_RATE
                else soxr.ResampleStream(rate, TARGET_SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            )
        yield block if resampler is None else resampler.resample_chunk(block)
    if resampler is not None:
        yield resampler.resample_chunk(np.empty(0, np.float32), last=True)


def _iter_native_mono(
    container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[tuple[FloatArray, int]]:
    """Yield (mono float32 block, sample rate) at the native rate, trimmed to `_sample_limit`.

    Frames are gathered as raw bytes, one buffer per plane, and mixed once per batch: Vorbis and
    Opus frames hold 2.5-20 ms, and numpy calls per frame would cost more than the decoding.
    """
    remaining = _sample_limit(container, stream)
    layout: tuple[str, int, int] = ("", 0, 0)  # (sample format, channels, rate) of the batch
    buffers: list[bytearray] = []
    batch_samples = 0
    bytes_per_sample = 0
    for frame in _iter_frames(container, stream):
        frame_layout = (frame.format.name, frame.layout.nb_channels, frame.sample_rate)
        if frame_layout != layout:
            if batch_samples:
                yield _mix_to_mono(buffers, layout), layout[2]
            layout, buffers, batch_samples = frame_layout, [bytearray() for _ in frame.planes], 0
            bytes_per_sample = frame.format.bytes * (1 if frame.format.is_planar else layout[1])
        samples = frame.samples if remaining is None else min(frame.samples, remaining)
        for buffer, plane in zip(buffers, frame.planes, strict=True):
            buffer += memoryview(plane)[: samples * bytes_per_sample]
        batch_samples += samples
        if remaining is not None:
            remaining -= samples
        if batch_samples >= _BATCH_SAMPLES:
            yield _mix_to_mono(buffers, layout), layout[2]
            buffers, batch_samples = [bytearray() for _ in buffers], 0
        if remaining == 0:
            break
    if batch_samples:
        yield _mix_to_mono(buffers, layout), layout[2]


def _iter_frames(
    container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[av.AudioFrame]:
    bad_in_a_row = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            raise InvalidAudioError("truncated or corrupt audio") from exc
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            bad_in_a_row += 1
            logger.debug("skipping an undecodable packet at pts=%s: %s", packet.pts, exc)
            if bad_in_a_row >= _MAX_CONSECUTIVE_BAD_PACKETS:
                raise InvalidAudioError("truncated or corrupt audio") from exc
            continue
        bad_in_a_row = 0
        yield from frames


def _mix_to_mono(buffers: list[bytearray], layout: tuple[str, int, int]) -> FloatArray:
    """Mean of the channels as float32 in [-1, 1] (not clipped yet), from raw plane buffers."""
    sample_format, channels, _rate = layout
    sample_format = sample_format.removesuffix("p")
    dtype = _SAMPLE_DTYPES[sample_format]
    if len(buffers) == 1:  # packed (interleaved), or a single planar channel
        packed = np.frombuffer(buffers[0], dtype)
        planes = [packed[index::channels] for index in range(channels)]
    else:
        planes = [np.frombuffer(buffer, dtype) for buffer in buffers]
    mono = planes[0].astype(np.float32)
    for plane in planes[1:]:
        mono += plane
    if sample_format == "u8":  # 8-bit PCM is unsigned, centred on 128
        mono -= np.float32(128 * channels)
    scale = _SAMPLE_SCALES.get(sample_format, 1.0) / channels
    if scale != 1.0:
        mono *= np.float32(scale)
    if sample_format in ("flt", "dbl") and not np.isfinite(mono).all():
        # Float PCM can hold anything, NaN and infinities included (a corrupt float WAV does):
        # saturate them instead of letting NaN reach the int16 cast.
        np.nan_to_num(mono, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    return mono


def _to_s16le(block: FloatArray) -> bytes:
    clipped = np.clip(block, -1.0, 1.0)
    np.multiply(clipped, 32767, out=clipped)
    return np.rint(clipped).astype("<i2").tobytes()
