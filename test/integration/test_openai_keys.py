"""API keys on /v1: the OpenAI SDK's own `api_key` (Bearer) works; errors are OpenAI's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from aymurai.simulator import WLKSimulator
from test.e2e import RunningGateway, make_settings, run_gateway, seconds, upload_files
from test.keyed import Keys, make_distinct_audio, make_keys_file

pytestmark = pytest.mark.integration


@pytest.fixture
async def keyed(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> AsyncIterator[tuple[RunningGateway, Keys]]:
    keys = make_keys_file(tmp_path)
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=wlk_simulator.url,
        transcribe_api_keys_file=str(keys.file),
        transcribe_api_key_max_jobs=1,
    )
    async with run_gateway(settings) as gateway:
        yield gateway, keys


def _sdk(gateway: RunningGateway, api_key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1", api_key=api_key, max_retries=0, timeout=seconds(60)
    )


async def test_openai_keys_sdk_api_key_is_the_gateway_key(
    keyed: tuple[RunningGateway, Keys], tmp_path: Path
) -> None:
    """The SDK's api_key (sent as Bearer) transcribes; a wrong one raises AuthenticationError,
    a key without `transcribe` PermissionDeniedError."""
    gateway, keys = keyed
    audio = make_distinct_audio(tmp_path, 60, bursts=1)
    async with _sdk(gateway, keys.by_name["alice"]) as client:
        result = await client.audio.transcriptions.create(file=audio, model="whisper-1")
    assert result.text
    async with _sdk(gateway, "aym_wrong") as client:
        with pytest.raises(openai.AuthenticationError) as unauthenticated:
            await client.audio.transcriptions.create(file=audio, model="whisper-1")
    assert unauthenticated.value.code == "UNAUTHENTICATED"
    async with _sdk(gateway, keys.by_name["reviewer"]) as client:
        with pytest.raises(openai.PermissionDeniedError) as forbidden:
            await client.audio.transcriptions.create(file=audio, model="whisper-1")
    assert forbidden.value.code == "FORBIDDEN"


async def test_openai_keys_errors_are_openai_shaped(
    keyed: tuple[RunningGateway, Keys], tmp_path: Path
) -> None:
    """401 on /v1 is {"error": {message, type, param, code}} with WWW-Authenticate: Bearer."""
    gateway, keys = keyed
    audio = make_distinct_audio(tmp_path, 61, bursts=1)
    async with gateway.client() as client:
        for path, kwargs in (
            ("/v1/audio/transcriptions", {"files": upload_files(audio), "data": {"model": "m"}}),
            ("/v1/models", {}),
        ):
            method = "POST" if "files" in kwargs else "GET"
            response = await client.request(method, path, **kwargs)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["code"] == "UNAUTHENTICATED"


async def test_openai_keys_limit_is_a_rate_limit_error(
    keyed: tuple[RunningGateway, Keys], tmp_path: Path
) -> None:
    """A key at its limit (1 here) gets 429 KEY_LIMIT in OpenAI's shape with Retry-After."""
    gateway, keys = keyed
    running = make_distinct_audio(tmp_path, 62, bursts=6)
    async with gateway.client() as client:
        created = await client.post(
            "/asr/transcriptions", files=upload_files(running), headers=keys.header("alice")
        )
        assert created.status_code == 202
        response = await client.post(
            "/v1/audio/transcriptions",
            files=upload_files(make_distinct_audio(tmp_path, 63, bursts=1)),
            data={"model": "m"},
            headers=keys.header("alice"),
        )
        assert response.status_code == 429, response.text
        assert int(response.headers["retry-after"]) > 0
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("KEY_LIMIT", "rate_limit_error")
        await client.delete(
            f"/asr/transcriptions/{created.json()['id']}", headers=keys.header("alice")
        )
