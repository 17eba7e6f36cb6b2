"""`WS /asr/live` over real sockets: a client streams PCM in real time through the gateway to the
simulator; lines, done, the stored document, the job, admission, followers and vanished clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import RunningGateway, eventually, make_settings, run_gateway, seconds, upload_files
from test.events import apply_transcription, follow_events, make_speech_like_file
from test.live import (
    BYTES_PER_SECOND,
    LiveResult,
    collect,
    make_live_speech,
    read_pcm,
    send_in_real_time,
    stream_live,
    ws_url,
)
from test.proxy import cutting_proxy
from test.resume import wait_for_job

pytestmark = pytest.mark.integration

EXPECTED_WORDS = ["f440"] * 3 + ["f660"] * 3 + ["f880"] * 3
BURSTS_WEBM = [(440.0, 1.5), (0.0, 1.0), (660.0, 1.5), (0.0, 1.0)]


@pytest.fixture
async def live_simulator() -> AsyncIterator[WLKSimulator]:
    """The simulator with short pauses: each 1 s silence of the test audio closes a paragraph."""
    async with WLKSimulator(profile="0.2.26", speed=50.0, pause_seconds=0.5) as simulator:
        yield simulator


@pytest.fixture
async def live_gateway(
    tmp_path: Path, live_simulator: WLKSimulator
) -> AsyncIterator[RunningGateway]:
    settings = make_settings(tmp_path, transcribe_ws_uri=live_simulator.url)
    async with run_gateway(settings) as running:
        yield running


def _replay(result: LiveResult) -> list[Any]:
    document: list[Any] = []
    for message in result.of("transcription"):
        document = apply_transcription(document, message)
    return document


def _words(paragraphs: list[dict[str, Any]]) -> list[str]:
    return " ".join(p["text"] for p in paragraphs).split()


async def test_live_pcm_stream_gives_lines_done_and_a_stored_job(
    tmp_path: Path, live_gateway: RunningGateway
) -> None:
    """PCM in real time: transcription deltas, one line per paragraph, done = stored, job listed."""
    pcm = read_pcm(make_live_speech(tmp_path))
    result = await stream_live(ws_url(live_gateway.base_url, name="hearing"), pcm, speed=1.5)

    assert result.kinds[0] == "session"
    session = result.session
    assert session["request_id"]
    assert "queued" not in result.kinds
    transcriptions = result.of("transcription")
    assert transcriptions and transcriptions[0]["from_index"] == 0
    assert result.kinds[-1] == "done", result.messages[-3:]
    assert result.close_code == 1000
    done = result.messages[-1]["document"]
    assert done["document_id"] == session["document_id"]
    assert _words(done["document"]) == EXPECTED_WORDS
    assert done["total_time"] == pytest.approx(len(pcm) / BYTES_PER_SECOND, abs=0.001)
    # The deltas rebuild the transcript; each final paragraph came as one line, in order.
    assert _replay(result)[: len(done["document"]) - 1] == done["document"][:-1]
    lines = result.of("line")
    assert [line["index"] for line in lines] == list(range(len(done["document"])))
    assert [line["paragraph"] for line in lines] == done["document"]
    assert len(lines) == 3
    # Lines come while speech goes on, not all at the end.
    assert result.kinds.index("line") < result.kinds.index("done") - 1

    async with live_gateway.client() as client:
        stored = (await client.get(f"/asr/validation/document/{session['document_id']}")).json()
        assert stored["document"] == done["document"]
        job = (await client.get(f"/asr/transcriptions/{session['id']}")).json()
        assert job["status"] == "done"
        assert job["live"] is True
        assert job["ended_by"] == "client"
        assert job["name"] == "hearing"
        assert job["document"]["document"] == done["document"]
        listed = (await client.get("/asr/transcriptions")).json()
        assert session["id"] in [item["id"] for item in listed]
        metrics = (await client.get("/metrics")).text
        assert "aymurai_live_sessions_total 1.0" in metrics
        assert "aymurai_live_sessions_active 0.0" in metrics


async def test_live_follower_sees_every_line_once_in_order(
    tmp_path: Path, live_gateway: RunningGateway
) -> None:
    """A second program following the job's events stream gets each `line` once, in order."""
    pcm = read_pcm(make_live_speech(tmp_path))
    result = LiveResult()
    async with connect(ws_url(live_gateway.base_url), max_size=None) as socket:
        session = json.loads(await socket.recv())
        assert session["type"] == "session"
        follower = asyncio.create_task(follow_events(live_gateway.base_url, session["id"]))
        reader = asyncio.create_task(collect(socket, result))
        await send_in_real_time(socket, pcm, speed=1.5)
        await socket.send(b"")
        await reader
    followed = await follower
    lines = [json.loads(event.data) for event in followed.events if event.event == "line"]
    done = result.messages[-1]["document"]
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert [line["paragraph"] for line in lines] == done["document"]
    assert followed.terminal is not None and followed.terminal.event == "done"
    assert followed.ids_increase()


