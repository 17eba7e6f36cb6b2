"""Cross-origin access and the request id on the HTTP surface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import RunningGateway, make_settings, run_gateway, stream_transcription

pytestmark = pytest.mark.integration

ORIGIN = "http://frontend.example"


@pytest.fixture
async def cors_gateway(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> AsyncIterator[RunningGateway]:
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, cors_origins=f"{ORIGIN}, http://other"
    )
    async with run_gateway(settings) as running:
        yield running


async def test_cors_preflight_allows_configured_origin(cors_gateway: RunningGateway) -> None:
    """A preflight from a configured origin is allowed; an unknown origin is not."""
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    async with cors_gateway.client() as client:
        allowed = await client.options("/asr/transcribe/stream", headers=headers)
        denied = await client.options(
            "/asr/transcribe/stream", headers={**headers, "Origin": "http://evil"}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in denied.headers


async def test_cors_stream_exposes_document_and_request_ids(
    cors_gateway: RunningGateway, tmp_path: Path
) -> None:
    """Scripts on the allowed origin can read X-Document-Id and X-Request-ID of the stream."""
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=1.0)
    async with cors_gateway.client() as client:
        result = await stream_transcription(client, audio, headers={"Origin": ORIGIN})
    assert result.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in result.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-document-id", "x-request-id"} <= exposed


async def test_cors_settings_parse_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """CORS_ORIGINS is a comma-separated list in the environment; empty means none."""
    from aymurai.settings import Settings

    monkeypatch.setenv("CORS_ORIGINS", "http://a, http://b")
    assert Settings(_env_file=None).cors_origins == ["http://a", "http://b"]  # type: ignore[call-arg]
    monkeypatch.setenv("CORS_ORIGINS", "")
    assert Settings(_env_file=None).cors_origins == []  # type: ignore[call-arg]
