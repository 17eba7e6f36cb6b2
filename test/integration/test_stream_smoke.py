"""Smoke test of the whole path: upload → simulator → SSE `done`."""

from __future__ import annotations

from pathlib import Path

import pytest

from test.audio_fixtures import make_audio_file
from test.e2e import RunningGateway, document_words, stream_transcription

pytestmark = pytest.mark.integration


async def test_stream_happy_path_smoke(gateway: RunningGateway, tmp_path: Path) -> None:
    """A WAV of two tones streams transcription events and one done with the right words."""
    audio = make_audio_file(
        tmp_path, fmt="wav_s16", sample_rate=16000, tone_hz=[(440, 2.0), (0, 1.0), (880, 2.0)]
    )
    async with gateway.client() as client:
        result = await stream_transcription(client, audio)
    assert result.status == 200, result.body
    assert result.last.event == "done"
    done = result.last.json()
    assert document_words(done) == ["f440"] * 4 + ["f880"] * 4
