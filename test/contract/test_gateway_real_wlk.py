"""The gateway end to end against the real WhisperLiveKit server code (stub ASR, real speech).

Upload over real HTTP → gateway → real WLK `/asr` (VAD, line building, ready_to_stop) → SSE.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from test.e2e import (
    RunningGateway,
    SSEFrame,
    document_words,
    iter_sse,
    seconds,
    stream_transcription,
    upload_files,
)

from .wlk_harness import RealWlk

pytestmark = pytest.mark.contract

STREAM_TIMEOUT_S = 90.0


async def read_stream(gateway: RunningGateway, path: Path) -> list[tuple[float, SSEFrame]]:
    """Upload `path` and read the SSE body as it arrives: (seconds since upload, frame) pairs."""
    frames: list[tuple[float, SSEFrame]] = []
    started = time.monotonic()
    async with gateway.client() as client, asyncio.timeout(seconds(STREAM_TIMEOUT_S)):
        async with client.stream(
            "POST", "/asr/transcribe/stream", files=upload_files(path)
        ) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for frame in iter_sse(response):
                frames.append((time.monotonic() - started, frame))
    return frames


async def test_gateway_streams_real_wlk_transcript_then_serves_cache(
    real_wlk_gateway: RunningGateway, real_wlk_server: RealWlk, speech_wav: Path
) -> None:
    """Speech upload streams transcription events, one done with every stub word, then cache."""
    frames = await read_stream(real_wlk_gateway, speech_wav)
    events = [frame for _, frame in frames if frame.event is not None]
    names = [frame.event for frame in events]
    assert "error" not in names, [frame.data for frame in events if frame.event == "error"]
    assert names.count("done") == 1 and names[-1] == "done", names
    transcriptions = [frame.json() for frame in events if frame.event == "transcription"]
    assert transcriptions, f"no transcription event before done: {names}"

    done = events[-1].json()
    expected = real_wlk_server.words()
    assert len(expected) >= 10, f"stub produced only {expected}; did the VAD drop the speech?"
    # Every word WLK produced, the ones still in its buffers at ready_to_stop included.
    assert document_words(done) == expected
    assert done["total_time"] is not None and done["total_time"] > 15.0
    assert done["current_time"] == done["total_time"]

    paragraphs = done["document"]
    if real_wlk_server.version != "0.2.17":
        # The 6 s pause becomes a WLK silence line, which splits the transcript into paragraphs.
        # (0.2.17 times silences on the wall clock: fed faster than real time, the pause shrinks
        # to ~0 s and the transcript stays one paragraph.)
        assert len(paragraphs) >= 2, paragraphs
    bounds = [(p["start"], p["end"]) for p in paragraphs]
    assert all(0.0 <= start <= end <= done["total_time"] + 0.5 for start, end in bounds), bounds
    assert bounds == sorted(bounds), bounds

    # Progress never goes backwards, and the transcript only grows towards the final one.
    progress = [t["current_time"] for t in transcriptions] + [done["current_time"]]
    assert progress == sorted(progress), progress
    assert all(t["total_time"] == done["total_time"] for t in transcriptions)
    assert all(t["document_id"] == done["document_id"] for t in transcriptions)
    # A WLK message that changes nothing a client sees makes no frame (issue 9).
    repeats = [
        i
        for i, (a, b) in enumerate(zip(transcriptions, transcriptions[1:], strict=False))
        if a == b
    ]
    assert repeats == [], f"transcription frames repeat the previous one at {repeats}"

    # Same bytes again: served from the cache, one done, no new WLK session.
    async with real_wlk_gateway.client() as client:
        again = await stream_transcription(client, speech_wav, timeout_seconds=30)
    assert again.status == 200, again.body
    assert [frame.event for frame in again.events] == ["done"]
    assert again.last.json() == done
    assert real_wlk_server.sessions() == [1]