async def test_live_queued_behind_a_file_job_then_admitted(tmp_path: Path) -> None:
    """Cap 1 with a file job running: the live client is queued with its position, then admitted;
    the audio it sent meanwhile is transcribed."""
    async with WLKSimulator(profile="0.2.26", speed=4.0, pause_seconds=0.5) as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_max_concurrent_sessions=1
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            audio = make_speech_like_file(tmp_path, total_seconds=8.0)
            created = await client.post("/asr/transcriptions", files=upload_files(audio))
            assert created.status_code == 202
            file_job = created.json()["id"]
            await eventually(
                lambda: simulator.open_sessions == 1, timeout_seconds=10, what="file job running"
            )
            pcm = read_pcm(make_live_speech(tmp_path))
            result = await stream_live(ws_url(gateway.base_url), pcm, speed=1.5)
            kinds = result.kinds
            assert kinds[:3] == ["session", "queued", "admitted"], kinds[:5]
            assert result.messages[1]["position"] == 1
            assert kinds[-1] == "done"
            assert _words(result.messages[-1]["document"]["document"]) == EXPECTED_WORDS
            status = (await client.get(f"/asr/transcriptions/{file_job}")).json()["status"]
            assert status == "done"


async def test_live_queue_full_closes_1013_after_accepting(tmp_path: Path) -> None:
    """Past the queue limit the socket is accepted, gets an error, then closes 1013 (reason)."""
    async with WLKSimulator(profile="0.2.26", speed=1.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_max_concurrent_sessions=1,
            transcribe_max_queued=0,
        )
        async with run_gateway(settings) as gateway:
            url = ws_url(gateway.base_url)
            async with connect(url) as first:
                assert json.loads(await first.recv())["type"] == "session"
                second = LiveResult()
                async with connect(url) as socket:
                    await collect(socket, second)
                assert second.kinds == ["error"]
                assert second.messages[0]["code"] == "QUEUE_FULL"
                assert second.close_code == 1013
                assert second.close_reason
                await first.send(b"")


@pytest.mark.parametrize(
    "query", [{"format": "mp3"}, {"language": "fr"}, {"language": "x" * 20}, {"name": "a%09b"}]
)
async def test_live_bad_query_closes_1008(
    live_gateway: RunningGateway, query: dict[str, str]
) -> None:
    """A bad query parameter (a language WLK was not started with too) is an error and 1008."""
    result = LiveResult()
    async with connect(ws_url(live_gateway.base_url, **query)) as socket:
        await collect(socket, result)
    assert result.kinds == ["error"]
    assert result.messages[0]["code"] == "VALIDATION_ERROR"
    assert result.close_code == 1008


async def test_live_buffer_limit_while_queued_closes_1013(tmp_path: Path) -> None:
    """Audio sent while queued is kept up to the buffer limit; past it the socket closes 1013."""
    async with WLKSimulator(profile="0.2.26", speed=1.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_max_concurrent_sessions=1,
            transcribe_live_max_buffer_seconds=1.0,
        )
        async with run_gateway(settings) as gateway:
            url = ws_url(gateway.base_url)
            async with connect(url) as first:
                assert json.loads(await first.recv())["type"] == "session"
                result = LiveResult()
                async with connect(url) as socket:
                    reader = asyncio.create_task(collect(socket, result))
                    await eventually(lambda: "queued" in result.kinds, what="queued")
                    await socket.send(b"\x00\x01" * 8000)  # 0.5 s: kept
                    await socket.send(b"\x00\x01" * 16000)  # 1.5 s in all: past the limit
                    await asyncio.wait_for(reader, seconds(10))
                assert result.kinds[:2] == ["session", "queued"]
                assert result.of("error")[0]["code"] == "LIVE_BUFFER_FULL"
                assert result.close_code == 1013
                await first.send(b"")
                async with gateway.client() as client:
                    job = (await client.get(f"/asr/transcriptions/{result.session['id']}")).json()
                    assert job["status"] == "failed"


