"""Fixtures for the real-ASR tier (pytest -m realasr): real Whisper models in a CPU WLK.

One WLK process per model for the whole session (loading a model and warming it up takes most of
a minute on two cores), started exactly as `make run-local` starts it (`aymurai.local_asr`), with
a recording tap (`tap.py`) between it and each test's gateway. The gateway runs with a session cap
of 1, as `make run-local` does. Missing `.venv-local`, `.models` or espeak-ng: the tests skip
locally and fail in CI (`CI` set), like the contract tier; see `make install-local`.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aymurai.local_asr import (
    LOCAL_LEAD_BUDGET_SECONDS,
    LocalAsrError,
    stop_process,
    wait_for_wlk,
    wlk_command,
    wlk_environment,
)
from test.e2e import RunningGateway, make_settings, require, run_gateway, seconds

from .speech import ENGLISH, SPANISH, Script, encode, espeak_binary, synthesize
from .tap import WlkTap

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-local"
MODELS_DIR = ROOT / ".models"
WLK_STARTUP_TIMEOUT_S = 300.0  # model load + warm-up on a shared 2-core machine
WLK_STOP_TIMEOUT_S = 10.0


@dataclass
class LocalWlk:
    """A CPU WLK serving one real model, behind a recording tap."""

    model: str
    language: str
    process: subprocess.Popen[bytes]
    port: int
    tap: WlkTap
    log_path: Path

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_local_wlk(model: str, language: str, tmp_dir: Path) -> Iterator[LocalWlk]:
    try:
        command = wlk_command(
            venv=VENV, models_dir=MODELS_DIR, model=model, language=language, port=_free_port()
        )
    except LocalAsrError as exc:
        require(False, f"real-ASR tier: {exc}")
        raise AssertionError("unreachable") from exc  # require() skips or fails
    port = int(command[command.index("--port") + 1])
    log_path = tmp_dir / f"wlk-{model}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=wlk_environment(), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_dir
        )
    tap: WlkTap | None = None
    try:
        try:
            wait_for_wlk(process, "127.0.0.1", port, timeout_seconds=seconds(WLK_STARTUP_TIMEOUT_S))
        except LocalAsrError as exc:
            pytest.fail(f"{exc}:\n{log_path.read_text(errors='replace')[-3000:]}")
        tap = WlkTap(f"ws://127.0.0.1:{port}").start()
        yield LocalWlk(model, language, process, port, tap, log_path)
    finally:
        if tap is not None:
            tap.stop()
        stop_process(process, 15, WLK_STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def wlk_tiny_en(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWlk]:
    """WLK with Whisper tiny.en (English), shared by the whole session."""
    yield from _start_local_wlk("tiny.en", "en", tmp_path_factory.mktemp("wlk-tiny-en"))


@pytest.fixture(scope="session")
def wlk_base_es(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWlk]:
    """WLK with the multilingual Whisper base, in Spanish, shared by the whole session."""
    yield from _start_local_wlk("base", "es", tmp_path_factory.mktemp("wlk-base-es"))


@dataclass(frozen=True)
class Speech:
    """One script spoken by espeak-ng, as a WAV and as a compressed file."""

    script: Script
    wav: Path
    compressed: Path


def _speech(script: Script, directory: Path, compressed_fmt: str, suffix: str) -> Speech:
    espeak = espeak_binary()
    require(espeak is not None, "espeak-ng is not installed; run `make install-local`")
    assert espeak is not None
    wav = synthesize(script, directory / f"{script.language}.wav", espeak=espeak)
    compressed = encode(wav, directory / f"{script.language}.{suffix}", fmt=compressed_fmt)
    return Speech(script, wav, compressed)


@pytest.fixture(scope="session")
def english_speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """ENGLISH spoken by espeak-ng (about 65 s), as WAV and MP3."""
    return _speech(ENGLISH, tmp_path_factory.mktemp("speech-en"), "mp3", "mp3")


@pytest.fixture(scope="session")
def spanish_speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """SPANISH spoken by espeak-ng (about 69 s), as WAV and Ogg Opus."""
    return _speech(SPANISH, tmp_path_factory.mktemp("speech-es"), "ogg_opus", "ogg")


def gateway_settings(wlk: LocalWlk) -> dict[str, object]:
    """The gateway as `make run-local` runs it (session cap 1, short lead), pointed at the tap."""
    return {
        "transcribe_ws_uri": wlk.tap.url,
        "transcribe_max_concurrent_sessions": 1,
        "transcribe_ws_lead_budget_seconds": LOCAL_LEAD_BUDGET_SECONDS,
        # A client that leaves cancels its job at once (the default waits 30 s for a reattach):
        # the disconnect test checks that WLK's CPU is freed then.
        "transcribe_detached_grace_seconds": 0.0,
        "transcribe_ws_idle_timeout_seconds": 60.0,
        "transcribe_ws_ready_timeout_seconds": 120.0,
        "transcribe_sse_min_event_interval_seconds": 0.1,
    }


@pytest.fixture
async def gateway_tiny_en(tmp_path: Path, wlk_tiny_en: LocalWlk) -> AsyncIterator[RunningGateway]:
    """The gateway on a free port with a fresh SQLite file, in front of tiny.en."""
    settings = make_settings(tmp_path, **gateway_settings(wlk_tiny_en))
    async with run_gateway(settings) as running:
        yield running


@pytest.fixture
async def gateway_base_es(tmp_path: Path, wlk_base_es: LocalWlk) -> AsyncIterator[RunningGateway]:
    """The gateway on a free port with a fresh SQLite file, in front of base (Spanish)."""
    settings = make_settings(tmp_path, **gateway_settings(wlk_base_es))
    async with run_gateway(settings) as running:
        yield running
