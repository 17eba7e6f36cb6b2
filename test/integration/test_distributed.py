"""Distributed mode, replica by replica: cancelling from any replica, leases given back, Redis
outages, a replica handing its jobs over at shutdown, and starting without Redis.

Replicas run in the test's process (test/replicas.py) on a fresh PostgreSQL database and a fresh
Redis prefix; the Redis outage uses a redis-server of the test's own, killed and started again.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect

from aymurai.simulator import WLKSimulator
from test.e2e import RunningGateway, eventually, poll_until, seconds, upload_files
from test.events import follow_events, make_speech_like_file, wait_until_running
from test.live import LiveResult, collect, make_live_speech, read_pcm, send_in_real_time, ws_url
from test.processes import free_port, gateway_env
from test.redis import own_redis_server, require_redis
from test.replicas import in_process_replicas

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]


async def _create(client: httpx.AsyncClient, audio: Path) -> dict[str, Any]:
    response = await client.post("/asr/transcriptions", files=upload_files(audio))
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def _shared_keys(replica: RunningGateway) -> dict[str, int]:
    """What this gateway holds in Redis now: admission slots and waiting tickets, session
    leases, and the leases of its jobs (document claims and owners)."""
    shared = replica.app.state.distributed.shared
    client: redis.Redis = shared.client
    counts = {
        "active": await client.zcard(shared.key("adm", "active")),
        "queue": await client.zcard(shared.key("adm", "queue")),
        "sessions": 0,
        "jobs": 0,
    }
    async for key in client.scan_iter(match=shared.key("pool", "leases", "*")):
        counts["sessions"] += await client.zcard(key)
    async for _ in client.scan_iter(match=shared.key("jobs", "*", "*")):
        counts["jobs"] += 1
    return counts


NOTHING_HELD = {"active": 0, "queue": 0, "sessions": 0, "jobs": 0}


async def test_delete_on_another_replica_closes_wlk_and_returns_every_lease(
    tmp_path: Path,
) -> None:
    """DELETE on a replica that does not run the job: the replica running it closes the WLK
    session within 3 s, both replicas answer `cancelled`, a follower on the other replica gets
    the CANCELLED error, and no slot, place or lease is left in Redis."""
    audio = make_speech_like_file(tmp_path, total_seconds=30)
    async with (
        WLKSimulator(profile="0.2.26", speed=2.0) as simulator,
        in_process_replicas(tmp_path, 2, ws_uri=simulator.url) as (owner, other),
    ):
        async with owner.client() as client:
            job = await _create(client, audio)
            await wait_until_running(client, job["id"], past_seconds=0.5)
        follower = asyncio.create_task(follow_events(other.base_url, job["id"]))
        async with other.client() as client:
            started = time.monotonic()
            assert (await client.delete(f"/asr/transcriptions/{job['id']}")).status_code == 204
            await eventually(
                lambda: simulator.sessions[-1].closed_at is not None,
                timeout_seconds=3,
                what="the WLK session to close",
            )
            assert time.monotonic() - started < seconds(3)
            followed = await follower
            for replica in (owner, other):
                async with replica.client() as replica_client:
                    state = (await replica_client.get(f"/asr/transcriptions/{job['id']}")).json()
                assert state["status"] == "cancelled", state
        assert followed.terminal is not None and followed.terminal.event == "error"
        assert followed.terminal.json()["code"] == "CANCELLED"
        await poll_until(
            lambda: _shared_keys(owner),
            lambda held: held == NOTHING_HELD,
            what="every lease to be returned",
        )


async def test_redis_outage_refuses_new_work_finishes_running_jobs_and_recovers(
    tmp_path: Path,
) -> None:
    """Redis vanishes mid-job: /readyz answers 503 naming Redis, a new upload gets 503
    REDIS_UNAVAILABLE with Retry-After, the running job finishes and is stored; when Redis is
    back (empty: it keeps nothing on disk), the replica is ready again by itself and transcribes."""
    running_audio = make_speech_like_file(tmp_path, total_seconds=12, name="running.wav")
    later_audio = make_speech_like_file(tmp_path, total_seconds=4, name="later.wav")
    async with (
        own_redis_server() as redis_server,
        WLKSimulator(profile="0.2.26", speed=4.0) as simulator,
        in_process_replicas(tmp_path, 1, ws_uri=simulator.url, redis_url=redis_server.url) as (
            replica,
        ),
        replica.client() as client,
    ):
        assert (await client.get("/readyz")).json()["checks"]["redis"] == "ok"
        job = await _create(client, running_audio)
        await wait_until_running(client, job["id"], past_seconds=0.5)
        await redis_server.stop()

        async def readiness() -> httpx.Response:
            return await client.get("/readyz")

        unready = await poll_until(
            readiness, lambda r: r.status_code == 503, timeout_seconds=10, what="/readyz 503"
        )
        metrics = (await client.get("/metrics")).text
        assert "aymurai_redis_up 0.0" in metrics
        redis_check = unready.json()["checks"]["redis"]
        assert redis_check.startswith("REDIS_UNAVAILABLE: cannot reach Redis at"), redis_check
        refused = await client.post("/asr/transcriptions", files=upload_files(later_audio))
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "REDIS_UNAVAILABLE"
        assert int(refused.headers["retry-after"]) > 0

        finished = await poll_until(
            lambda: client.get(f"/asr/transcriptions/{job['id']}"),
            lambda r: r.json()["status"] not in ("queued", "running"),
            timeout_seconds=30,
            what="the running job to end",
        )
        assert finished.json()["status"] == "done", finished.json()
        assert finished.json()["document"]["document"], "the running job's transcript is stored"

        await redis_server.start()
        await poll_until(
            readiness, lambda r: r.status_code == 200, timeout_seconds=10, what="/readyz 200"
        )
        later = await _create(client, later_audio)
        followed = await follow_events(replica.base_url, later["id"])
        assert followed.terminal is not None and followed.terminal.event == "done"


async def test_shutdown_hands_jobs_over_at_once(tmp_path: Path) -> None:
    """SIGTERM-like shutdown of the replica running a job, with a grace shorter than the job:
    its lease is released at once (not left to expire) and another replica takes the job over
    and finishes it; a follower on that replica sees `done`."""
    audio = make_speech_like_file(tmp_path, total_seconds=20)
    lease_ttl = 30.0  # far longer than the test: only an immediate hand-over can pass
    async with (
        WLKSimulator(profile="0.2.26", speed=4.0) as simulator,
        in_process_replicas(
            tmp_path,
            2,
            ws_uri=simulator.url,
            transcribe_redis_lease_ttl_seconds=lease_ttl,
            transcribe_shutdown_grace_seconds=0.2,
        ) as (leaving, staying),
    ):
        async with leaving.client() as client:
            job = await _create(client, audio)
            await wait_until_running(client, job["id"], past_seconds=0.5)
        started = time.monotonic()
        leaving.server.should_exit = True  # what SIGTERM does
        followed = await follow_events(staying.base_url, job["id"], timeout_seconds=60)
        assert followed.terminal is not None and followed.terminal.event == "done"
        assert time.monotonic() - started < seconds(lease_ttl / 2)
        async with staying.client() as client:
            state = (await client.get(f"/asr/transcriptions/{job['id']}")).json()
        assert state["status"] == "done"


async def test_startup_without_redis_exits_non_zero_naming_redis(tmp_path: Path) -> None:
    """Distributed mode needs Redis from the start: the process exits non-zero with one line."""
    require_redis()  # the tier's requirement; this test itself needs Redis down
    script = Path(sys.executable).parent / "aymurai-api"
    url = f"redis://127.0.0.1:{free_port()}/0"
    process = await asyncio.create_subprocess_exec(
        str(script),
        cwd=tmp_path,
        env=gateway_env(
            API_PORT=str(free_port()),
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'gateway.db'}",
            TRANSCRIBE_SPOOL_DIR=str(tmp_path / "spool"),
            TRANSCRIBE_REDIS_URL=url,
        ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(seconds(30)):
        output, _ = await process.communicate()
    lines = output.decode().strip().splitlines()
    assert process.returncode != 0
    assert len(lines) == 1, lines
    assert "Redis" in lines[0] and url in lines[0], lines


async def test_a_live_session_is_followed_from_another_replica(tmp_path: Path) -> None:
    """A microphone on one replica, its events stream read on another: the same `line`s, once
    each and in order, then `done` equal to what the live client got."""
    pcm = read_pcm(make_live_speech(tmp_path))
    async with (
        WLKSimulator(profile="0.2.26", speed=50.0, pause_seconds=0.5) as simulator,
        in_process_replicas(tmp_path, 2, ws_uri=simulator.url) as (owner, other),
    ):
        live = LiveResult()
        async with (
            asyncio.timeout(seconds(60)),
            connect(ws_url(owner.base_url), max_size=None) as socket,
        ):
            reader = asyncio.create_task(collect(socket, live))
            await eventually(lambda: bool(live.of("session")), what="the session message")
            follower = asyncio.create_task(follow_events(other.base_url, live.session["id"]))
            await send_in_real_time(socket, pcm, speed=2.0)
            await socket.send(b"")
            await reader
            followed = await follower
    assert live.kinds[-1] == "done"
    lines = [event.json() for event in followed.events if event.event == "line"]
    assert lines, followed.events
    assert [line["index"] for line in lines] == list(range(len(lines)))
    assert [line["paragraph"] for line in lines] == [
        message["paragraph"] for message in live.of("line")
    ][: len(lines)]
    assert followed.terminal is not None and followed.terminal.event == "done"
    assert followed.terminal.json()["document"] == live.of("done")[0]["document"]["document"]
