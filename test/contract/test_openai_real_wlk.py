"""OpenAI-style streaming through the real WhisperLiveKit server code (stub ASR, real speech).

Real WLK builds its lines, buffers and end-of-stream flush itself, so this is where "deltas carry
committed text only" meets the behaviour it is about: no delta may hold a word that the final text
later drops or changes, and the deltas must add up to exactly the stored transcript.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from aymurai.transcription.identity import document_id_for_bytes
from test.e2e import (
    RunningGateway,
    document_text,
    seconds,
    upload_files,
)

from .wlk_harness import RealWlk

pytestmark = pytest.mark.contract

STREAM_TIMEOUT_S = 90.0


def _document_url(path: Path) -> str:
    return f"/asr/validation/document/{document_id_for_bytes(path.read_bytes())}"


async def test_openai_stream_deltas_are_append_only_on_real_wlk(
    real_wlk_gateway: RunningGateway, real_wlk_server: RealWlk, speech_wav: Path
) -> None:
    """Deltas arrive while WLK works, only grow, and add up to the done text and the store."""
    payloads: list[dict[str, object]] = []
    async with real_wlk_gateway.client() as client:
        async with (
            asyncio.timeout(seconds(STREAM_TIMEOUT_S)),
            client.stream(
                "POST",
                "/v1/audio/transcriptions",
                files=upload_files(speech_wav),
                data={"model": "whisper-1", "stream": "true"},
            ) as response,
        ):
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                assert not line.startswith(("id:", "event:")), line
                if line.startswith("data: "):
                    payloads.append(json.loads(line.removeprefix("data: ")))
        stored = await client.get(_document_url(speech_wav))

    types = [p["type"] for p in payloads]
    assert "error" not in types, payloads
    assert types[-1] == "transcript.text.done" and types.count("transcript.text.done") == 1
    deltas = [str(p["delta"]) for p in payloads[:-1]]
    done_text = str(payloads[-1]["text"])
    assert len(deltas) >= 2, f"the text came in one piece, not as WLK committed it: {deltas}"

    final_words = done_text.split()
    sent = ""
    for delta in deltas:
        sent += delta
        # At every point, what was sent is the start of the final text, word for word.
        assert sent.split() == final_words[: len(sent.split())], (sent, done_text)
    assert sent == done_text
    assert stored.status_code == 200
    assert done_text == document_text(stored.json())
    # Every word WLK produced, the end-of-stream commit (0.2.17: still in its buffers) included.
    assert final_words == real_wlk_server.words()
