"""The deprecated blocking endpoint and the human-validation round trip, over real HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import (
    RunningGateway,
    document_words,
    make_settings,
    run_gateway,
    stream_transcription,
    upload_files,
)

pytestmark = pytest.mark.integration


async def test_blocking_transcribe_returns_the_document(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    """POST /asr/transcribe answers the final ASRDocument, then serves it from the cache."""
    audio = make_audio_file(tmp_path, fmt="m4a", sample_rate=44100, channels=2, seconds=2.0)
    async with gateway.client() as client:
        first = await client.post("/asr/transcribe", files=upload_files(audio))
        second = await client.post("/asr/transcribe", files=upload_files(audio, "other.m4a"))
    assert first.status_code == 200, first.text
    document = first.json()
    assert document_words(document) == ["f440"] * 4
    assert document["current_time"] == document["total_time"] == pytest.approx(2.0, abs=0.05)
    assert first.headers["x-document-id"] == document["document_id"]
    assert second.json() == document


async def test_blocking_transcribe_is_deprecated_in_openapi(gateway: RunningGateway) -> None:
    """The OpenAPI schema marks the blocking endpoint deprecated and documents the upload."""
    async with gateway.client() as client:
        schema = (await client.get("/openapi.json")).json()
    assert schema["paths"]["/asr/transcribe"]["post"]["deprecated"] is True
    stream = schema["paths"]["/asr/transcribe/stream"]["post"]
    assert "deprecated" not in stream
    assert "multipart/form-data" in stream["requestBody"]["content"]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"fault": "close_1011", "fault_after": 0.5}, 502, "UPSTREAM_SERVICE_ERROR"),
        ({"fault": "handshake_refused"}, 502, "UPSTREAM_UNAVAILABLE"),
        ({"fault": "no_worklet"}, 502, "UPSTREAM_PROTOCOL_ERROR"),
        ({"fault": "never_ready"}, 504, "UPSTREAM_TIMEOUT"),
    ],
)
async def test_blocking_transcribe_upstream_failures(
    tmp_path: Path, query: dict[str, object], status: int, code: str
) -> None:
    """Upstream failures are 502 with their UPSTREAM_* code; an upstream timeout is 504."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url_for(**query),
            transcribe_ws_ready_timeout_seconds=1.0,
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            response = await client.post("/asr/transcribe", files=upload_files(audio))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]


async def test_validation_unknown_and_malformed_ids(gateway: RunningGateway) -> None:
    """Unknown id → 404 NOT_FOUND on GET and POST; a malformed id → 422."""
    unknown = uuid.uuid4()
    paragraphs = [{"speaker_no": 1, "start": 0, "end": 1, "text": "hello"}]
    async with gateway.client() as client:
        get_unknown = await client.get(f"/asr/validation/document/{unknown}")
        post_unknown = await client.post(f"/asr/validation/document/{unknown}", json=paragraphs)
        malformed = await client.get("/asr/validation/document/not-a-uuid")
    assert get_unknown.status_code == 404 and get_unknown.json()["code"] == "NOT_FOUND"
    assert post_unknown.status_code == 404 and post_unknown.json()["code"] == "NOT_FOUND"
    assert malformed.status_code == 422 and malformed.json()["code"] == "VALIDATION_ERROR"


async def test_validation_round_trip_survives_retranscription(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> None:
    """A stored validation is served by GET and cache hits, and use_cache=false keeps it."""
    settings = make_settings(tmp_path, transcribe_ws_uri=wlk_simulator.url)
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=600)
    reviewed = [
        {"speaker_no": 1, "speaker_name": "Judge", "start": 0.0, "end": 1.0, "text": " Hello. "},
        {"speaker_no": 2, "start": 1.0, "end": 2.0, "text": "Good morning."},
    ]
    async with run_gateway(settings) as gateway, gateway.client() as client:
        first = await stream_transcription(client, audio)
        document_id = first.headers["x-document-id"]
        bad_body = await client.post(
            f"/asr/validation/document/{document_id}", json=[{"text": "no times"}]
        )
        saved = await client.post(f"/asr/validation/document/{document_id}", json=reviewed)
        fetched = await client.get(f"/asr/validation/document/{document_id}")
        cached = await stream_transcription(client, audio)
        redone = await stream_transcription(client, audio, use_cache=False)
        after = await client.get(f"/asr/validation/document/{document_id}")
    assert bad_body.status_code == 422 and bad_body.json()["code"] == "VALIDATION_ERROR"
    assert saved.status_code == 200
    stored = saved.json()
    assert [p["text"] for p in stored["document"]] == ["Hello.", "Good morning."]
    assert stored["document"][0]["speaker_name"] == "Judge"
    assert stored["document"][1]["speaker_id"] == "speaker-2"
    assert stored["total_time"] == pytest.approx(2.0, abs=0.05)
    assert fetched.json() == stored
    assert [f.event for f in cached.events] == ["done"]
    assert cached.last.json() == stored
    assert document_words(redone.last.json()) == ["f600"] * 4  # the fresh transcription
    assert after.json() == stored, "re-transcribing erased the validation"
