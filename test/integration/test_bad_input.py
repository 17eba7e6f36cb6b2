"""Bad uploads are rejected before any stream starts, with a clear code, leaving no file behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import (
    make_audio_file,
    make_empty_audio_file,
    make_random_bytes_file,
    make_text_file,
    make_truncated_wav_header,
    make_video_only_file,
)
from test.e2e import (
    RunningGateway,
    eventually,
    make_settings,
    raw_http_request,
    run_gateway,
    spooled_files,
    upload_files,
)

pytestmark = pytest.mark.integration

ENDPOINTS = ["/asr/transcribe/stream", "/asr/transcribe"]


@pytest.fixture
async def small_limit_gateway(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> AsyncIterator[RunningGateway]:
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, transcribe_max_upload_bytes=1_000_000
    )
    async with run_gateway(settings) as running:
        yield running


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert body["detail"] and "Traceback" not in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("make_file", "detail_hint"),
    [
        (make_random_bytes_file, "audio"),
        (make_text_file, "audio"),
        (make_truncated_wav_header, ""),
        (make_empty_audio_file, "sample"),
        (make_video_only_file, "audio"),
    ],
)
async def test_upload_undecodable_is_415(
    gateway: RunningGateway,
    wlk_simulator: WLKSimulator,
    tmp_path: Path,
    endpoint: str,
    make_file: object,
    detail_hint: str,
) -> None:
    """Random bytes, text named .wav, a truncated header, no samples, video only → 415."""
    path = make_file(tmp_path)  # type: ignore[operator]
    async with gateway.client() as client:
        response = await client.post(endpoint, files=upload_files(path, "upload.wav"))
    body = _assert_error(response, 415, "INVALID_AUDIO")
    assert detail_hint in body["detail"].lower()
    assert wlk_simulator.sessions == []
    assert spooled_files(gateway.settings) == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_upload_empty_file_is_400(
    gateway: RunningGateway, tmp_path: Path, endpoint: str
) -> None:
    """A zero-byte file → 400 EMPTY_UPLOAD."""
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    async with gateway.client() as client:
        response = await client.post(endpoint, files=upload_files(empty))
    _assert_error(response, 400, "EMPTY_UPLOAD")
    assert spooled_files(gateway.settings) == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_upload_missing_file_field_is_422(gateway: RunningGateway, endpoint: str) -> None:
    """A multipart body without `file`, or no multipart at all → 422 VALIDATION_ERROR."""
    async with gateway.client() as client:
        other_field = await client.post(endpoint, files={"audio": ("a.wav", b"RIFF", "audio/wav")})
        no_body = await client.post(endpoint)
        json_body = await client.post(endpoint, json={"file": "x"})
    for response in (other_field, no_body, json_body):
        _assert_error(response, 422, "VALIDATION_ERROR")
    assert spooled_files(gateway.settings) == []


async def test_upload_bad_use_cache_is_422(gateway: RunningGateway, tmp_path: Path) -> None:
    """A malformed query parameter gets the same error body as every other error."""
    audio = make_audio_file(tmp_path, fmt="wav_s16")
    async with gateway.client() as client:
        response = await client.post(
            "/asr/transcribe/stream", params={"use_cache": "perhaps"}, files=upload_files(audio)
        )
    body = _assert_error(response, 422, "VALIDATION_ERROR")
    assert body["errors"][0]["loc"] == ["query", "use_cache"]


async def test_upload_too_large_is_413(small_limit_gateway: RunningGateway, tmp_path: Path) -> None:
    """A file over TRANSCRIBE_MAX_UPLOAD_BYTES → 413 UPLOAD_TOO_LARGE."""
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=40.0)  # 1.28 MB
    async with small_limit_gateway.client() as client:
        for endpoint in ENDPOINTS:
            response = await client.post(endpoint, files=upload_files(audio))
            _assert_error(response, 413, "UPLOAD_TOO_LARGE")
    assert spooled_files(small_limit_gateway.settings) == []


async def test_upload_too_large_declared_length_is_refused_unread(
    small_limit_gateway: RunningGateway,
) -> None:
    """A Content-Length over the limit is answered 413 before a single body byte is sent."""
    head = (
        b"POST /asr/transcribe/stream HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    status, sent = await raw_http_request(small_limit_gateway.base_url, head, [])
    assert status.startswith(b"HTTP/1.1 413")
    assert sent == 0


async def test_upload_too_large_chunked_is_cut_off_early(
    small_limit_gateway: RunningGateway,
) -> None:
    """Without a length, the gateway answers 413 once the limit is crossed, not at the end."""
    head = (
        b"POST /asr/transcribe/stream HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    preamble = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n"
    )
    block = b"\x01" * 65536
    total_chunks = 1600  # 100 MiB offered; the limit is 1 MB

    def chunks() -> object:
        yield b"%x\r\n%s\r\n" % (len(preamble), preamble)
        for _ in range(total_chunks):
            yield b"%x\r\n%s\r\n" % (len(block), block)

    status, sent = await raw_http_request(small_limit_gateway.base_url, head, chunks())
    assert status.startswith(b"HTTP/1.1 413")
    assert sent < total_chunks * len(block) // 4, f"read {sent} bytes before answering"
    await eventually(lambda: spooled_files(small_limit_gateway.settings) == [], what="spool empty")


async def test_upload_client_disconnect_mid_upload_leaves_nothing(
    gateway: RunningGateway, wlk_simulator: WLKSimulator
) -> None:
    """A client that vanishes while uploading leaves no spooled file and opens no WLK session."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /asr/transcribe/stream HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 10000000\r\n\r\n"
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        + b"\x00"
        * 3_000_000
    )
    await writer.drain()
    await eventually(lambda: len(spooled_files(gateway.settings)) == 1, what="spooling to start")
    writer.close()
    await writer.wait_closed()
    del reader
    await eventually(lambda: spooled_files(gateway.settings) == [], what="spool cleanup")
    assert wlk_simulator.sessions == []
