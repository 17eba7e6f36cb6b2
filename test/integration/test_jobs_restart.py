"""Restarts lose nothing: `kill -9` of a real `aymurai-api` mid-job, a graceful stop, restarts."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from aymurai.simulator import WLKSimulator
from aymurai.transcription.channel import EPOCH_SPAN
from test.e2e import eventually, iter_sse, make_settings, run_gateway, seconds, upload_files
from test.events import follow_events, make_speech_like_file
from test.processes import run_gateway_process

pytestmark = pytest.mark.integration


async def test_jobs_restart_after_kill_completes_the_job_or_reports_interrupted(
    tmp_path: Path,
) -> None:
    """kill -9 mid-job, restart: the job whose audio is still spooled runs again and is stored,
    a resumer with a pre-restart id gets a full snapshot first; the job whose spooled audio was
    deleted meanwhile ends failed INTERRUPTED."""
    kept_audio = make_speech_like_file(tmp_path, total_seconds=30, name="kept.wav")
    lost_audio = make_audio_file_copy(tmp_path, kept_audio)
    async with WLKSimulator(speed=5.0) as simulator:
        async with run_gateway_process(tmp_path, ws_uri=simulator.url, grace_seconds=2.0) as first:
            async with httpx.AsyncClient(base_url=first.base_url, timeout=seconds(30)) as client:
                kept = (
                    await client.post("/asr/transcriptions", files=upload_files(kept_audio))
                ).json()
                lost = (
                    await client.post("/asr/transcriptions", files=upload_files(lost_audio))
                ).json()
            before = await follow_events(first.base_url, kept["id"], stop_after_events=4)
            await first.kill()
        pre_restart_id = before.events[-1].id
        assert int(pre_restart_id) < EPOCH_SPAN
        spooled = sorted((tmp_path / "spool").glob("aymurai-upload-*"))
        assert len(spooled) == 2, "both uploads stay spooled until their jobs end"
        lost_spool = [path for path in spooled if path.read_bytes() == lost_audio.read_bytes()]
        lost_spool[0].unlink()

        async with run_gateway_process(tmp_path, ws_uri=simulator.url, grace_seconds=2.0) as second:
            after = await follow_events(second.base_url, kept["id"], last_event_id=pre_restart_id)
            async with httpx.AsyncClient(base_url=second.base_url, timeout=seconds(30)) as client:
                kept_state = (await client.get(f"/asr/transcriptions/{kept['id']}")).json()
                lost_state = (await client.get(f"/asr/transcriptions/{lost['id']}")).json()
                lost_events = await follow_events(second.base_url, lost["id"])
        assert simulator.sessions[-1].end_frame_at is not None, "the re-run went to the end"
    first_after = after.events[0]
    assert int(first_after.id) > EPOCH_SPAN, "ids keep increasing across the restart"
    assert first_after.event in ("queued", "transcription")
    if first_after.event == "transcription":
        assert first_after.json()["from_index"] == 0
    assert after.ids_increase()
    assert after.terminal is not None and after.terminal.event == "done"
    assert kept_state["status"] == "done"
    assert kept_state["document"] == after.terminal.json()
    assert lost_state["status"] == "failed"
    assert lost_state["error"]["code"] == "INTERRUPTED"
    assert [event.event for event in lost_events.events] == ["error"]
    assert lost_events.terminal is not None
    assert lost_events.terminal.json()["code"] == "INTERRUPTED"
    assert list((tmp_path / "spool").glob("aymurai-upload-*")) == []


def make_audio_file_copy(directory: Path, source: Path) -> Path:
    """Different bytes (another document) with the same audio: a shifted WAV header field."""
    target = directory / "lost.wav"
    data = bytearray(source.read_bytes())
    data += b"\0\0"  # two more samples of silence: a different document id
    # Keep the RIFF and data sizes consistent so the file stays a valid WAV.
    riff = int.from_bytes(data[4:8], "little") + 2
    data[4:8] = riff.to_bytes(4, "little")
    index = data.find(b"data")
    size = int.from_bytes(data[index + 4 : index + 8], "little") + 2
    data[index + 4 : index + 8] = size.to_bytes(4, "little")
    target.write_bytes(bytes(data))
    return target


async def test_jobs_graceful_stop_leaves_resource_jobs_for_the_next_start(
    tmp_path: Path,
) -> None:
    """Stop with a job outlasting the grace: its row stays queued with its audio; the next start
    runs it to done (one more WLK session), ids above the first run's."""
    async with WLKSimulator(speed=2.0) as simulator:
        audio = make_speech_like_file(tmp_path, total_seconds=30)
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_shutdown_grace_seconds=0.5
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            job = (await client.post("/asr/transcriptions", files=upload_files(audio))).json()
            await simulator.wait_for_sessions(1, timeout=seconds(5))
        assert len(list((tmp_path / "spool").glob("aymurai-upload-*"))) == 1, "the audio is kept"
        async with run_gateway(settings) as gateway, gateway.client() as client:
            state = (await client.get(f"/asr/transcriptions/{job['id']}")).json()
            assert state["status"] in ("queued", "running")
            followed = await follow_events(gateway.base_url, job["id"], timeout_seconds=60)
            service = gateway.app.state.service
            await eventually(lambda: not service.jobs, what="the job to end")
            final = (await client.get(f"/asr/transcriptions/{job['id']}")).json()
    assert followed.terminal is not None and followed.terminal.event == "done"
    assert int(followed.events[0].id) > EPOCH_SPAN
    assert final["status"] == "done"
    assert len(simulator.sessions) == 2
    assert list((tmp_path / "spool").glob("aymurai-upload-*")) == []


