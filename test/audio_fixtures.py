"""Generate audio files for tests and benchmarks, with PyAV (FFmpeg's encoders and muxers).

`make_audio_file` writes a tone (or a sequence of tones) in any container/codec the gateway must
accept; `write_audio_file` encodes arbitrary float samples given block by block, so a benchmark can
write an hour of audio without holding it in memory. The `make_*` helpers at the end write the bad
inputs the decoder must reject.

Format keys (see `AUDIO_FORMATS`)::

    wav_u8 wav_s16 wav_s24 wav_s32    RIFF/WAVE, PCM unsigned 8-bit, signed 16/24/32-bit,
    wav_f32                           or 32-bit float
    flac                              native FLAC
    ogg_vorbis ogg_opus               Ogg with Vorbis (FFmpeg's native encoder) or Opus (libopus)
    mp3                               MPEG-1/2 layer III (LAME), with a Xing/LAME header
    mp3_no_header                     the same without that header (length unknown up front)
    m4a m4a_faststart                 MP4 audio-only with AAC; moov atom at the end / at the start
    mp4_video                         MP4 with a tiny MPEG-4 video track first, then AAC audio
    webm_opus                         WebM with Opus written like a browser's MediaRecorder: no
                                      duration and no cues (the muxer's ``live`` mode)

Codec limits the generated file inherits: Opus only runs at 8/12/16/24/48 kHz, so other rates are
resampled to 48 kHz by the encoder, and FFmpeg decodes Opus at 48 kHz whatever the input rate was
(`decoded_rate`); LAME takes at most 2 channels.

Nothing here is imported by the gateway; it is shared by the test suites and ``bench/``.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

__all__ = [
    "AUDIO_FORMATS",
    "AudioFormat",
    "decoded_rate",
    "encoder_rate",
    "make_audio_file",
    "make_corrupt_copy",
    "make_empty_audio_file",
    "make_random_bytes_file",
    "make_text_file",
    "make_truncated_copy",
    "make_truncated_wav_header",
    "make_video_only_file",
    "open_fd_count",
    "tone_blocks",
    "write_audio_file",
]

_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass(frozen=True)
class AudioFormat:
    """How one format key is written: container, codec and their options."""

    container: str
    codec: str
    suffix: str
    max_channels: int = 8
    codec_options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)
    video: bool = False
    writer: str = "pyav"


AUDIO_FORMATS: dict[str, AudioFormat] = {
    "wav_u8": AudioFormat("wav", "pcm_u8", ".wav"),
    "wav_s16": AudioFormat("wav", "pcm_s16le", ".wav"),
    "wav_s24": AudioFormat("wav", "pcm_s24le", ".wav"),
    "wav_s32": AudioFormat("wav", "pcm_s32le", ".wav"),
    "wav_f32": AudioFormat("wav", "pcm_f32le", ".wav"),
    "flac": AudioFormat("flac", "flac", ".flac"),
    # The PyAV wheel has no libvorbis and FFmpeg's own Vorbis encoder is experimental and
    # stereo-only, so Vorbis is written by libsndfile (libvorbis inside the soundfile wheel).
    "ogg_vorbis": AudioFormat("ogg", "vorbis", ".ogg", writer="soundfile"),
    "ogg_opus": AudioFormat("ogg", "libopus", ".opus"),
    "mp3": AudioFormat("mp3", "libmp3lame", ".mp3", max_channels=2),
    # CBR MP3 with no Xing/LAME header: the length is only known by reading the whole stream.
    "mp3_no_header": AudioFormat(
        "mp3", "libmp3lame", ".mp3", max_channels=2, container_options={"write_xing": "0"}
    ),
    "m4a": AudioFormat("ipod", "aac", ".m4a"),
    "m4a_faststart": AudioFormat(
        "ipod", "aac", ".m4a", container_options={"movflags": "faststart"}
    ),
    "mp4_video": AudioFormat("mp4", "aac", ".mp4", video=True),
    "webm_opus": AudioFormat("webm", "libopus", ".webm", container_options={"live": "1"}),
}


def encoder_rate(fmt: str, sample_rate: int) -> int:
    """The rate the encoder runs at when `sample_rate` is asked for `fmt`."""
    if AUDIO_FORMATS[fmt].codec == "libopus" and sample_rate not in _OPUS_RATES:
        return 48000
    return sample_rate


def decoded_rate(fmt: str, sample_rate: int) -> int:
    """The native rate FFmpeg reports when decoding the file (Opus always decodes at 48 kHz)."""
    return 48000 if AUDIO_FORMATS[fmt].codec == "libopus" else sample_rate


def tone_blocks(
    *,
    seconds: float,
    sample_rate: int,
    channels: int,
    tone_hz: float | Sequence[tuple[float, float]] = 440.0,
    amplitude: float = 0.5,
    channel_amplitudes: Sequence[float] | None = None,
    block_seconds: float = 1.0,
) -> Iterator[np.ndarray]:
    """Yield float32 blocks of shape (channels, n) holding sine tones.

    Args:
        seconds: total length; ignored when `tone_hz` is a list of segments.
        tone_hz: one frequency for the whole length, or ``[(hz, seconds), ...]`` segments played
            one after the other (``hz == 0`` is silence). The phase is continuous.
        amplitude: peak amplitude, 1.0 is full scale; values above 1 are kept (float formats keep
            them, integer formats clip when encoding).
        channel_amplitudes: per-channel peak amplitude, overriding `amplitude`.
    """
    segments = [(float(tone_hz), seconds)] if isinstance(tone_hz, int | float) else list(tone_hz)
    gains = np.asarray(
        channel_amplitudes if channel_amplitudes is not None else [amplitude] * channels,
        dtype=np.float64,
    ).reshape(channels, 1)
    block = max(1, round(block_seconds * sample_rate))
    phase = 0.0
    for hz, segment_seconds in segments:
        remaining = round(segment_seconds * sample_rate)
        while remaining > 0:
            n = min(block, remaining)
            steps = phase + 2 * math.pi * hz / sample_rate * np.arange(n, dtype=np.float64)
            phase = float((phase + 2 * math.pi * hz / sample_rate * n) % (2 * math.pi))
            yield (gains * np.sin(steps)).astype(np.float32)
            remaining -= n


def write_audio_file(
    path: Path,
    blocks: Iterable[np.ndarray],
    *,
    fmt: str,
    sample_rate: int,
    channels: int,
) -> Path:
    """Encode float32 blocks of shape (channels, n) into `path` in format `fmt`.

    The encoder resamples/re-frames as it needs (PyAV's encode path does that for audio). Returns
    `path`.
    """
    spec = AUDIO_FORMATS[fmt]
    if channels > spec.max_channels:
        raise ValueError(f"{fmt} supports at most {spec.max_channels} channels")
    if spec.writer == "soundfile":
        with sf.SoundFile(
            path, "w", samplerate=sample_rate, channels=channels, format="OGG", subtype="VORBIS"
        ) as out:
            for block in blocks:
                out.write(block.T)
        return path
    layout = _LAYOUTS[channels]
    rate = encoder_rate(fmt, sample_rate)
    with av.open(
        str(path), "w", format=spec.container, options=dict(spec.container_options)
    ) as container:
        video = None
        if spec.video:
            # Added first so the audio is not stream 0: the decoder must pick the audio stream.
            video = container.add_stream("mpeg4", rate=10)
            assert isinstance(video, av.VideoStream)
            video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        stream = container.add_stream(spec.codec, rate=rate, options=dict(spec.codec_options))
        assert isinstance(stream, av.AudioStream)
        stream.codec_context.layout = layout
        if spec.codec == "libopus" and channels > 2:
            stream.codec_context.options = {**spec.codec_options, "mapping_family": "1"}
        container.start_encoding()  # writes the header even when no sample follows
        samples_written = 0
        for block in blocks:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block.T.reshape(1, -1), dtype=np.float32),
                format="flt",
                layout=layout,
            )
            frame.sample_rate = sample_rate
            frame.pts = samples_written
            frame.time_base = Fraction(1, sample_rate)
            samples_written += block.shape[1]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if video is not None:
            _write_black_video(container, video, samples_written / sample_rate)
    return path


def _write_black_video(
    container: av.container.OutputContainer, video: av.VideoStream, seconds: float
) -> None:
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    for index in range(max(1, math.ceil(seconds * 10))):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index
        container.mux(video.encode(frame))
    container.mux(video.encode(None))


def make_audio_file(
    directory: Path,
    *,
    fmt: str,
    seconds: float = 1.0,
    sample_rate: int = 16000,
    channels: int = 1,
    tone_hz: float | Sequence[tuple[float, float]] = 440.0,
    amplitude: float = 0.5,
    channel_amplitudes: Sequence[float] | None = None,
    name: str | None = None,
) -> Path:
    """Write a tone in format `fmt` (a key of `AUDIO_FORMATS`) into `directory`; return its path.

    The file name is derived from the parameters unless `name` (without suffix) is given.
    """
    spec = AUDIO_FORMATS[fmt]
    stem = name or f"{fmt}-{sample_rate}hz-{channels}ch-{seconds:g}s"
    path = Path(directory) / f"{stem}{spec.suffix}"
    blocks = tone_blocks(
        seconds=seconds,
        sample_rate=sample_rate,
        channels=channels,
        tone_hz=tone_hz,
        amplitude=amplitude,
        channel_amplitudes=channel_amplitudes,
    )
    return write_audio_file(path, blocks, fmt=fmt, sample_rate=sample_rate, channels=channels)


def make_random_bytes_file(directory: Path, *, size: int = 64 * 1024, seed: int = 0) -> Path:
    """Random bytes named ``.mp3`` (the extension must not make them audio)."""
    path = Path(directory) / f"random-{seed}.mp3"
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def make_text_file(directory: Path) -> Path:
    """A plain-text file renamed ``.wav``."""
    path = Path(directory) / "notes.wav"
    path.write_text("This is not audio.\n" * 200, encoding="utf-8")
    return path


def make_truncated_wav_header(directory: Path) -> Path:
    """The first 20 bytes of a WAV header and nothing else (cut inside the ``fmt `` chunk)."""
    header = b"RIFF" + struct.pack("<I", 36) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
    path = Path(directory) / "truncated-header.wav"
    path.write_bytes(header)
    return path


def make_empty_audio_file(directory: Path, *, fmt: str = "wav_s16") -> Path:
    """A valid container for `fmt` with an audio stream and zero samples."""
    spec = AUDIO_FORMATS[fmt]
    path = Path(directory) / f"empty-{fmt}{spec.suffix}"
    return write_audio_file(path, [], fmt=fmt, sample_rate=16000, channels=1)


def make_video_only_file(directory: Path, *, seconds: float = 1.0) -> Path:
    """An MP4 with a tiny video track and no audio stream at all."""
    path = Path(directory) / "video-only.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=10)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        _write_black_video(container, video, seconds)
    return path


def make_corrupt_copy(source: Path, directory: Path, *, start_fraction: float = 0.3) -> Path:
    """A copy of `source` whose bytes from `start_fraction` of its size to the end are random.

    The header survives, so the file opens and starts decoding, then the data turns to garbage.
    """
    data = bytearray(source.read_bytes())
    start = int(len(data) * start_fraction)
    data[start:] = np.random.default_rng(1).bytes(len(data) - start)
    path = Path(directory) / f"corrupt-{source.name}"
    path.write_bytes(bytes(data))
    return path


def make_truncated_copy(source: Path, directory: Path, *, keep_fraction: float = 0.5) -> Path:
    """A copy of `source` cut after `keep_fraction` of its bytes (an interrupted upload)."""
    data = source.read_bytes()
    path = Path(directory) / f"truncated-{source.name}"
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def open_fd_count() -> int:
    """Number of file descriptors this process holds open (Linux ``/proc``)."""
    return len(os.listdir("/proc/self/fd"))


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16 = _crc16_table()


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


def _flac_utf8(number: int) -> bytes:
    if number < 0x80:
        return bytes([number])
    if number < 0x800:
        return bytes([0xC0 | number >> 6, 0x80 | number & 0x3F])
    return bytes([0xE0 | number >> 12, 0x80 | (number >> 6) & 0x3F, 0x80 | number & 0x3F])


def make_flac_silence(
    directory: Path,
    *,
    seconds: float,
    sample_rate: int = 8000,
    declared_seconds: float | None = None,
    name: str = "silence.flac",
) -> Path:
    """A valid FLAC of `seconds` of digital silence, written frame by frame (a duration bomb).

    Each 32768-sample frame is one CONSTANT subframe, ~11 bytes: 10 h at 8 kHz is ~97 kB and is
    written in well under a second (encoding it with libFLAC through PyAV takes ~14 s).
    `declared_seconds` sets the length STREAMINFO claims (a header that lies); 0 means unknown.
    """
    block = 32768
    frames = max(1, round(seconds * sample_rate / block))
    declared = frames * block if declared_seconds is None else round(declared_seconds * sample_rate)
    streaminfo = (
        struct.pack(">HH", block, block)
        + b"\x00\x00\x00\x00\x00\x00"  # min/max frame size unknown
        + ((sample_rate << 44) | (0 << 41) | (15 << 36) | declared).to_bytes(8, "big")
        + b"\x00" * 16  # no MD5
    )
    out = bytearray(b"fLaC" + bytes([0x80, 0, 0, len(streaminfo)]) + streaminfo)
    for number in range(frames):
        header = b"\xff\xf8\x70\x08" + _flac_utf8(number) + struct.pack(">H", block - 1)
        header += bytes([_crc8(header)])
        frame = header + b"\x00\x00\x00"  # CONSTANT subframe, sample value 0 (16 bits)
        out += frame + struct.pack(">H", _crc16(frame))
    path = Path(directory) / name
    path.write_bytes(bytes(out))
    return path
