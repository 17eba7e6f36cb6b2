"""Every way WLK can fail maps to one `event: error` with a stable code, and nothing is stored.

Resuming is off here (TRANSCRIBE_WS_MAX_RESUMES=0): these faults hit every session, and what is
checked is the mapping of the failure that ends the job. Resumes: test_resume.py.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import make_settings, run_gateway, seconds, spooled_files, stream_transcription

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"fault": "handshake_refused"}, "UPSTREAM_UNAVAILABLE"),
        ({"fault": "close_1011", "fault_after": 1.0}, "UPSTREAM_SERVICE_ERROR"),
        ({"fault": "tcp_drop", "fault_after": 1.0}, "UPSTREAM_SERVICE_ERROR"),
        ({"fault": "error_status", "fault_after": 1.0}, "UPSTREAM_SERVICE_ERROR"),
        ({"fault": "error_message"}, "UPSTREAM_SERVICE_ERROR"),
        ({"fault": "no_worklet"}, "UPSTREAM_PROTOCOL_ERROR"),
        ({"fault": "never_ready"}, "UPSTREAM_TIMEOUT"),
        ({"fault": "stall", "fault_after": 1.0, "stall": 10}, "UPSTREAM_TIMEOUT"),
        (
            {"fault": "close_1011", "fault_after": 1.0, "profile": "0.2.17"},
            "UPSTREAM_SERVICE_ERROR",
        ),
    ],
)
async def test_upstream_fault_maps_to_error_event(
    tmp_path: Path, query: dict[str, object], code: str
) -> None:
    """Refused handshake, 1011, TCP drop, error status/message, FFmpeg mode, silence → codes."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url_for(**query),
            transcribe_ws_idle_timeout_seconds=1.0,
            transcribe_ws_ready_timeout_seconds=1.0,
            transcribe_ws_max_resumes=0,
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=4.0, tone_hz=440)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
            stored = await client.get(f"/asr/validation/document/{result.headers['x-document-id']}")
        # A stalled server reads nothing, so it only notices our close after its stall ends.
        if simulator.sessions and query["fault"] != "stall":
            record = await simulator.wait_for_session_closed(0, timeout=seconds(5))
            assert record.text_frames == []
    assert result.status == 200
    assert result.last.event == "error"
    error = result.last.json()
    assert error["code"] == code
    assert error["detail"] and "Traceback" not in error["detail"]
    assert error["request_id"] == result.headers["x-request-id"]
    assert [e.event for e in result.events].count("error") == 1
    assert "done" not in [e.event for e in result.events]
    assert stored.status_code == 404, "a failed transcription must store nothing"
    assert spooled_files(settings) == []


async def test_upstream_unreachable_is_unavailable(tmp_path: Path) -> None:
    """Nobody listening on the WLK port → `error` UPSTREAM_UNAVAILABLE, promptly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    settings = make_settings(tmp_path, transcribe_ws_uri=f"ws://127.0.0.1:{free_port}/asr")
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=1.0)
    async with run_gateway(settings) as gateway, gateway.client() as client:
        result = await stream_transcription(client, audio, timeout_seconds=10)
    assert result.last.event == "error"
    assert result.last.json()["code"] == "UPSTREAM_UNAVAILABLE"


async def test_upstream_malformed_messages_are_ignored(tmp_path: Path) -> None:
    """Non-JSON and unknown-type messages are logged and skipped; the transcription completes."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url_for(fault="malformed_json")
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=440)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
    assert result.last.event == "done"
    assert result.last.json()["document"][0]["text"] == "f440 f440 f440 f440"


async def test_upstream_stall_answers_within_idle_timeout(tmp_path: Path) -> None:
    """A WLK that stops reading and answering pings is given up on after the idle timeout."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url_for(fault="stall", fault_after=0.5, stall=30),
            transcribe_ws_idle_timeout_seconds=1.5,
            transcribe_ws_ping_interval_seconds=0.5,
            transcribe_ws_ping_timeout_seconds=5,
            transcribe_ws_max_resumes=0,
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=3.0)
        loop = asyncio.get_running_loop()
        async with run_gateway(settings) as gateway, gateway.client() as client:
            started = loop.time()
            result = await stream_transcription(client, audio)
            elapsed = loop.time() - started
    assert result.last.json()["code"] == "UPSTREAM_TIMEOUT"
    assert elapsed < seconds(5)


async def test_upstream_ping_timeout_is_a_service_error(tmp_path: Path) -> None:
    """A stalled WLK that misses our pings loses the connection (1011): UPSTREAM_SERVICE_ERROR."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url_for(fault="stall", fault_after=0.5, stall=30),
            transcribe_ws_idle_timeout_seconds=20.0,
            transcribe_ws_ping_interval_seconds=0.2,
            transcribe_ws_ping_timeout_seconds=0.5,
            transcribe_ws_max_resumes=0,
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=3.0)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio, timeout_seconds=10)
    error = result.last.json()
    assert error["code"] == "UPSTREAM_SERVICE_ERROR"
    assert "1011" in error["detail"]
