"""The OpenAI API on the job machinery: identical uploads share one WLK session with the other
APIs, and the resource API lists the job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from aymurai.simulator import WLKSimulator
from aymurai.transcription.identity import document_id_for_bytes
from test.audio_fixtures import make_audio_file
from test.e2e import make_settings, run_gateway, seconds, stream_transcription

pytestmark = pytest.mark.integration

SEGMENTS = [(440, 2.0), (0, 1.0), (660, 1.5), (0, 2.5), (880, 2.0)]


def _document_id(path: Path) -> str:
    return str(document_id_for_bytes(path.read_bytes()))


async def test_openai_identical_uploads_share_one_session_with_the_other_apis(
    tmp_path: Path,
) -> None:
    """OpenAI stream + OpenAI json + the SSE POST, same bytes at once: one WLK session, one
    transcript, and GET /asr/transcriptions lists the job."""
    audio = make_audio_file(tmp_path, fmt="flac", tone_hz=SEGMENTS, name="shared")
    async with WLKSimulator(profile="0.2.26", speed=4.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        async with run_gateway(settings) as gateway, gateway.client() as http:
            client = openai.AsyncOpenAI(
                base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0
            )

            async def via_openai_stream() -> str:
                stream = await client.audio.transcriptions.create(
                    file=audio, model="whisper-1", stream=True
                )
                events = [event async for event in stream]
                assert events[-1].type == "transcript.text.done"
                return events[-1].text  # type: ignore[union-attr]

            async def via_openai_json() -> str:
                result = await client.audio.transcriptions.create(file=audio, model="whisper-1")
                return result.text

            async def via_sse() -> str:
                result = await stream_transcription(http, audio, use_cache=False)
                return " ".join(p["text"] for p in result.last.json()["document"])

            async with client, asyncio.timeout(seconds(40)):
                first = asyncio.create_task(via_openai_stream())
                await simulator.wait_for_sessions(1, timeout=seconds(10))
                texts = await asyncio.gather(first, via_openai_json(), via_sse())
            listed = await http.get("/asr/transcriptions")
    assert len(simulator.sessions) == 1
    assert texts[0] and texts[0] == texts[1] == texts[2]
    assert listed.status_code == 200, listed.text
    jobs: list[dict[str, Any]] = listed.json()
    assert [job["status"] for job in jobs if job["document_id"] == _document_id(audio)] == ["done"]
