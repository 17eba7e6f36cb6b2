"""Limits on untrusted clients over real sockets: slow bodies and headers, uploads in progress,
spool leftovers, a blocking client that leaves, readiness of the database and the spool."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import (
    eventually,
    make_settings,
    run_gateway,
    seconds,
    spooled_files,
    upload_files,
)

pytestmark = pytest.mark.integration

UPLOAD_HEAD = (
    b"POST /asr/transcribe/stream HTTP/1.1\r\nHost: test\r\n"
    b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1000000\r\n\r\n"
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
)


async def _open(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base_url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    return await reader.read(65536)


async def test_upload_trickle_ends_with_408(
    tmp_path: Path, wlk_simulator: WLKSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A body trickling at ~10 bytes/s past the grace → 408 UPLOAD_TIMEOUT, spool emptied."""
    caplog.set_level(logging.INFO)
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=wlk_simulator.url,
        transcribe_upload_grace_seconds=1.0,
        transcribe_upload_min_bytes_per_second=1000.0,
    )
    async with run_gateway(settings) as gateway:
        reader, writer = await _open(gateway.base_url)
        writer.write(UPLOAD_HEAD)
        response = asyncio.create_task(_read_response(reader))
        async with asyncio.timeout(seconds(10)):
            while not response.done():
                writer.write(b"\x00")
                await writer.drain()
                await asyncio.wait([response], timeout=0.1)
        head = response.result()
        writer.close()
        assert head.startswith(b"HTTP/1.1 408"), head
        assert b"UPLOAD_TIMEOUT" in head
        assert b"x-request-id" in head.lower()
        await eventually(lambda: spooled_files(settings) == [], what="spool cleanup")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_upload_silent_client_ends_with_408(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> None:
    """A client that sends headers and then nothing is answered 408 after the grace."""
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, transcribe_upload_grace_seconds=0.5
    )
    async with run_gateway(settings) as gateway:
        reader, writer = await _open(gateway.base_url)
        writer.write(UPLOAD_HEAD)
        async with asyncio.timeout(seconds(5)):
            head = await _read_response(reader)
        writer.close()
    assert head.startswith(b"HTTP/1.1 408"), head


async def test_server_slow_headers_are_cut_off(tmp_path: Path, wlk_simulator: WLKSimulator) -> None:
    """Headers sent a byte at a time (slowloris) → 408 and closed after API_HEADER_TIMEOUT."""
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, api_header_timeout_seconds=1.0
    )
    async with run_gateway(settings) as gateway:
        reader, writer = await _open(gateway.base_url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = asyncio.create_task(_read_response(reader))
        async with asyncio.timeout(seconds(10)):
            for byte in b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 1000:
                if response.done():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait([response], timeout=0.05)
            head = await response
        elapsed = loop.time() - started
        writer.close()
        # An idle connection that sends nothing at all is closed as well.
        idle_reader, idle_writer = await _open(gateway.base_url)
        async with asyncio.timeout(seconds(5)):
            idle_head = await _read_response(idle_reader)
        idle_writer.close()
    assert head.startswith(b"HTTP/1.1 408"), head
    assert elapsed < seconds(3.0)
    assert idle_head.startswith(b"HTTP/1.1 408")


async def test_upload_cap_refuses_with_503(tmp_path: Path, wlk_simulator: WLKSimulator) -> None:
    """With TRANSCRIBE_MAX_CONCURRENT_UPLOADS=1 in progress, another → 503 TOO_MANY_UPLOADS."""
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, transcribe_max_concurrent_uploads=1
    )
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=1.0)
    async with run_gateway(settings) as gateway, gateway.client() as client:
        reader, writer = await _open(gateway.base_url)
        writer.write(UPLOAD_HEAD + b"\x00" * 1000)
        await writer.drain()
        await eventually(lambda: len(spooled_files(settings)) == 1, what="the first upload")
        refused = await client.post("/asr/transcribe/stream", files=upload_files(audio))
        writer.close()
        del reader
        await eventually(lambda: spooled_files(settings) == [], what="the first upload to end")
        accepted = await client.post("/asr/transcribe", files=upload_files(audio))
    assert refused.status_code == 503
    assert refused.json()["code"] == "TOO_MANY_UPLOADS"
    assert refused.headers["retry-after"]
    assert accepted.status_code == 200