async def test_jobs_sigterm_leaves_resource_jobs_and_ends_the_post_stream(tmp_path: Path) -> None:
    """SIGTERM to aymurai-api with a resource job and a POST stream job running past the grace:
    the POST stream ends with SHUTTING_DOWN (as before), the resource job's events stream ends
    without a terminal event and the job is re-run to done by the next start."""
    resource_audio = make_speech_like_file(tmp_path, total_seconds=30, name="resource.wav")
    stream_audio = make_audio_file_copy(tmp_path, resource_audio)
    async with WLKSimulator(speed=2.0) as simulator:
        async with run_gateway_process(tmp_path, ws_uri=simulator.url, grace_seconds=0.5) as first:
            async with httpx.AsyncClient(base_url=first.base_url, timeout=seconds(30)) as client:
                job = (
                    await client.post("/asr/transcriptions", files=upload_files(resource_audio))
                ).json()
                async with client.stream(
                    "POST", "/asr/transcribe/stream", files=upload_files(stream_audio)
                ) as response:
                    follower = asyncio.create_task(
                        follow_events(first.base_url, job["id"], max_connections=1)
                    )
                    await simulator.wait_for_sessions(2, timeout=seconds(10))
                    first.process.send_signal(signal.SIGTERM)
                    posted = [frame async for frame in iter_sse(response) if frame.event]
                followed = await follower
            # uvicorn re-raises the captured SIGTERM once it has shut down gracefully.
            assert await first.wait_exit(seconds(15)) in (0, -signal.SIGTERM)
        async with run_gateway_process(tmp_path, ws_uri=simulator.url, grace_seconds=0.5) as second:
            after = await follow_events(second.base_url, job["id"])
            async with httpx.AsyncClient(base_url=second.base_url, timeout=seconds(30)) as client:
                state = (await client.get(f"/asr/transcriptions/{job['id']}")).json()
    assert posted[-1].event == "error" and posted[-1].json()["code"] == "SHUTTING_DOWN"
    assert followed.terminal is None, "left for the next start: no terminal event"
    assert after.terminal is not None and after.terminal.event == "done"
    assert int(after.events[0].id) > EPOCH_SPAN
    assert state["status"] == "done"
