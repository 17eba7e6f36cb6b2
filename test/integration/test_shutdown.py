"""Graceful shutdown: draining in process, and SIGTERM to a real server process.

The SIGTERM tests run the gateway as a subprocess on a free port under each server operators use
(`aymurai-api`, `uvicorn aymurai.api.main:app`, gunicorn with uvicorn workers), configured only
through the environment, against a slow simulator in the test's own event loop. The process's
stderr goes to a file, read once it has exited.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aymurai.simulator import WLKSimulator
from aymurai.transcription.service import TranscriptionService
from test.audio_fixtures import make_audio_file
from test.e2e import (
    SSEFrame,
    document_words,
    iter_sse,
    make_settings,
    run_gateway,
    seconds,
    stream_transcription,
    upload_files,
)
from test.processes import SERVERS, GatewayProcess, run_gateway_process

pytestmark = pytest.mark.integration


@dataclass
class SignalledStream:
    events: list[SSEFrame]
    signalled_at: float
    ended_at: float


async def _stream_and_signal(
    gateway: GatewayProcess, audio: Path, *, request_id: str
) -> SignalledStream:
    """Stream `audio`; send SIGTERM at the first event; read the stream to its end."""
    events: list[SSEFrame] = []
    signalled_at = 0.0
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, timeout=seconds(30)) as client,
        asyncio.timeout(seconds(30)),
        client.stream(
            "POST",
            "/asr/transcribe/stream",
            files=upload_files(audio),
            headers={"X-Request-ID": request_id},
        ) as response,
    ):
        assert response.status_code == 200
        async for frame in iter_sse(response):
            if frame.event is None:
                continue
            events.append(frame)
            if len(events) == 1:
                gateway.process.send_signal(signal.SIGTERM)
                signalled_at = time.monotonic()
    return SignalledStream(events, signalled_at, time.monotonic())


@pytest.mark.parametrize("server", SERVERS)
async def test_shutdown_sigterm_ends_a_long_stream_after_the_grace(
    tmp_path: Path, server: str
) -> None:
    """SIGTERM mid-stream, under every server: the stream runs on for the grace, then ends with
    SHUTTING_DOWN; the WLK socket is closed and the process exits just after the grace."""
    grace = 1.0
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=20.0, tone_hz=440)
    async with (
        WLKSimulator(speed=2.0) as simulator,  # 10 s of processing: far past the grace
        run_gateway_process(
            tmp_path, ws_uri=simulator.url, grace_seconds=grace, server=server
        ) as gateway,
    ):
        stream = await _stream_and_signal(gateway, audio, request_id="sigterm-long")
        returncode = await gateway.wait_exit(seconds(grace + 5))
        exited_after = time.monotonic() - stream.signalled_at
        session = await simulator.wait_for_session_closed(0, timeout=seconds(5))

    assert stream.events[-1].event == "error", stream.events[-1]
    error = stream.events[-1].json()
    assert (error["code"], error["request_id"]) == ("SHUTTING_DOWN", "sigterm-long")
    assert grace * 0.9 <= stream.ended_at - stream.signalled_at <= grace + seconds(1.5)
    assert exited_after <= grace + seconds(2.5)
    # uvicorn re-raises the captured SIGTERM once it has shut down gracefully; gunicorn's
    # arbiter exits 0 once its worker has.
    assert returncode in (0, -signal.SIGTERM)
    assert session.close_code == 1000  # closed by the gateway, not dropped
    assert session.ready_to_stop_sent_at is None  # cut short: WLK never finished it
    lines = gateway.log_lines()
    assert any("[sigterm-long] accepted upload" in line for line in lines)
    assert any("shutdown grace is over" in line for line in lines)
    assert list((tmp_path / "spool").iterdir()) == []


async def test_shutdown_sigterm_lets_a_short_stream_finish(tmp_path: Path) -> None:
    """SIGTERM mid-stream with a generous grace: the stream ends with done and the process exits
    as soon as it has, not at the end of the grace; JSON logs carry the request id."""
    grace = 8.0
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=550)
    async with (
        WLKSimulator(speed=2.0) as simulator,
        run_gateway_process(
            tmp_path, ws_uri=simulator.url, grace_seconds=grace, log_format="json"
        ) as gateway,
    ):
        stream = await _stream_and_signal(gateway, audio, request_id="sigterm-short")
        returncode = await gateway.wait_exit(seconds(grace + 5))
        exited_after = time.monotonic() - stream.signalled_at

    assert stream.events[-1].event == "done", stream.events[-1]
    assert document_words(stream.events[-1].json()) == ["f550"] * 4
    assert exited_after < grace
    assert returncode in (0, -signal.SIGTERM)
    assert simulator.sessions[0].close_code == 1000
    entries = [json.loads(line) for line in gateway.log_lines() if line.strip()]
    assert all({"time", "level", "logger", "request_id", "message"} <= set(e) for e in entries)
    ours = [e["message"] for e in entries if e["request_id"] == "sigterm-short"]
    for message in ("accepted upload", "upstream connected", "transcription done"):
        assert any(message in m for m in ours), (message, ours)


async def test_shutdown_refuses_new_and_queued_transcriptions(tmp_path: Path) -> None:
    """Draining: a new upload gets 503 SHUTTING_DOWN, a queued one ends at once with
    SHUTTING_DOWN without reaching WLK, readiness is 503, and the running one finishes."""
    async with WLKSimulator(speed=2.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_max_concurrent_sessions=1,
            transcribe_shutdown_grace_seconds=10.0,
        )
        first = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=440, name="a")
        second = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=660, name="b")
        third = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=880, name="c")
        async with run_gateway(settings) as gateway, gateway.client() as client:
            service: TranscriptionService = gateway.app.state.service
            running = asyncio.create_task(stream_transcription(client, first))
            await simulator.wait_for_sessions(1, timeout=seconds(5))
            queued = await _first_events_then_shutdown(client, second, service)

            refused = await stream_transcription(client, third)
            ready = await client.get("/readyz")
            async with asyncio.timeout(seconds(10)):
                finished = await running

    assert [frame.event for frame in queued] == ["queued", "error"]
    assert queued[-1].json()["code"] == "SHUTTING_DOWN"
    assert refused.status == 503
    assert refused.body["code"] == "SHUTTING_DOWN"
    assert ready.status_code == 503
    assert ready.json()["checks"]["admission"].startswith("SHUTTING_DOWN")
    assert finished.last.event == "done"
    assert len(simulator.sessions) == 1


async def _first_events_then_shutdown(
    client: httpx.AsyncClient, audio: Path, service: TranscriptionService
) -> list[SSEFrame]:
    """Stream `audio` until it is queued, begin the shutdown, and read the stream to its end."""
    events: list[SSEFrame] = []
    async with (
        asyncio.timeout(seconds(10)),
        client.stream(
            "POST",
            "/asr/transcribe/stream",
            params={"use_cache": "false"},
            files=upload_files(audio),
        ) as response,
    ):
        async for frame in iter_sse(response):
            if frame.event is None:
                continue
            events.append(frame)
            if frame.event == "queued":
                service.begin_shutdown(service.settings.transcribe_shutdown_grace_seconds)
    return events
