"""Pacing against a slow WLK: the audio sent stays within the lead budget, silence never stalls."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import document_words, make_settings, run_gateway, seconds, stream_transcription

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("profile", ["0.2.17", "0.2.26"])
async def test_pacing_keeps_lead_within_budget(tmp_path: Path, profile: str) -> None:
    """WLK at 4x real time, budget 3 s: WLK never holds more than budget + one chunk unprocessed."""
    async with WLKSimulator(profile=profile, speed=4.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_ws_lead_budget_seconds=3.0,
            transcribe_ws_lead_initial_grace_seconds=60.0,
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=16.0, tone_hz=440)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
        record = simulator.sessions[0]
    assert result.last.event == "done"
    assert document_words(result.last.json())[:30] == ["f440"] * 30
    # Whole-second line ends on 0.2.17 make its progress coarser, never larger.
    assert record.max_lead_seconds <= 3.0 + 1.0 + 0.5, record.max_lead_seconds
    assert record.max_lead_seconds >= 2.0, "pacing so tight the budget is never used"


async def test_pacing_long_silence_on_0217_does_not_deadlock(tmp_path: Path) -> None:
    """0.2.17 reports no progress during silence; after the grace we keep sending in real time."""
    async with WLKSimulator(profile="0.2.17", speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_ws_lead_budget_seconds=1.0,
            transcribe_ws_lead_initial_grace_seconds=0.5,
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", tone_hz=[(0, 4.0), (440, 1.0)])
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio, timeout_seconds=20)
    assert result.last.event == "done"
    assert "f440" in document_words(result.last.json())


@pytest.mark.parametrize("profile", ["0.2.17", "0.2.26"])
async def test_pacing_long_pause_deep_into_a_file(tmp_path: Path, profile: str) -> None:
    """A 30 s pause after audio sent far faster than real time: WLK's processed clock stops at the
    pause start (and 0.2.26 goes quiet); the gateway keeps sending, with no false timeout."""
    async with WLKSimulator(profile=profile, speed=50.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_ws_lead_budget_seconds=2.0,
            transcribe_ws_lead_initial_grace_seconds=1.0,
            transcribe_ws_idle_timeout_seconds=3.0,
        )
        audio = make_audio_file(
            tmp_path, fmt="wav_s16", tone_hz=[(440, 30.0), (0, 30.0), (880, 2.0)]
        )
        loop = asyncio.get_running_loop()
        async with run_gateway(settings) as gateway, gateway.client() as client:
            started = loop.time()
            result = await stream_transcription(client, audio, timeout_seconds=30)
            elapsed = loop.time() - started
    assert result.last.event == "done", result.last.data
    words = document_words(result.last.json())
    assert words[-4:] == ["f880"] * 4
    # The pause is no ASR work: it must not be fed at real-time pace (30 s).
    assert elapsed < seconds(15), elapsed


async def test_pacing_finished_pause_does_not_stall_the_in_flight_rule(tmp_path: Path) -> None:
    """0.2.26, budget 2 s below a 2.5 s pause + a chunk: the received estimate counts the finished
    pause as committed, so the sender never waits for audio WLK already has (no idle timeout)."""
    async with WLKSimulator(profile="0.2.26", speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_ws_chunk_seconds=1.0,
            transcribe_ws_lead_budget_seconds=2.0,
            transcribe_ws_idle_timeout_seconds=seconds(4.0),
        )
        audio = make_audio_file(
            tmp_path,
            fmt="wav_s16",
            tone_hz=[(440, 3.0), (0, 2.5), (880, 3.0), (0, 2.5), (660, 3.0)],
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio, timeout_seconds=30)
    assert result.last.event == "done", result.last.data
    assert result.of("upstream") == [], "stalled into the idle timeout and resumed"
    assert len(simulator.sessions) == 1
    assert document_words(result.last.json())[-1] == "f660"
