"""Distributed mode end to end (issue 12, "Proven by tests"): real `aymurai-api` replicas on one
PostgreSQL database and one Redis, real simulators with a cap of one session each, a round-robin
balancer in front (test/cluster.py).

What each scenario proves, from outside the gateway only (HTTP, SSE, the simulators' logs):
- 8 uploads through the balancer on 3 replicas and 2 simulators: never more than one session
  per simulator, one global FIFO queue whose positions count down, all 8 done with the right
  text; every events stream resumed once through another replica reaches the same `done`;
- identical uploads on two replicas at once share one WLK session (one job);
- `kill -9` of the replica running a job: its session lease is free within the TTL, another
  replica takes the job over from the shared spool, from its last committed lines, and a
  subscriber elsewhere sees `done`;
- replicas whose wall clocks disagree by ±45 s (libfaketime) keep one FIFO order and the cap.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from test.cluster import Cluster, SessionStats, run_cluster, tone_file, tone_words
from test.e2e import document_words, seconds, upload_files
from test.events import (
    FollowResult,
    follow_events,
    make_speech_like_file,
    wait_until_running,
)
from test.resume import assert_ids_increase

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.redis,
]


async def _upload(client: httpx.AsyncClient, audio: Path) -> dict[str, Any]:
    response = await client.post("/asr/transcriptions", files=upload_files(audio))
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _joined(first: FollowResult, second: FollowResult) -> FollowResult:
    """Two follows of one job (the second resuming the first) as one."""
    offset = len(first.events)
    return FollowResult(
        events=first.events + second.events,
        documents=first.documents + second.documents,
        statuses=first.statuses + second.statuses,
        connections=first.connections + second.connections,
        retries=first.retries + second.retries,
        firsts=first.firsts + [offset + index for index in second.firsts],
        arrived_at=first.arrived_at + second.arrived_at,
    )


async def _follow_resumed_elsewhere(
    cluster: Cluster, job_id: str, first_replica: int, then_replica: int
) -> tuple[FollowResult, list[list[int]]]:
    """Follow a job on one replica for one event, then resume (Last-Event-ID) on another."""
    first = await follow_events(
        cluster.replica_url(first_replica), job_id, stop_after_events=1, timeout_seconds=30
    )
    assert first.statuses == [200] and first.events, (first_replica, first.statuses)
    rest = await follow_events(
        cluster.replica_url(then_replica),
        job_id,
        last_event_id=first.events[-1].id,
        timeout_seconds=60,
    )
    assert rest.statuses and rest.statuses[0] == 200, (then_replica, rest.statuses)
    return _joined(first, rest), [first.ids, rest.ids]


def _positions(followed: FollowResult) -> list[int]:
    return [event.json()["position"] for event in followed.events if event.event == "queued"]


def _started_at(followed: FollowResult) -> float:
    """When the subscriber first saw the job past the queue (loop time)."""
    for event, at in zip(followed.events, followed.arrived_at, strict=True):
        if event.event != "queued":
            return at
    raise AssertionError("the job never left the queue")


def _assert_fifo(starts: list[float], *, tolerance_seconds: float) -> None:
    """No job started before one uploaded earlier (within the subscribers' jitter)."""
    for later in range(1, len(starts)):
        earliest_before = max(starts[:later])
        assert starts[later] >= earliest_before - tolerance_seconds, (
            f"job {later} started {earliest_before - starts[later]:.2f} s before an earlier one"
        )


def _assert_global_positions(followed: list[FollowResult], *, queued: int) -> None:
    """The jobs that waited saw, at first, consecutive positions from 1 in upload order,
    whichever replica took them and served their stream (per-replica queues would repeat
    positions). Each subscriber connected right after its upload, while the first jobs still
    ran, so no position had moved yet. (An upload's own answer may precede its first `queued`
    event: its `position` can still be null, so the streams are the witnesses.)"""
    firsts = [positions[0] for result in followed if (positions := _positions(result))]
    assert firsts == list(range(1, queued + 1)), firsts


async def _assert_nothing_left(cluster: Cluster) -> None:
    async with cluster.client() as client:
        for status in ("queued", "running"):
            left = (await client.get("/asr/transcriptions", params={"status": status})).json()
            assert left == [], f"{status} forever: {left}"
    assert sorted(cluster.spool_dir.glob("aymurai-upload-*")) == []


async def test_replicas_eight_uploads_share_one_queue_and_the_caps(
    tmp_path: Path, postgres_database: str, redis_url: str
) -> None:
    """3 replicas, 2 simulators with cap 1, 8 uploads through the balancer: at most one session
    per simulator (their logs), global positions counting down, FIFO, all 8 right; each events
    stream resumed once through another replica reaches the same done."""
    tones = [440, 500, 550, 600, 660, 700, 770, 800]
    # The first two run while the other six are uploaded; then different lengths free the
    # slots one at a time.
    lengths = [6.0, 6.5, 2.0, 2.5, 3.0, 2.0, 2.5, 3.0]
    audios = [tone_file(tmp_path, hz, lengths[k]) for k, hz in enumerate(tones)]
    async with run_cluster(
        tmp_path,
        replicas=3,
        simulators=2,
        max_sessions=1,
        speed=3.0,
        database_uri=postgres_database,
        redis_url=redis_url,
    ) as cluster:
        created: list[dict[str, Any]] = []
        followers = []
        # A task group: the first failure cancels the other followers.
        async with asyncio.timeout(seconds(90)), asyncio.TaskGroup() as group:
            async with cluster.client() as client:
                for k, audio in enumerate(audios):
                    created.append(await _upload(client, audio))
                    job_id = created[-1]["id"]
                    followers.append(
                        group.create_task(
                            _follow_resumed_elsewhere(cluster, job_id, k % 3, (k + 1) % 3)
                        )
                    )
            assert cluster.balancer.routed[:8] == [0, 1, 2, 0, 1, 2, 0, 1]
        results = [follower.result() for follower in followers]
        async with cluster.client() as client:
            stored = [
                (await client.get(f"/asr/transcriptions/{job['id']}")).json() for job in created
            ]
        await _assert_nothing_left(cluster)
        stats = cluster.session_stats()

    assert [s.max_open for s in stats] == [1, 1], stats
    assert sum(s.opened for s in stats) == 8, stats
    _assert_global_positions([followed for followed, _ in results], queued=6)
    for k, (followed, connections) in enumerate(results):
        assert followed.terminal is not None and followed.terminal.event == "done", k
        assert document_words(followed.terminal.json()) == tone_words(tones[k], lengths[k])
        assert stored[k]["status"] == "done"
        assert stored[k]["document"] == followed.terminal.json()
        assert_ids_increase(connections)
        positions = _positions(followed)
        assert positions == sorted(positions, reverse=True), (k, positions)  # counting down
    last = _positions(results[-1][0])
    assert len(set(last)) >= 2, f"the last upload saw its position count down: {last}"
    _assert_fifo([_started_at(followed) for followed, _ in results], tolerance_seconds=0.3)


async def test_replicas_identical_uploads_on_two_replicas_share_one_session(
    tmp_path: Path, postgres_database: str, redis_url: str
) -> None:
    """The same bytes uploaded to two replicas at once: one job, one WLK session, one done."""
    audio = tone_file(tmp_path, 440, 4.0)
    async with run_cluster(
        tmp_path,
        replicas=2,
        simulators=1,
        max_sessions=2,  # room for two sessions: only coalescing keeps it to one
        speed=2.0,
        database_uri=postgres_database,
        redis_url=redis_url,
    ) as cluster:
        async with cluster.replica_client(0) as first, cluster.replica_client(1) as second:
            created = await asyncio.gather(_upload(first, audio), _upload(second, audio))
        assert created[0]["id"] == created[1]["id"], "one job for one document"
        job_id = created[0]["id"]
        async with asyncio.timeout(seconds(30)):
            followed = await asyncio.gather(
                follow_events(cluster.replica_url(0), job_id),
                follow_events(cluster.replica_url(1), job_id),
            )
        stats = cluster.session_stats()[0]

    assert stats.opened == 1, stats
    for result in followed:
        assert result.terminal is not None and result.terminal.event == "done"
        assert document_words(result.terminal.json()) == tone_words(440, 4.0)
    assert followed[0].terminal is not None and followed[1].terminal is not None
    assert followed[0].terminal.id == followed[1].terminal.id


@dataclass
class KilledOwner:
    followed: FollowResult
    stored: dict[str, Any]
    stats: SessionStats
    killed_at: datetime
    logs: list[str]


async def _kill_owner_mid_job(
    tmp_path: Path,
    audio: Path,
    *,
    postgres_database: str,
    redis_url: str,
    lease_ttl: float,
    kill_after_seconds: float,
    shared_spool: bool = True,
) -> KilledOwner:
    """Upload on replica 0, follow on replica 1, SIGKILL replica 0 once the job has passed
    `kill_after_seconds` of audio; wait for the subscriber to see the end."""
    async with run_cluster(
        tmp_path,
        replicas=3,
        simulators=1,
        max_sessions=1,
        speed=2.0,
        database_uri=postgres_database,
        redis_url=redis_url,
        lease_ttl_seconds=lease_ttl,
        shared_spool=shared_spool,
    ) as cluster:
        async with cluster.replica_client(0) as client:
            job_id = (await _upload(client, audio))["id"]
            subscriber = asyncio.create_task(
                follow_events(cluster.replica_url(1), job_id, timeout_seconds=90)
            )
            await wait_until_running(
                client, job_id, past_seconds=kill_after_seconds, timeout_seconds=40
            )
        killed_at = datetime.now()
        await cluster.kill(0)
        if not shared_spool:
            # Its own disk is gone with it (the replicas here share one machine's filesystem).
            shutil.rmtree(cluster.spool_of(0))
        async with asyncio.timeout(seconds(90)):
            followed = await subscriber
        async with cluster.replica_client(2) as client:
            stored = (await client.get(f"/asr/transcriptions/{job_id}")).json()
        await _assert_nothing_left(cluster)
        return KilledOwner(
            followed=followed,
            stored=stored,
            stats=cluster.session_stats()[0],
            killed_at=killed_at,
            logs=[line for index in (1, 2) for line in cluster.log_lines(index)],
        )


async def test_replicas_kill_9_mid_job_another_replica_takes_it_over(
    tmp_path: Path, postgres_database: str, redis_url: str
) -> None:
    """kill -9 of the replica running a job: the simulator's session closes, a surviving replica
    opens the next one within the lease TTL (the lease was freed, the cap held) and finishes the
    job from the shared spool; a subscriber on another replica sees the right done."""
    lease_ttl = 2.0
    audio = tone_file(tmp_path, 440, 10.0)  # 5 s of work at speed 2: killed well before the end
    outcome = await _kill_owner_mid_job(
        tmp_path,
        audio,
        postgres_database=postgres_database,
        redis_url=redis_url,
        lease_ttl=lease_ttl,
        kill_after_seconds=1.0,
    )
    stats, followed = outcome.stats, outcome.followed
    assert stats.max_open == 1, stats
    assert stats.opened == 2, stats  # the killed replica's session, then the takeover's
    takeover = stats.opened_at[1] - outcome.killed_at
    assert takeover <= timedelta(seconds=seconds(lease_ttl + 5)), takeover
    assert followed.terminal is not None and followed.terminal.event == "done", followed.events
    assert document_words(followed.terminal.json()) == tone_words(440, 10.0)
    assert followed.ids_increase(), followed.ids
    assert outcome.stored["status"] == "done"
    assert outcome.stored["document"] == followed.terminal.json()


async def test_replicas_takeover_resumes_from_the_last_committed_lines(
    tmp_path: Path, postgres_database: str, redis_url: str
) -> None:
    """A job taken over mid-file goes on from its last committed lines, as after an upstream
    failure: the new session hears the file from near the end of those lines, not from 0, and
    the stored transcript is the same as a run without the kill."""
    audio = make_speech_like_file(tmp_path, total_seconds=30)  # 4 bursts of 6 s: 34 s
    outcome = await _kill_owner_mid_job(
        tmp_path,
        audio,
        postgres_database=postgres_database,
        redis_url=redis_url,
        lease_ttl=2.0,
        kill_after_seconds=20.0,  # two bursts committed, the third being heard
    )
    stats, followed = outcome.stats, outcome.followed
    assert (stats.opened, stats.max_open) == (2, 1), stats
    assert stats.audio_seconds[1] <= 34.0 - 12.0, stats  # resumed near 14.5 s − the overlap
    assert any("taken over: resuming from" in line for line in outcome.logs)
    assert followed.terminal is not None and followed.terminal.event == "done", followed.events
    assert document_words(followed.terminal.json()) == tone_words(440, 24.0)
    assert [p["text"].count("f440") for p in followed.terminal.json()["document"]] == [12] * 4
    assert outcome.stored["document"] == followed.terminal.json()


async def test_replicas_kill_9_without_a_shared_spool_ends_the_job_interrupted(
    tmp_path: Path, postgres_database: str, redis_url: str
) -> None:
    """When no other replica can read the dead one's spool, its job ends INTERRUPTED within
    the lease TTL (never left running), and a subscriber on another replica is told."""
    lease_ttl = 2.0
    outcome = await _kill_owner_mid_job(
        tmp_path,
        tone_file(tmp_path, 550, 10.0),
        postgres_database=postgres_database,
        redis_url=redis_url,
        lease_ttl=lease_ttl,
        kill_after_seconds=1.0,
        shared_spool=False,
    )
    followed = outcome.followed
    assert followed.terminal is not None and followed.terminal.event == "error", followed.events
    assert followed.terminal.json()["code"] == "INTERRUPTED"
    assert outcome.stored["status"] == "failed"
    assert outcome.stored["error"]["code"] == "INTERRUPTED"
    assert outcome.stats.opened == 1, outcome.stats  # nobody could go on with it
    ended_at = followed.arrived_at[-1]
    assert ended_at - followed.arrived_at[0] <= seconds(lease_ttl + 10)


async def test_replicas_with_skewed_clocks_keep_one_fifo_order_and_the_cap(
    tmp_path: Path, postgres_database: str, redis_url: str, faketime_library: Path
) -> None:
    """Replica clocks at 0, +45 s and -45 s (libfaketime), one simulator with cap 1, uploads
    taking turns over the replicas: they run one at a time, in upload order."""
    del faketime_library  # required (skip locally, fail in CI); run_cluster finds it itself
    tones = [440, 550, 660, 770, 880, 990]
    lengths = [6.0] + [2.0] * 5  # the first runs while the others are uploaded
    audios = [tone_file(tmp_path, hz, lengths[k]) for k, hz in enumerate(tones)]
    async with run_cluster(
        tmp_path,
        replicas=3,
        simulators=1,
        max_sessions=1,
        speed=3.0,
        database_uri=postgres_database,
        redis_url=redis_url,
        faketime={1: "+45s", 2: "-45s"},
    ) as cluster:
        created: list[dict[str, Any]] = []
        followers = []
        async with asyncio.timeout(seconds(60)), asyncio.TaskGroup() as group:
            for k, audio in enumerate(audios):
                async with cluster.replica_client(k % 3) as client:
                    created.append(await _upload(client, audio))
                subscriber = follow_events(
                    cluster.replica_url((k + 1) % 3), created[-1]["id"], timeout_seconds=60
                )
                followers.append(group.create_task(subscriber))
        results = [follower.result() for follower in followers]
        assert [result.statuses[:1] for result in results] == [[200]] * 6
        await _assert_nothing_left(cluster)
        stats = cluster.session_stats()[0]

    assert (stats.max_open, stats.opened) == (1, 6), stats
    _assert_global_positions(results, queued=5)
    for k, followed in enumerate(results):
        assert followed.terminal is not None and followed.terminal.event == "done", k
        assert document_words(followed.terminal.json()) == tone_words(tones[k], lengths[k])
    starts = [_started_at(followed) for followed in results]
    assert starts == sorted(starts), "one slot: each job starts after the one before it"
