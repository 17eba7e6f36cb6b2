"""Issue 10 on the simulator: no punctuation-only paragraphs; wire times whole ms, monotonic."""

from __future__ import annotations

from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import assert_wire_times, make_settings, run_gateway, stream_transcription

pytestmark = pytest.mark.integration

# Tones with pauses longer than the simulator's pause_seconds: each pause becomes a silence line,
# and with ?dots=1 a ". . . ." line over it, as real Whisper does on compressed audio.
SEGMENTS = [(440, 2.0), (0, 2.5), (660, 1.5), (0, 3.0), (880, 2.0)]


def _has_word(text: str) -> bool:
    return any(c.isalnum() for c in text)


async def _stream_with_dots(tmp_path: Path, **settings: object) -> list[dict[str, object]]:
    async with WLKSimulator(profile="0.2.26", speed=20.0, pause_seconds=1.0) as simulator:
        config = make_settings(tmp_path, transcribe_ws_uri=f"{simulator.url}?dots=1", **settings)
        audio = make_audio_file(tmp_path, fmt="mp3", sample_rate=44100, tone_hz=SEGMENTS)
        async with run_gateway(config) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
            assert result.status == 200, result.body
            done = result.last.json()
            stored = await client.get(f"/asr/validation/document/{done['document_id']}")
    assert result.last.event == "done"
    assert stored.status_code == 200
    documents = [frame.json() for frame in result.of("transcription")]
    return [*documents, done, stored.json()]


async def test_stream_drops_punctuation_only_paragraphs(tmp_path: Path) -> None:
    """WLK's '. . . .' lines reach neither the stream nor storage; real words all do."""
    documents = await _stream_with_dots(tmp_path)
    for document in documents:
        for paragraph in document["document"]:  # type: ignore[attr-defined]
            assert _has_word(paragraph["text"]), paragraph
    final = documents[-2]
    words = " ".join(p["text"] for p in final["document"]).split()  # type: ignore[index]
    assert {"f440", "f660", "f880"} <= set(words)


async def test_stream_keeps_punctuation_only_paragraphs_when_configured(tmp_path: Path) -> None:
    """TRANSCRIBE_KEEP_PUNCTUATION_ONLY=true passes the hallucinated lines on unchanged."""
    documents = await _stream_with_dots(tmp_path, transcribe_keep_punctuation_only=True)
    texts = [p["text"] for p in documents[-1]["document"]]  # type: ignore[index]
    assert ". . . ." in texts


async def test_stream_wire_times_are_whole_ms_and_monotonic(tmp_path: Path) -> None:
    """Every event and the stored document: ms times, start/end/current_time never go back."""
    documents = await _stream_with_dots(tmp_path)
    assert_wire_times(documents[:-1])  # the stream, done included
    assert_wire_times(documents[-1:])  # storage