async def test_live_vanished_client_is_found_by_pings_and_its_transcript_kept(
    tmp_path: Path, live_simulator: WLKSimulator
) -> None:
    """A client that stops answering (no close) is found within the ping timeout: WLK closed,
    the transcript so far stored, `ended_by: disconnect`."""
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=live_simulator.url,
        transcribe_live_ping_interval_seconds=0.5,
        transcribe_live_ping_timeout_seconds=1.0,
    )
    pcm = read_pcm(make_live_speech(tmp_path))[: 4 * BYTES_PER_SECOND]  # 2 bursts
    async with run_gateway(settings) as gateway:
        port = int(gateway.base_url.rsplit(":", 1)[1])
        async with cutting_proxy(port) as proxy:
            result = LiveResult()
            socket = await connect(ws_url(proxy.url), ping_interval=None, max_size=None)
            reader = asyncio.create_task(collect(socket, result))
            await send_in_real_time(socket, pcm, speed=2.0)
            await eventually(lambda: len(result.of("line")) >= 1, what="a first line")
            proxy.freeze()  # the network goes silent: no close frame, no pongs
            loop = asyncio.get_running_loop()
            frozen_at = loop.time()
            await eventually(
                lambda: live_simulator.open_sessions == 0,
                timeout_seconds=5,
                what="the WLK session closed",
            )
            assert loop.time() - frozen_at < seconds(0.5 + 1.0 + 1.5)
            job_id = result.session["id"]
            async with gateway.client() as client:
                job = await wait_for_job(
                    client, job_id, "done", "failed", "cancelled", timeout_seconds=5
                )
                assert job["status"] == "done"
                assert job["ended_by"] == "disconnect"
                words = _words(job["document"]["document"])
                assert words[:3] == ["f440"] * 3
                assert "f880" not in words
            reader.cancel()
            socket.transport.abort()


async def test_live_listing_shows_a_running_session(
    tmp_path: Path, live_gateway: RunningGateway
) -> None:
    """While it runs, the live job is listed as running with its growing time."""
    pcm = read_pcm(make_live_speech(tmp_path))
    async with connect(ws_url(live_gateway.base_url), max_size=None) as socket:
        session = json.loads(await socket.recv())
        await send_in_real_time(socket, pcm[: 2 * BYTES_PER_SECOND], speed=2.0)
        async with httpx.AsyncClient(base_url=live_gateway.base_url) as client:
            listed = (await client.get("/asr/transcriptions", params={"status": "running"})).json()
            assert [item["id"] for item in listed] == [session["id"]]
            assert listed[0]["live"] is True
            assert listed[0]["ended_by"] is None
        await socket.send(b"")
        result = LiveResult()
        await collect(socket, result)
        assert result.kinds[-1] == "done"


async def test_live_webm_recording_is_decoded_in_the_gateway(
    tmp_path: Path, live_gateway: RunningGateway
) -> None:
    """`format=webm`: MediaRecorder-like WebM/Opus slices in, PCM to WLK, the words right."""
    path = make_audio_file(
        tmp_path, fmt="webm_opus", sample_rate=48000, tone_hz=BURSTS_WEBM, name="recording"
    )
    data = path.read_bytes()
    slices = [data[i : i + 1500] for i in range(0, len(data), 1500)]  # ~0.25 s each at 48 kb/s
    result = LiveResult()
    async with asyncio.timeout(seconds(30)):
        async with connect(ws_url(live_gateway.base_url, format="webm")) as socket:
            reader = asyncio.create_task(collect(socket, result))
            for piece in slices:
                await socket.send(piece)
                await asyncio.sleep(0.05)
            await socket.send(b"")
            await reader
    assert result.kinds[-1] == "done", result.messages[-2:]
    words = _words(result.messages[-1]["document"]["document"])
    assert words[:2] == ["f440", "f440"] and "f660" in words
    assert len(result.of("line")) == 2


async def test_live_client_killed_without_a_close_keeps_its_transcript(
    tmp_path: Path, live_gateway: RunningGateway, live_simulator: WLKSimulator
) -> None:
    """The TCP connection dies without a close frame: WLK closed, partial transcript stored."""
    pcm = read_pcm(make_live_speech(tmp_path))[: 4 * BYTES_PER_SECOND]
    result = LiveResult()
    socket = await connect(ws_url(live_gateway.base_url), max_size=None)
    reader = asyncio.create_task(collect(socket, result))
    await send_in_real_time(socket, pcm, speed=2.0)
    await eventually(lambda: len(result.of("line")) >= 1, what="a first line")
    socket.transport.abort()  # killed: no close frame
    await reader
    await eventually(lambda: live_simulator.open_sessions == 0, what="the WLK session closed")
    async with live_gateway.client() as client:
        job = await wait_for_job(
            client, result.session["id"], "done", "failed", "cancelled", timeout_seconds=5
        )
    assert job["status"] == "done" and job["ended_by"] == "disconnect"
    assert _words(job["document"]["document"])[:3] == ["f440"] * 3