async def test_upload_client_abort_logs_one_info_line(
    tmp_path: Path, wlk_simulator: WLKSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that aborts mid-upload is one INFO line, no traceback, nothing at ERROR."""
    caplog.set_level(logging.INFO)
    settings = make_settings(tmp_path, transcribe_ws_uri=wlk_simulator.url)
    async with run_gateway(settings) as gateway:
        for _ in range(3):
            reader, writer = await _open(gateway.base_url)
            writer.write(UPLOAD_HEAD + b"\x00" * 300_000)
            await writer.drain()
            await eventually(lambda: len(spooled_files(settings)) == 1, what="spooling")
            writer.close()
            await writer.wait_closed()
            del reader
            await eventually(lambda: spooled_files(settings) == [], what="spool cleanup")
        await eventually(
            lambda: sum("client disconnected" in r.getMessage() for r in caplog.records) == 3,
            what="three disconnect lines",
        )
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    gone = [r for r in caplog.records if "client disconnected" in r.getMessage()]
    assert all(r.levelno == logging.INFO and "\n" not in r.getMessage() for r in gone)


async def _start_partial_upload(base_url: str) -> asyncio.StreamWriter:
    _reader, writer = await _open(base_url)
    writer.write(UPLOAD_HEAD + b"\x00" * 1000)
    await writer.drain()
    return writer


async def test_spool_orphans_of_a_killed_gateway_are_removed_at_startup(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> None:
    """After kill -9 of one gateway, the next one to start removes that gateway's upload, but
    keeps the live upload of another gateway sharing the folder and files that are not ours."""
    from test.processes import run_gateway_process

    spool = tmp_path / "spool"
    spool.mkdir()
    foreign = [spool / "other-app.tmp", spool / "aymurai-upload-handmade.audio"]
    for path in foreign:
        path.write_bytes(b"not ours")

    def uploads() -> set[Path]:
        return set(spool.glob("aymurai-upload-*-*.audio")) - set(foreign)

    (tmp_path / "live").mkdir()
    live_settings = make_settings(
        tmp_path / "live", transcribe_ws_uri=wlk_simulator.url, transcribe_spool_dir=str(spool)
    )
    async with run_gateway(live_settings) as live:
        live_upload = await _start_partial_upload(live.base_url)
        await eventually(lambda: len(uploads()) == 1, what="the live gateway's upload")
        live_file = uploads().pop()
        async with run_gateway_process(
            tmp_path, ws_uri=wlk_simulator.url, grace_seconds=1
        ) as killed:
            killed_upload = await _start_partial_upload(killed.base_url)
            await eventually(lambda: len(uploads()) == 2, what="the killed gateway's upload")
            orphan = (uploads() - {live_file}).pop()
            killed.process.kill()  # SIGKILL: no cleanup of its own
            await killed.process.wait()
        killed_upload.close()
        assert orphan.exists()
        (tmp_path / "next").mkdir()
        next_settings = make_settings(
            tmp_path / "next", transcribe_ws_uri=wlk_simulator.url, transcribe_spool_dir=str(spool)
        )
        async with run_gateway(next_settings):
            assert not orphan.exists()
            assert live_file.exists()
            assert all(path.exists() for path in foreign)
        live_upload.close()
        await eventually(lambda: not live_file.exists(), what="the live upload to end")


BLOCKING_REQUESTS = {
    "deprecated": ("/asr/transcribe", {}),
    "openai": ("/v1/audio/transcriptions", {"model": "m"}),  # stream=false
}


@pytest.mark.parametrize("endpoint", BLOCKING_REQUESTS)
async def test_blocking_client_leaving_frees_its_session(tmp_path: Path, endpoint: str) -> None:
    """A client of a blocking endpoint (the deprecated one, OpenAI's stream=false) that leaves
    mid-transcription frees its WLK session at once."""
    path, form = BLOCKING_REQUESTS[endpoint]
    async with WLKSimulator(speed=1.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=30.0, tone_hz=440)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            request = asyncio.create_task(client.post(path, files=upload_files(audio), data=form))
            await simulator.wait_for_sessions(1, timeout=seconds(10))
            await eventually(lambda: simulator.open_sessions == 1, what="the session to open")
            request.cancel()  # the client goes away: httpx closes the connection
            with pytest.raises(asyncio.CancelledError):
                await request
            loop = asyncio.get_running_loop()
            left_at = loop.time()
            await eventually(
                lambda: simulator.open_sessions == 0, timeout_seconds=5, what="session closed"
            )
            closed_after = loop.time() - left_at
            await eventually(lambda: not gateway.app.state.service.jobs, what="the job to end")
            await eventually(lambda: spooled_files(settings) == [], what="spool cleanup")
    assert closed_after < seconds(2.0)


async def test_readiness_fails_on_a_read_only_database(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> None:
    """A database opened read-only (even as root) makes /readyz answer 503 on `database`."""
    db = tmp_path / "ro.db"
    writable = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, sqlalchemy_database_uri=f"sqlite:///{db}"
    )
    async with run_gateway(writable):
        pass  # migrated
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    read_only = make_settings(
        tmp_path,
        transcribe_ws_uri=wlk_simulator.url,
        sqlalchemy_database_uri=f"sqlite:///file:{db}?mode=ro&uri=true",
    )
    async with run_gateway(read_only) as gateway, gateway.client() as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("STORAGE_ERROR")


async def test_readiness_and_uploads_fail_without_spool_room(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> None:
    """A spool folder that is full (under its free-space floor) or removed → /readyz 503 and
    uploads 503 SPOOL_UNAVAILABLE; a folder that comes back is ready again."""
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=1.0)
    full = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, transcribe_spool_min_free_bytes=2**62
    )
    async with run_gateway(full) as gateway, gateway.client() as client:
        ready = await client.get("/readyz")
        upload = await client.post("/asr/transcribe/stream", files=upload_files(audio))
    assert ready.status_code == 503
    assert ready.json()["checks"]["spool"].startswith("SPOOL_UNAVAILABLE")
    assert upload.status_code == 503
    assert upload.json()["code"] == "SPOOL_UNAVAILABLE"

    settings = make_settings(tmp_path, transcribe_ws_uri=wlk_simulator.url)
    assert settings.transcribe_spool_dir is not None
    spool = Path(settings.transcribe_spool_dir)
    async with run_gateway(settings) as gateway, gateway.client() as client:
        moved = spool.with_name("spool-away")
        os.rename(spool, moved)
        gone_ready = await client.get("/readyz")
        gone_upload = await client.post("/asr/transcribe/stream", files=upload_files(audio))
        os.rename(moved, spool)
        back_ready = await client.get("/readyz")
    assert gone_ready.status_code == 503
    assert "missing" in gone_ready.json()["checks"]["spool"]
    assert gone_upload.status_code == 503
    assert gone_upload.json()["code"] == "SPOOL_UNAVAILABLE"
    assert gone_upload.headers["x-request-id"] == gone_upload.json()["request_id"]
    assert back_ready.json()["checks"]["spool"] == "ok"


def test_spool_lock_is_held_against_other_processes(tmp_path: Path) -> None:
    """Sanity for the cleanup rule: a lock file another descriptor holds cannot be taken."""
    path = tmp_path / "x.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    other = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
        os.close(other)
