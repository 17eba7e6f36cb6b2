"""A client that leaves mid-stream ends its transcription: upstream closed fast, nothing stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import (
    eventually,
    iter_sse,
    make_settings,
    run_gateway,
    seconds,
    spooled_files,
    upload_files,
)

pytestmark = pytest.mark.integration


async def test_disconnect_mid_stream_closes_upstream_and_stores_nothing(tmp_path: Path) -> None:
    """Leave after the first transcription event: WLK socket closed < 2 s, no row, no file."""
    async with WLKSimulator(speed=1.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=30.0, tone_hz=440)
        loop = asyncio.get_running_loop()
        async with run_gateway(settings) as gateway, gateway.client() as client:
            async with asyncio.timeout(seconds(15)):
                async with client.stream(
                    "POST", "/asr/transcribe/stream", files=upload_files(audio)
                ) as response:
                    document_id = response.headers["x-document-id"]
                    async for frame in iter_sse(response):
                        if frame.event == "transcription" and frame.json()["document"]:
                            break
            left_at = loop.time()
            record = await simulator.wait_for_session_closed(0, timeout=seconds(5))
            closed_after = loop.time() - left_at
            assert record.end_frame_at is None, "the gateway finished sending after the client left"
            await eventually(lambda: spooled_files(settings) == [], what="spool cleanup")
            await eventually(lambda: not gateway.app.state.service.jobs, what="the job to end")
            stored = await client.get(f"/asr/validation/document/{document_id}")
    assert closed_after < 2.0
    assert stored.status_code == 404


async def test_disconnect_then_same_upload_transcribes_fully(tmp_path: Path) -> None:
    """After an abandoned stream, the same bytes are transcribed anew (no partial cache hit)."""
    async with WLKSimulator(speed=10.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=20.0, tone_hz=440)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            async with asyncio.timeout(seconds(15)):
                async with client.stream(
                    "POST", "/asr/transcribe/stream", files=upload_files(audio)
                ) as response:
                    async for frame in iter_sse(response):
                        if frame.event == "transcription":
                            break
            await simulator.wait_for_session_closed(0, timeout=seconds(5))
            await eventually(lambda: not gateway.app.state.service.jobs, what="the job to end")
            async with asyncio.timeout(seconds(30)):
                async with client.stream(
                    "POST", "/asr/transcribe/stream", files=upload_files(audio)
                ) as response:
                    frames = [frame async for frame in iter_sse(response)]
    events = [frame for frame in frames if frame.event]
    assert events[-1].event == "done"
    assert len(events) > 1, "a cache hit would be a single frame"
    assert events[-1].json()["document"][0]["text"].split() == ["f440"] * 40


async def test_slow_client_never_stalls_upstream(tmp_path: Path) -> None:
    """A client that stops reading does not hold WLK: the session completes and closes normally,
    and the client later finds `done` waiting."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=20.0, tone_hz=440)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            async with asyncio.timeout(seconds(20)):
                async with client.stream(
                    "POST", "/asr/transcribe/stream", files=upload_files(audio)
                ) as response:
                    frames = aiter(iter_sse(response))
                    first = await anext(frames)
                    # Stop reading while WLK works through the whole file.
                    record = await simulator.wait_for_session_closed(0, timeout=seconds(10))
                    rest = [frame async for frame in frames]
    assert first.event == "transcription"
    assert record.ready_to_stop_sent_at is not None
    assert record.close_code == 1000
    events = [frame for frame in rest if frame.event]
    assert events[-1].event == "done"