async def test_live_shutdown_ends_the_audio_and_stores_the_transcript(
    tmp_path: Path, live_gateway: RunningGateway
) -> None:
    """Draining (what SIGTERM starts): a live session's audio is ended, WLK flushes, `done`."""
    pcm = read_pcm(make_live_speech(tmp_path))[: 3 * BYTES_PER_SECOND]
    result = LiveResult()
    async with connect(ws_url(live_gateway.base_url), max_size=None) as socket:
        reader = asyncio.create_task(collect(socket, result))
        await send_in_real_time(socket, pcm, speed=2.0)
        live_gateway.app.state.service.begin_shutdown(5.0)
        await asyncio.wait_for(reader, seconds(10))
    assert result.kinds[-1] == "done", result.messages[-2:]
    assert result.close_code == 1000
    assert _words(result.messages[-1]["document"]["document"])[:3] == ["f440"] * 3


async def test_live_audio_kept_only_when_asked(
    tmp_path: Path, live_simulator: WLKSimulator
) -> None:
    """TRANSCRIBE_LIVE_KEEP_AUDIO: the session's PCM as `<document_id>.wav`, every sample."""
    kept_dir = tmp_path / "kept"
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=live_simulator.url,
        transcribe_live_keep_audio=True,
        transcribe_live_audio_dir=str(kept_dir),
    )
    pcm = read_pcm(make_live_speech(tmp_path))[: 2 * BYTES_PER_SECOND + 1000]
    async with run_gateway(settings) as gateway:
        result = await stream_live(ws_url(gateway.base_url), pcm, speed=2.0)
    assert result.kinds[-1] == "done"
    kept = kept_dir / f"{result.session['document_id']}.wav"
    data = read_pcm(kept)
    assert len(data) == len(pcm)
    assert data == pcm


async def test_live_lag_is_reported_when_wlk_falls_behind(tmp_path: Path) -> None:
    """WLK slower than the audio: `lag` messages (more than 3 s) and the lag metric."""
    async with WLKSimulator(profile="0.2.26", speed=0.5, pause_seconds=0.5) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        async with run_gateway(settings) as gateway:
            pcm = read_pcm(make_live_speech(tmp_path))
            result = LiveResult()
            socket = await connect(ws_url(gateway.base_url), max_size=None)
            reader = asyncio.create_task(collect(socket, result))
            sender = asyncio.create_task(send_in_real_time(socket, pcm, speed=1.9))
            await eventually(lambda: bool(result.of("lag")), timeout_seconds=8, what="lag")
            sender.cancel()
            socket.transport.abort()
            await reader
            assert result.of("lag")[0]["seconds"] >= 3.0
            async with gateway.client() as client:
                await wait_for_job(client, result.session["id"], "done", timeout_seconds=10)
                metrics = (await client.get("/metrics")).text
            assert "aymurai_live_lag_seconds_count 0.0" not in metrics
            assert "aymurai_live_lag_seconds_count" in metrics


async def test_live_delete_cancels_the_session(
    tmp_path: Path, live_gateway: RunningGateway, live_simulator: WLKSimulator
) -> None:
    """DELETE of a live job: the client gets `error` CANCELLED and a close 1000; nothing stored."""
    pcm = read_pcm(make_live_speech(tmp_path))
    result = LiveResult()
    async with connect(ws_url(live_gateway.base_url), max_size=None) as socket:
        reader = asyncio.create_task(collect(socket, result))
        sender = asyncio.create_task(send_in_real_time(socket, pcm, speed=1.5))
        await eventually(lambda: bool(result.of("transcription")), what="a transcription")
        async with live_gateway.client() as client:
            deleted = await client.delete(f"/asr/transcriptions/{result.session['id']}")
            assert deleted.status_code == 204
        await asyncio.wait_for(reader, seconds(10))
        sender.cancel()
    assert result.kinds[-1] == "error" and result.messages[-1]["code"] == "CANCELLED"
    assert result.close_code == 1000
    await eventually(lambda: live_simulator.open_sessions == 0, what="the WLK session closed")
    async with live_gateway.client() as client:
        job = (await client.get(f"/asr/transcriptions/{result.session['id']}")).json()
        assert job["status"] == "cancelled"
        missing = await client.get(f"/asr/validation/document/{result.session['document_id']}")
        assert missing.status_code == 404
