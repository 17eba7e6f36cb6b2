"""Decoder: every accepted format decodes to 16 kHz mono s16le of the right length and content."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aymurai.errors import InvalidAudioError
from aymurai.transcription.decode import AudioInfo, iter_pcm_chunks, probe_audio
from test.audio_fixtures import (
    AUDIO_FORMATS,
    decoded_rate,
    make_audio_file,
    make_corrupt_copy,
    make_empty_audio_file,
    make_random_bytes_file,
    make_text_file,
    make_truncated_wav_header,
    make_video_only_file,
    open_fd_count,
)

RATE = 16000
TONE_HZ = 1000.0
SILENCE_SECONDS = 0.5
SECONDS = 3.0
# Length tolerance (decoded vs generated, and probe vs decoded): 10 ms everywhere except Ogg
# Vorbis, where FFmpeg's end-of-stream trimming can drop one libvorbis short block (256 samples,
# 16 ms at 16 kHz) that libsndfile does return; the start of the stream is exact.
TOLERANCE_SECONDS = {"ogg_vorbis": 0.020}
DEFAULT_TOLERANCE_SECONDS = 0.010
# Without a Xing/LAME header nothing tells the decoder about LAME's delay and padding: the decoded
# stream is longer than what was encoded by up to 1105 + 1152 samples (~50 ms at 44.1 kHz).
NO_HEADER_EXTRA_SECONDS = 0.080

EXPECTED_CONTAINER = {
    "wav": "wav",
    "flac": "flac",
    "ogg": "ogg",
    "mp3": "mp3",
    "ipod": "mov,mp4,m4a,3gp,3g2,mj2",
    "mp4": "mov,mp4,m4a,3gp,3g2,mj2",
    "webm": "matroska,webm",
}
EXPECTED_CODEC = {
    "pcm_u8": "pcm_u8",
    "pcm_s16le": "pcm_s16le",
    "pcm_s24le": "pcm_s24le",
    "pcm_s32le": "pcm_s32le",
    "pcm_f32le": "pcm_f32le",
    "flac": "flac",
    "vorbis": "vorbis",
    "libopus": "opus",
    "libmp3lame": "mp3float",
    "aac": "aac",
}
LAYOUTS = [(16000, 1), (44100, 2), (48000, 6), (8000, 1), (22050, 2)]
CASES = [
    pytest.param(fmt, rate, channels, id=f"{fmt}-{rate}-{channels}ch")
    for fmt in AUDIO_FORMATS
    if fmt != "mp3_no_header"
    for rate, channels in LAYOUTS
    if channels <= AUDIO_FORMATS[fmt].max_channels
]


def decode(path: Path, **kwargs: float) -> np.ndarray:
    pcm = b"".join(iter_pcm_chunks(path, **kwargs))
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32767


def dominant_hz(samples: np.ndarray) -> float:
    window = samples * np.hanning(samples.size)
    return float(np.argmax(np.abs(np.fft.rfft(window))) * RATE / samples.size)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def wav_3s(audio_dir: Path) -> Path:
    return make_audio_file(audio_dir, fmt="wav_s16", seconds=SECONDS, sample_rate=44100, channels=2)


@pytest.mark.parametrize(("fmt", "rate", "channels"), CASES)
def test_iter_pcm_chunks_decodes_format_to_length_and_tone(
    audio_dir: Path, fmt: str, rate: int, channels: int
) -> None:
    """Half a second of silence then a 1 kHz tone comes out at 16 kHz with the same timing."""
    path = make_audio_file(
        audio_dir,
        fmt=fmt,
        sample_rate=rate,
        channels=channels,
        tone_hz=[(0.0, SILENCE_SECONDS), (TONE_HZ, SECONDS - SILENCE_SECONDS)],
    )
    tolerance = TOLERANCE_SECONDS.get(fmt, DEFAULT_TOLERANCE_SECONDS)

    samples = decode(path)

    assert samples.size / RATE == pytest.approx(SECONDS, abs=tolerance)
    onset = int(np.argmax(np.abs(samples) > 0.05)) / RATE
    assert onset == pytest.approx(SILENCE_SECONDS, abs=DEFAULT_TOLERANCE_SECONDS)
    assert np.abs(samples[: int(0.45 * RATE)]).max() < 0.01
    assert dominant_hz(samples[RATE : 2 * RATE]) == pytest.approx(TONE_HZ, abs=2)


@pytest.mark.parametrize(("fmt", "rate", "channels"), CASES)
def test_probe_audio_describes_format(audio_dir: Path, fmt: str, rate: int, channels: int) -> None:
    """The probe reports container, codec, layout, rate and a duration matching the decode."""
    path = make_audio_file(
        audio_dir, fmt=fmt, seconds=SECONDS, sample_rate=rate, channels=channels, name=f"p-{fmt}"
    )
    spec = AUDIO_FORMATS[fmt]

    info = probe_audio(path)

    assert info == AudioInfo(
        format_name=EXPECTED_CONTAINER[spec.container],
        codec=EXPECTED_CODEC[spec.codec],
        duration_seconds=info.duration_seconds,
        channels=channels,
        sample_rate=decoded_rate(fmt, rate),
    )
    decoded_seconds = decode(path).size / RATE
    tolerance = TOLERANCE_SECONDS.get(fmt, DEFAULT_TOLERANCE_SECONDS)
    assert info.duration_seconds == pytest.approx(decoded_seconds, abs=tolerance)


def test_probe_audio_demuxes_mp3_without_length_header(audio_dir: Path) -> None:
    """An MP3 with no Xing/LAME header gets its length from the packets, not a bitrate guess."""
    path = make_audio_file(audio_dir, fmt="mp3_no_header", seconds=SECONDS, sample_rate=44100)

    info = probe_audio(path)

    decoded_seconds = decode(path).size / RATE
    assert info.duration_seconds == pytest.approx(decoded_seconds, abs=DEFAULT_TOLERANCE_SECONDS)
    assert SECONDS <= decoded_seconds <= SECONDS + NO_HEADER_EXTRA_SECONDS


def test_iter_pcm_chunks_clips_instead_of_wrapping(audio_dir: Path) -> None:
    """A float WAV at amplitude 1.5 saturates at full scale and never flips sign."""
    path = make_audio_file(audio_dir, fmt="wav_f32", sample_rate=RATE, amplitude=1.5, tone_hz=50)
    source = 1.5 * np.sin(2 * np.pi * 50 / RATE * np.arange(RATE))

    samples = decode(path)

    assert samples.max() == 1.0
    assert samples.min() == -1.0
    np.testing.assert_allclose(samples, np.clip(source, -1, 1), atol=1e-4)


def test_iter_pcm_chunks_mixes_channels_to_their_mean(audio_dir: Path) -> None:
    """Mono is the mean of the channels: a tone on one of two channels comes out at half level."""
    path = make_audio_file(
        audio_dir, fmt="wav_s16", sample_rate=RATE, channels=2, channel_amplitudes=[0.8, 0.0]
    )

    samples = decode(path)

    assert np.abs(samples).max() == pytest.approx(0.4, abs=1e-3)


def test_iter_pcm_chunks_mixes_six_channels_to_their_mean(audio_dir: Path) -> None:
    """Six channels at different levels average with equal weights (no LFE or surround rules)."""
    gains = [0.6, 0.0, 0.3, 0.0, 0.3, 0.0]
    path = make_audio_file(
        audio_dir, fmt="flac", sample_rate=RATE, channels=6, channel_amplitudes=gains
    )

    samples = decode(path)

    assert np.abs(samples).max() == pytest.approx(sum(gains) / 6, abs=1e-3)


@pytest.mark.parametrize("chunk_seconds", [1.0, 0.25, 0.1234])
def test_iter_pcm_chunks_yields_fixed_size_chunks(wav_3s: Path, chunk_seconds: float) -> None:
    """Every chunk is round(chunk_seconds * 16000) * 2 bytes except a shorter, non-empty last."""
    size = round(chunk_seconds * RATE) * 2

    chunks = list(iter_pcm_chunks(wav_3s, chunk_seconds=chunk_seconds))

    assert all(len(chunk) == size for chunk in chunks[:-1])
    assert 0 < len(chunks[-1]) <= size
    assert sum(map(len, chunks)) == SECONDS * RATE * 2


def test_iter_pcm_chunks_rejects_chunk_shorter_than_a_sample(wav_3s: Path) -> None:
    """A chunk length that rounds to zero samples is a programming error."""
    with pytest.raises(ValueError, match="shorter than one sample"):
        next(iter_pcm_chunks(wav_3s, chunk_seconds=0.00001))


def test_iter_pcm_chunks_close_releases_the_file(wav_3s: Path) -> None:
    """Closing the generator mid-stream closes the container's file descriptor at once."""
    before = open_fd_count()
    chunks = iter_pcm_chunks(wav_3s)
    next(chunks)
    assert open_fd_count() == before + 1

    chunks.close()

    assert open_fd_count() == before


