"""Decoder: hostile files are refused before FFmpeg opens anything but the upload itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aymurai.errors import AudioTooLongError, InvalidAudioError
from aymurai.transcription.decode import iter_pcm_chunks, probe_audio, sniff_demuxer
from test.audio_fixtures import make_audio_file, make_flac_silence
from test.hostile import hostile_corpus, plant_audio, run_canary

TEN_HOURS = 36000.0
SIX_HOURS = 21600.0


async def test_probe_audio_refuses_every_hostile_file(tmp_path: Path) -> None:
    """Playlists, scripts, images, archives, broken headers → InvalidAudioError or
    AudioTooLongError, and the canary HTTP server sees no connection."""
    planted = plant_audio(tmp_path)
    async with run_canary() as canary:
        corpus = hostile_corpus(planted, canary.url)
        for name, content in corpus.items():
            upload = tmp_path / f"upload-{name}"
            upload.write_bytes(content)
            with pytest.raises((InvalidAudioError, AudioTooLongError)):
                await asyncio.to_thread(probe_audio, upload, max_seconds=SIX_HOURS)
            with pytest.raises((InvalidAudioError, AudioTooLongError)):
                await asyncio.to_thread(
                    lambda path=upload: list(iter_pcm_chunks(path, max_seconds=SIX_HOURS))
                )
        await canary.settle()
        assert canary.connections == []


@pytest.mark.parametrize(
    ("fmt", "demuxer"),
    [
        ("wav_s16", "wav"),
        ("flac", "flac"),
        ("ogg_vorbis", "ogg"),
        ("mp3", "mp3"),
        ("m4a", "mov,mp4,m4a,3gp,3g2,mj2"),
        ("webm_opus", "matroska,webm"),
    ],
)
def test_sniff_demuxer_recognises_accepted_containers(
    tmp_path: Path, fmt: str, demuxer: str
) -> None:
    """Each accepted container is recognised from its first bytes."""
    assert sniff_demuxer(make_audio_file(tmp_path, fmt=fmt, seconds=0.5)) == demuxer


def test_probe_audio_refuses_ten_hour_flac_bomb(tmp_path: Path) -> None:
    """A ~130 kB FLAC of 10 h of silence is refused from its header, at once."""
    bomb = make_flac_silence(tmp_path, seconds=TEN_HOURS)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(AudioTooLongError) as excinfo:
        probe_audio(bomb, max_seconds=SIX_HOURS)
    assert excinfo.value.code == "AUDIO_TOO_LONG"


def test_probe_audio_bounds_demuxing_when_the_length_is_unknown(tmp_path: Path) -> None:
    """A FLAC that declares no length is measured by demuxing, which stops past the limit."""
    unknown = make_flac_silence(tmp_path, seconds=120.0, declared_seconds=0)
    with pytest.raises(AudioTooLongError):
        probe_audio(unknown, max_seconds=60.0)


def test_iter_pcm_chunks_stops_a_lying_header_at_the_limit(tmp_path: Path) -> None:
    """A FLAC claiming 10 s but holding 120 s passes the probe and is cut while decoding."""
    liar = make_flac_silence(tmp_path, seconds=120.0, declared_seconds=10.0)
    assert probe_audio(liar, max_seconds=60.0).duration_seconds == pytest.approx(10.0)
    decoded = 0
    with pytest.raises(AudioTooLongError):
        for chunk in iter_pcm_chunks(liar, max_seconds=60.0):
            decoded += len(chunk)
    assert decoded <= 61 * 16000 * 2


def test_iter_pcm_chunks_decodes_audio_just_under_the_limit(tmp_path: Path) -> None:
    """The limit never cuts a file that is within it."""
    audio = make_audio_file(tmp_path, fmt="flac", seconds=3.0)
    pcm = b"".join(iter_pcm_chunks(audio, max_seconds=3.0))
    assert len(pcm) == pytest.approx(3.0 * 16000 * 2, abs=320)
