"""The cluster harness itself (test/cluster.py, test/balancer.py), on what works without Redis.

Replicas without `TRANSCRIBE_REDIS_URL` are independent gateways sharing a database: each keeps
its own session cap, and a job's live events are served by the replica running it only. These
tests prove the harness's parts (processes, logs, balancer, kill/restart, libfaketime), so the
distributed-mode scenarios (test_replicas.py) fail only for reasons of the gateway.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from test.balancer import round_robin_balancer
from test.cluster import run_cluster, tone_file, tone_words
from test.e2e import document_words, eventually, upload_files
from test.events import follow_events

pytestmark = pytest.mark.integration


@pytest.mark.postgres
async def test_cluster_two_replicas_behind_the_balancer_on_postgres(
    tmp_path: Path, postgres_database: str
) -> None:
    """Two uploads through the balancer land on the two replicas, both end done on the one
    simulator; without Redis each replica keeps its own cap (the log shows 2 sessions at once);
    SSE flows through a balancer unbuffered; a killed replica is skipped, then restarted."""
    audios = [tone_file(tmp_path, 440, 4.0), tone_file(tmp_path, 550, 4.0)]
    async with run_cluster(
        tmp_path, replicas=2, simulators=1, speed=2.0, database_uri=postgres_database
    ) as cluster:
        async with cluster.client() as client:
            created = [
                await client.post("/asr/transcriptions", files=upload_files(audio))
                for audio in audios
            ]
        assert [response.status_code for response in created] == [202, 202]
        jobs = [response.json()["id"] for response in created]
        owners = cluster.balancer.routed[:2]
        assert owners == [0, 1], "one connection per request, in turn"

        # The owner's stream through a one-backend balancer: the first event arrives while the
        # job still runs (nothing buffered), then a resume reaches done.
        async with round_robin_balancer([cluster.replicas[0].port]) as direct:
            first = await follow_events(direct.url, jobs[0], stop_after_events=1)
            async with cluster.replica_client(0) as client:
                status = (await client.get(f"/asr/transcriptions/{jobs[0]}")).json()["status"]
            assert status in ("queued", "running"), "the first event came before the end"
            rest = await follow_events(direct.url, jobs[0], last_event_id=first.events[-1].id)
        second = await follow_events(cluster.replica_url(1), jobs[1])
        # Finished jobs are in the shared database: the other replica serves the stored done.
        stored = await follow_events(cluster.replica_url(1), jobs[0])

        # The simulator logs a session's close just after the gateway has sent done.
        await eventually(
            lambda: cluster.session_stats()[0].closed == 2, what="both sessions closed"
        )
        stats = cluster.session_stats()[0]
        assert (stats.opened, stats.max_open) == (2, 2), "per-replica caps without Redis"

        await cluster.kill(1)
        assert not cluster.replicas[1].alive
        async with cluster.client() as client:
            answers = [(await client.get("/healthz")).status_code for _ in range(3)]
        assert answers == [200] * 3
        assert cluster.balancer.connect_failures[1] >= 1, "the dead replica was tried, skipped"

        await cluster.restart(1)
        async with cluster.replica_client(1) as client:
            assert (await client.get("/healthz")).status_code == 200
        assert len(cluster.replicas[1].incarnations) == 2
        assert await cluster.terminate(0) in (0, -signal.SIGTERM)

    assert rest.terminal is not None and rest.terminal.event == "done"
    assert document_words(rest.terminal.json()) == tone_words(440, 4.0)
    assert second.terminal is not None and second.terminal.event == "done"
    assert document_words(second.terminal.json()) == tone_words(550, 4.0)
    assert [event.event for event in stored.events] == ["done"]
    assert stored.events[0].json() == rest.terminal.json()
    logs = cluster.log_lines(1)
    assert sum("Application startup complete" in line for line in logs) == 2, "two incarnations"


async def test_cluster_faketime_shifts_one_replicas_wall_clock_only(
    tmp_path: Path, faketime_library: Path
) -> None:
    """A replica under libfaketime +45 s answers with a `Date` 45 s ahead, and still transcribes
    (its monotonic clock, which asyncio times with, is not shifted); its neighbour is on time."""
    del faketime_library  # required (skip locally, fail in CI); run_cluster finds it itself
    audio = tone_file(tmp_path, 660, 2.0)
    async with run_cluster(
        tmp_path, replicas=2, simulators=1, speed=8.0, faketime={1: "+45s"}
    ) as cluster:
        skews = []
        for index in (0, 1):
            async with cluster.replica_client(index) as client:
                response = await client.get("/healthz")
            skew = parsedate_to_datetime(response.headers["date"]) - datetime.now(UTC)
            skews.append(skew.total_seconds())
        async with cluster.replica_client(1) as client:
            created = await client.post("/asr/transcriptions", files=upload_files(audio))
        async with asyncio.timeout(30):
            followed = await follow_events(cluster.replica_url(1), created.json()["id"])
    # `Date` has whole seconds and uvicorn refreshes it once a second: up to 2 s behind.
    assert -2.5 <= skews[0] <= 1.0, skews
    assert 45 - 2.5 <= skews[1] <= 45 + 1.0, skews
    assert followed.terminal is not None and followed.terminal.event == "done"
    assert document_words(followed.terminal.json()) == tone_words(660, 2.0)