def test_iter_pcm_chunks_opens_nothing_before_first_chunk(wav_3s: Path) -> None:
    """Creating (and closing) the generator without iterating opens no file."""
    before = open_fd_count()
    chunks = iter_pcm_chunks(wav_3s)
    assert open_fd_count() == before
    chunks.close()


def test_probe_audio_leaves_no_open_file(wav_3s: Path) -> None:
    """The probe closes what it opens."""
    before = open_fd_count()
    probe_audio(wav_3s)
    assert open_fd_count() == before


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "random-bytes": (make_random_bytes_file, "not an audio file"),
    "random-4KiB": (lambda d: make_random_bytes_file(d, size=4096, seed=2), "not an audio file"),
    "text-as-wav": (make_text_file, "not an audio file"),
    "truncated-wav-header": (make_truncated_wav_header, "not an audio file"),
    "video-only-mp4": (make_video_only_file, "no audio stream"),
    "empty-wav": (lambda d: make_empty_audio_file(d, fmt="wav_s16"), "no samples"),
    "empty-flac": (lambda d: make_empty_audio_file(d, fmt="flac"), "no samples"),
    "empty-vorbis": (lambda d: make_empty_audio_file(d, fmt="ogg_vorbis"), "no samples"),
    "empty-mp3": (lambda d: make_empty_audio_file(d, fmt="mp3"), "not an audio file"),
    "empty-m4a": (lambda d: make_empty_audio_file(d, fmt="m4a"), "no audio stream"),
    "empty-webm": (lambda d: make_empty_audio_file(d, fmt="webm_opus"), "not an audio file"),
    "empty-mp4-with-video": (
        lambda d: make_empty_audio_file(d, fmt="mp4_video"),
        "no audio stream",
    ),
}


