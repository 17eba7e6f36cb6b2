"""Fixtures for the contract tier (pytest -m contract): real WLK server code, stub ASR, real speech.

Missing `.venv-wlk`, `.venv-wlk-0217` or espeak-ng: the tests skip locally and fail in CI (`CI`
set); see `make install-contract` and docs/contract-tests.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from test.e2e import RunningGateway, make_settings, run_gateway

from .wlk_harness import (
    WLK_VENVS,
    RealWlk,
    start_real_wlk,
    stop_real_wlk,
    synthesize_speech,
    wav_to_pcm16k,
)


@pytest.fixture(params=list(WLK_VENVS))
def wlk_version(request: pytest.FixtureRequest) -> str:
    """Every WLK version under test; tests using the real server run once per version."""
    return str(request.param)


@pytest.fixture
def real_wlk_server(tmp_path: Path, wlk_version: str) -> Iterator[RealWlk]:
    """The real WLK server of `wlk_version` (stub ASR, `--pcm-input`) on a free port."""
    server, pump = start_real_wlk(tmp_path, version=wlk_version)
    try:
        yield server
    finally:
        stop_real_wlk(server, pump)


@pytest.fixture
async def real_wlk_gateway(
    tmp_path: Path, real_wlk_server: RealWlk
) -> AsyncIterator[RunningGateway]:
    """The gateway on a free port with a fresh SQLite file, pointed at the real WLK server."""
    settings = make_settings(tmp_path, transcribe_ws_uri=real_wlk_server.url)
    async with run_gateway(settings) as running:
        yield running


@pytest.fixture
def real_wlk(real_wlk_server: RealWlk) -> str:
    """The ws URL (`ws://127.0.0.1:PORT/asr`) of a running real WLK server."""
    return real_wlk_server.url


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    """About 19 s of English speech with a 1.5 s and a 6 s pause, as a WAV file in tmp_path."""
    return synthesize_speech(tmp_path / "speech.wav")


@pytest.fixture
def speech_pcm(speech_wav: Path) -> bytes:
    """The speech fixture as s16le 16 kHz mono PCM bytes."""
    return wav_to_pcm16k(speech_wav)
