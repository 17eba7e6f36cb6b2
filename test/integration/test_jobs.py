"""The resource API over real sockets: jobs, resumable delta events, shared sessions, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import (
    RunningGateway,
    eventually,
    iter_sse,
    make_settings,
    run_gateway,
    seconds,
    spooled_files,
    stream_transcription,
    upload_files,
)
from test.events import follow_events, make_speech_like_file
from test.proxy import cutting_proxy

pytestmark = pytest.mark.integration


async def _create(client: httpx.AsyncClient, path: Path, **params: Any) -> httpx.Response:
    return await client.post("/asr/transcriptions", files=upload_files(path), params=params)


async def _status(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/asr/transcriptions/{job_id}")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_jobs_create_runs_unwatched_to_done_and_stored(
    tmp_path: Path, gateway: RunningGateway
) -> None:
    """202 + Location, nobody watches, GET shows it done with the document; the list has it."""
    audio = make_speech_like_file(tmp_path, total_seconds=20)
    async with gateway.client() as client:
        created = await _create(client, audio)
        assert created.status_code == 202
        body = created.json()
        assert created.headers["location"] == f"/asr/transcriptions/{body['id']}"
        assert body["status"] in ("queued", "running")
        assert body["events_url"] == f"/asr/transcriptions/{body['id']}/events"
        assert set(body) == {
            "id", "document_id", "name", "status", "position", "current_time", "total_time",
            "created_at", "updated_at", "error", "document", "events_url", "live", "ended_by",
        }  # fmt: skip
        service = gateway.app.state.service
        await eventually(lambda: not service.jobs, timeout_seconds=30, what="the job to end")
        done = await _status(client, body["id"])
        assert done["status"] == "done"
        assert done["document"]["document"], "the stored document"
        assert done["current_time"] == done["total_time"] == pytest.approx(25.5, abs=0.01)
        assert done["error"] is None
        listed = (await client.get("/asr/transcriptions", params={"status": "done"})).json()
        assert [item["id"] for item in listed] == [body["id"]]
        cached = await _create(client, audio)
    assert cached.status_code == 200
    assert cached.json()["status"] == "done"
    assert cached.json()["document"] == done["document"]
    assert spooled_files(gateway.settings) == []


async def test_jobs_errors_have_stable_codes(tmp_path: Path, gateway: RunningGateway) -> None:
    """Unknown ids → 404 NOT_FOUND; an empty upload → 400 EMPTY_UPLOAD, nothing created."""
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    async with gateway.client() as client:
        for method, path in [
            ("GET", "/asr/transcriptions/nope"),
            ("DELETE", "/asr/transcriptions/nope"),
            ("GET", "/asr/transcriptions/nope/events"),
            ("GET", "/asr/transcriptions/" + "x" * 500),
        ]:
            response = await client.request(method, path)
            assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
        rejected = await _create(client, empty)
        assert (rejected.status_code, rejected.json()["code"]) == (400, "EMPTY_UPLOAD")
        assert (await client.get("/asr/transcriptions")).json() == []
        bad = await client.get("/asr/transcriptions", params={"limit": 0})
        assert bad.status_code == 422


async def test_jobs_events_deltas_rebuild_the_post_stream_snapshots(tmp_path: Path) -> None:
    """An events stream beside the POST stream of the same job: deltas applied in order give
    exactly the POST stream's full documents, event for event, and the same done."""
    async with WLKSimulator(speed=10.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_speech_like_file(tmp_path, total_seconds=40)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            async with client.stream(
                "POST", "/asr/transcribe/stream", files=upload_files(audio)
            ) as response:
                job_id = response.headers["x-transcription-id"]
                follower = asyncio.create_task(follow_events(gateway.base_url, job_id))
                posted = [frame async for frame in iter_sse(response) if frame.event]
            followed = await follower
    snapshots = [frame.json()["document"] for frame in posted if frame.event == "transcription"]
    rebuilt = followed.documents
    assert rebuilt, "the follower saw transcription events"
    # The follower joined a little later: its states are the POST stream's last ones, in order.
    assert rebuilt == snapshots[len(snapshots) - len(rebuilt) :]
    assert followed.terminal is not None and followed.terminal.json() == posted[-1].json()
    assert [int(frame.id or 0) for frame in posted] == list(range(1, len(posted) + 1))
    assert followed.ids_increase()
    full = [frame.json() for frame in posted if frame.event == "transcription"]
    assert all(a != b for a, b in zip(full, full[1:], strict=False)), "a frame repeated"


async def test_jobs_resume_through_a_cutting_proxy(tmp_path: Path) -> None:
    """Connections cut mid-stream 3 times: httpx-sse resumes with Last-Event-ID, ids strictly
    increase, each connection starts with a snapshot, the done equals an uncut run's, and the
    simulator saw one session."""
    async with WLKSimulator(speed=5.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_speech_like_file(tmp_path, total_seconds=40)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            port = int(gateway.base_url.rsplit(":", 1)[1])
            async with cutting_proxy(port) as proxy:
                created = await _create(client, audio)
                job_id = created.json()["id"]
                followed = await follow_events(
                    proxy.url,
                    job_id,
                    cut_after_events=lambda n: n in (3, 7, 12),
                    cut=proxy.cut,
                )
            sessions_during_cut_run = len(simulator.sessions)
            uncut = await stream_transcription(client, audio, use_cache=False)
    assert proxy.cuts == 3
    assert followed.connections == 4
    assert followed.retries == [settings.transcribe_sse_retry_ms] * 4
    assert followed.ids_increase(), followed.ids
    for first in followed.firsts[1:]:
        resumed = followed.events[first]
        assert resumed.event != "transcription" or resumed.json()["from_index"] == 0
    assert followed.terminal is not None and followed.terminal.event == "done"
    assert followed.terminal.json() == uncut.last.json()
    assert sessions_during_cut_run == 1


async def test_jobs_reconnect_after_done_gets_204_and_starts_nothing(
    tmp_path: Path, gateway: RunningGateway, wlk_simulator: WLKSimulator
) -> None:
    """After done: Last-Event-ID = terminal id → 204; no id → the terminal event alone."""
    audio = make_speech_like_file(tmp_path, total_seconds=10)
    async with gateway.client() as client:
        job_id = (await _create(client, audio)).json()["id"]
        first = await follow_events(gateway.base_url, job_id)
        assert first.terminal is not None and first.terminal.event == "done"
        terminal_id = first.terminal.id
        again = await follow_events(gateway.base_url, job_id, last_event_id=terminal_id)
        assert again.statuses == [204]
        later = await follow_events(gateway.base_url, job_id, last_event_id=str(10**12))
        assert later.statuses == [204]
        alone = await follow_events(gateway.base_url, job_id)
        by_query = await client.get(
            f"/asr/transcriptions/{job_id}/events", params={"last_event_id": terminal_id}
        )
    assert [event.event for event in alone.events] == ["done"]
    assert alone.events[0].id == terminal_id
    assert alone.events[0].json() == first.terminal.json()
    assert by_query.status_code == 204
    assert len(wlk_simulator.sessions) == 1


async def test_jobs_identical_uploads_share_one_session(tmp_path: Path) -> None:
    """5 identical uploads at once on three APIs → one WLK session, 5 identical done documents."""
    async with WLKSimulator(speed=10.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_speech_like_file(tmp_path, total_seconds=20)
        async with run_gateway(settings) as gateway, gateway.client() as client:

            async def via_resource() -> dict[str, Any]:
                created = await _create(client, audio, use_cache="false")
                followed = await follow_events(gateway.base_url, created.json()["id"])
                assert followed.terminal is not None
                return followed.terminal.json()  # type: ignore[no-any-return]

            async def via_stream() -> dict[str, Any]:
                result = await stream_transcription(client, audio, use_cache=False)
                return result.last.json()  # type: ignore[no-any-return]

            async def via_blocking() -> dict[str, Any]:
                response = await client.post(
                    "/asr/transcribe", files=upload_files(audio), params={"use_cache": "false"}
                )
                return response.json()  # type: ignore[no-any-return]

            async with asyncio.timeout(seconds(40)):
                documents = await asyncio.gather(
                    via_resource(), via_stream(), via_blocking(), via_resource(), via_stream()
                )
    assert len(simulator.sessions) == 1
    assert documents[0]["document"]
    assert all(document == documents[0] for document in documents)


async def test_jobs_delete_cancels_for_every_subscriber(tmp_path: Path) -> None:
    """DELETE mid-run: every subscriber (events and POST stream) gets CANCELLED, WLK closed
    within 2 s, nothing stored, status cancelled; a second DELETE → 409 ALREADY_FINISHED."""
    async with WLKSimulator(speed=1.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_speech_like_file(tmp_path, total_seconds=30)
        loop = asyncio.get_running_loop()
        async with run_gateway(settings) as gateway, gateway.client() as client:
            job_id = (await _create(client, audio)).json()["id"]
            followers = [
                asyncio.create_task(follow_events(gateway.base_url, job_id)) for _ in range(2)
            ]
            joined = asyncio.create_task(stream_transcription(client, audio))
            await simulator.wait_for_sessions(1, timeout=seconds(5))
            running = gateway.app.state.service.jobs[0]
            await eventually(lambda: running.subscribers == 3 and running.current_time > 0)
            metrics = (await client.get("/metrics")).text
            assert "aymurai_sse_event_streams_active 2.0" in metrics
            deleted_at = loop.time()
            deleted = await client.delete(f"/asr/transcriptions/{job_id}")
            record = await simulator.wait_for_session_closed(0, timeout=seconds(5))
            closed_after = loop.time() - deleted_at
            results = await asyncio.gather(*followers)
            posted = await joined
            state = await _status(client, job_id)
            again = await client.delete(f"/asr/transcriptions/{job_id}")
            stored = await client.get(f"/asr/validation/document/{state['document_id']}")
            assert spooled_files(settings) == []
    assert deleted.status_code == 204
    assert closed_after < 2.0
    assert record.end_frame_at is None
    for result in results:
        assert result.terminal is not None and result.terminal.event == "error"
        assert result.terminal.json()["code"] == "CANCELLED"
    assert posted.last.event == "error" and posted.last.json()["code"] == "CANCELLED"
    assert state["status"] == "cancelled"
    assert state["error"]["code"] == "CANCELLED"
    assert state["current_time"] > 0, "progress made before the cancel is kept"
    assert (again.status_code, again.json()["code"]) == (409, "ALREADY_FINISHED")
    assert stored.status_code == 404


async def test_jobs_legacy_stream_client_gone_cancels_after_the_grace(tmp_path: Path) -> None:
    """POST stream client leaves: the job waits the grace, then WLK is closed (within grace +
    2 s), nothing stored, status cancelled."""
    grace = 1.0
    async with WLKSimulator(speed=1.0) as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_detached_grace_seconds=grace
        )
        audio = make_speech_like_file(tmp_path, total_seconds=30)
        loop = asyncio.get_running_loop()
        async with run_gateway(settings) as gateway, gateway.client() as client:
            async with asyncio.timeout(seconds(15)):
                async with client.stream(
                    "POST", "/asr/transcribe/stream", files=upload_files(audio)
                ) as response:
                    job_id = response.headers["x-transcription-id"]
                    async for frame in iter_sse(response):
                        if frame.event == "transcription":
                            break
            left_at = loop.time()
            record = await simulator.wait_for_session_closed(0, timeout=seconds(grace + 5))
            closed_after = loop.time() - left_at
            await eventually(lambda: not gateway.app.state.service.jobs, what="the job to end")
            state = await _status(client, job_id)
    assert grace - 0.1 <= closed_after < grace + 2.0
    assert record.end_frame_at is None
    assert state["status"] == "cancelled"


async def test_jobs_legacy_stream_reattached_within_the_grace_completes(tmp_path: Path) -> None:
    """POST stream client leaves, the events stream of its X-Transcription-Id reattaches within
    the grace: the job goes on to done and is stored."""
    async with WLKSimulator(speed=5.0) as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_detached_grace_seconds=30.0
        )
        audio = make_speech_like_file(tmp_path, total_seconds=30)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            async with asyncio.timeout(seconds(15)):
                async with client.stream(
                    "POST", "/asr/transcribe/stream", files=upload_files(audio)
                ) as response:
                    job_id = response.headers["x-transcription-id"]
                    assert "x-transcription-id" in response.headers
                    async for frame in iter_sse(response):
                        if frame.event == "transcription":
                            break
            await eventually(lambda: gateway.app.state.service.jobs[0].subscribers == 0)
            followed = await follow_events(gateway.base_url, job_id)
            state = await _status(client, job_id)
    assert followed.events[0].event == "transcription"
    assert followed.events[0].json()["from_index"] == 0
    assert followed.terminal is not None and followed.terminal.event == "done"
    assert state["status"] == "done"
    assert len(simulator.sessions) == 1


async def test_jobs_cors_exposes_location_and_transcription_id(tmp_path: Path) -> None:
    """A page on another origin can read Location and X-Transcription-Id."""
    async with WLKSimulator(speed=50.0) as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, cors_origins=["http://page.example"]
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            response = await client.post(
                "/asr/transcriptions",
                files=upload_files(audio),
                headers={"Origin": "http://page.example"},
            )
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "location" in exposed and "x-transcription-id" in exposed


async def test_jobs_queued_position_keepalive_and_any_resume_id(tmp_path: Path) -> None:
    """Behind a running job: status queued with position 1, the events stream starts with the
    newest `queued` event whatever Last-Event-ID says (malformed, old, future), keepalives while
    idle; the list is newest first and filters by status."""
    async with WLKSimulator(speed=1.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_max_concurrent_sessions=1,
            transcribe_sse_keepalive_seconds=0.1,
        )
        first_audio = make_speech_like_file(tmp_path, total_seconds=30, name="first.wav")
        second_audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=5.0, name="second.wav")
        async with run_gateway(settings) as gateway, gateway.client() as client:
            first = (await _create(client, first_audio)).json()
            second = (await _create(client, second_audio)).json()
            state = await _status(client, second["id"])
            firsts = []
            for last_event_id in ("garbage", "0", "1", str(10**15), "-5", "9" * 40):
                async with client.stream(
                    "GET",
                    f"/asr/transcriptions/{second['id']}/events",
                    headers={"Last-Event-ID": last_event_id},
                ) as response:
                    assert response.status_code == 200
                    frames = []
                    async for frame in iter_sse(response):
                        frames.append(frame)
                        if len(frames) == 2:
                            break
                firsts.append(frames)
            listed = (await client.get("/asr/transcriptions")).json()
            queued_only = (await client.get("/asr/transcriptions?status=queued")).json()
            await client.delete(f"/asr/transcriptions/{first['id']}")
            await client.delete(f"/asr/transcriptions/{second['id']}")
    assert state["status"] == "queued" and state["position"] == 1
    for frames in firsts:
        assert frames[0].event == "queued"
        assert frames[0].json() == {"document_id": second["document_id"], "position": 1}
        assert frames[0].id == firsts[0][0].id
        assert frames[1].comments == ["keepalive"]
    assert [item["id"] for item in listed] == [second["id"], first["id"]]
    assert [item["id"] for item in queued_only] == [second["id"]]


@pytest.mark.parametrize("profile", ["0.2.17", "0.2.26"])
async def test_jobs_post_stream_never_repeats_a_frame(tmp_path: Path, profile: str) -> None:
    """On both WLK profiles, no transcription frame of the POST stream equals the previous one
    (WLK messages that change nothing visible make no frame), and ids stay 1, 2, 3 …"""
    async with WLKSimulator(profile=profile, speed=10.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_speech_like_file(tmp_path, total_seconds=20)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
    frames = [frame.json() for frame in result.of("transcription")]
    assert len(frames) >= 3
    repeats = [i for i, (a, b) in enumerate(zip(frames, frames[1:], strict=False)) if a == b]
    assert repeats == []
    assert [frame.id for frame in result.events] == [
        str(n) for n in range(1, len(result.events) + 1)
    ]
    assert result.last.event == "done"