@pytest.mark.parametrize(("make", "detail"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_probe_audio_rejects_bad_input(
    tmp_path: Path, make: Callable[[Path], Path], detail: str
) -> None:
    """Undecodable input, or a valid container without samples, is InvalidAudioError."""
    path = make(tmp_path)

    with pytest.raises(InvalidAudioError, match=detail) as excinfo:
        probe_audio(path)

    assert excinfo.value.code == "INVALID_AUDIO"


@pytest.mark.parametrize(("make", "detail"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_iter_pcm_chunks_rejects_bad_input(
    tmp_path: Path, make: Callable[[Path], Path], detail: str
) -> None:
    """The decoder, used without a probe, rejects the same inputs the same way."""
    path = make(tmp_path)
    before = open_fd_count()

    with pytest.raises(InvalidAudioError, match=detail):
        list(iter_pcm_chunks(path))

    assert open_fd_count() == before


@pytest.mark.parametrize("fmt", ["m4a_faststart", "mp3"])
def test_iter_pcm_chunks_fails_on_corruption_mid_stream(tmp_path: Path, fmt: str) -> None:
    """Garbage after the first second: the good chunks come out, then InvalidAudioError."""
    source = make_audio_file(tmp_path, fmt=fmt, seconds=4, sample_rate=44100, channels=2)
    path = make_corrupt_copy(source, tmp_path, start_fraction=0.3)
    probe_audio(path)  # the header and the first packets are intact
    chunks = iter_pcm_chunks(path)

    assert len(next(chunks)) == RATE * 2
    with pytest.raises(InvalidAudioError, match="truncated or corrupt audio"):
        list(chunks)


def test_iter_pcm_chunks_saturates_non_finite_float_samples(tmp_path: Path) -> None:
    """A float WAV whose data turned to garbage (NaN, inf) still yields bounded int16 PCM."""
    source = make_audio_file(tmp_path, fmt="wav_f32", seconds=2, sample_rate=RATE)
    path = make_corrupt_copy(source, tmp_path, start_fraction=0.5)

    samples = decode(path)

    assert samples.size == 2 * RATE
    assert np.abs(samples).max() <= 1.0


@pytest.mark.parametrize("fmt", ["wav_s16", "flac", "mp3", "ogg_opus", "m4a"])
@pytest.mark.parametrize("start_seconds", [0.0, 0.5, 1.2345, 2.99])
def test_iter_pcm_chunks_starts_at_a_seek_point_to_the_sample(
    audio_dir: Path, fmt: str, start_seconds: float
) -> None:
    """Output from `start_seconds` equals the full decode minus its first samples, exactly."""
    path = make_audio_file(
        audio_dir, fmt=fmt, seconds=SECONDS, sample_rate=44100, channels=2, name=f"seek-{fmt}"
    )
    full = b"".join(iter_pcm_chunks(path))
    resumed = list(iter_pcm_chunks(path, chunk_seconds=0.25, start_seconds=start_seconds))

    skip = round(start_seconds * RATE) * 2
    assert b"".join(resumed) == full[skip:]
    assert all(len(chunk) == 0.25 * RATE * 2 for chunk in resumed[:-1])


def test_iter_pcm_chunks_past_the_end_yields_nothing(wav_3s: Path) -> None:
    """A seek point past the end yields no chunk and no error."""
    assert list(iter_pcm_chunks(wav_3s, start_seconds=SECONDS + 1)) == []
