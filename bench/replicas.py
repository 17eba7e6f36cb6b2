"""Replicas: events-stream delivery lag and CPU per replica, 1 replica vs 3, many subscribers.

Starts a cluster of real processes with test/cluster.py (one WLK simulator with room for every
job, N `aymurai-api` replicas on one database and, in distributed mode, one Redis), uploads a few
speech-like WAVs (one per job, to replicas in turn: the job runs on the replica that received
it) and opens S subscribers of `/asr/transcriptions/{id}/events`, spread over the jobs and the
replicas (subscriber k follows job k mod J on replica (k div J) mod N, connecting to the replica
directly, as a balancer would spread them). Raw asyncio sockets read the streams (bench/sse.py's
reader: no SSE library in the measurement path).

- lag: for every event of a job, each subscriber's receive time minus the earliest receive time
  of that event id among the job's subscribers (the earliest is, in practice, a subscriber on
  the owner replica: the owner's event, as seen from outside), p50/p99/max; also for the
  subscribers on other replicas alone. Each subscriber's first frame (its snapshot) is left out.
- CPU: user + system seconds of each replica process (psutil) over the run.

Each configuration runs `--repeats` times on the same cluster (fresh audio each time); the
report gives medians over the repeats.

    .venv/bin/python bench/replicas.py [--replicas 1 3] [--subscribers 300] [--jobs 3]
        [--audio-seconds 120] [--speed 10] [--repeats 3] [--database postgres|sqlite]

Distributed mode needs `TRANSCRIBE_REDIS_URL` (e.g. redis://127.0.0.1:6379/0): every
configuration then runs with it (1 vs 3 replicas on PostgreSQL + Redis). Unset, only the
1-replica configuration runs, in-process (the embedded default): a baseline. PostgreSQL is
AYMURAI_TEST_POSTGRES_URI's server (a fresh database per configuration); `--database sqlite`
uses a SQLite file instead.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sse import RESULTS, StreamStats, open_events, write_speech_like_wav  # noqa: E402
from test.cluster import Cluster, run_cluster  # noqa: E402
from test.postgres import fresh_postgres_database  # noqa: E402

# Every upload is a different document (never a cache hit, never joined): a salt per file.
SALTS = itertools.count(1)


@dataclass
class Run:
    """One repeat of one configuration."""

    replicas: int
    subscribers: int
    events: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    other_p50_ms: float | None  # subscribers not on the job's replica
    other_p99_ms: float | None
    cpu_seconds: list[float]  # per replica
    wall_seconds: float
    all_done: bool


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def upload(base_url: str, path: Path) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        with path.open("rb") as source:
            created = await client.post(
                "/asr/transcriptions",
                params={"use_cache": "false"},
                files={"file": (path.name, source, "audio/wav")},
            )
    created.raise_for_status()
    return str(created.json()["id"])


async def measure(
    cluster: Cluster, workdir: Path, *, jobs: int, subscribers: int, minutes: float
) -> Run:
    replicas = len(cluster.replicas)
    audios = []
    for _ in range(jobs):
        salt = next(SALTS)
        path = workdir / f"speech-{salt}.wav"
        write_speech_like_wav(path, minutes, salt=salt)
        audios.append(path)
    processes = [psutil.Process(replica.process.process.pid) for replica in cluster.replicas]
    cpu_before = [cpu_seconds(process) for process in processes]
    started = time.monotonic()
    owners = [j % replicas for j in range(jobs)]
    job_ids = await asyncio.gather(
        *(upload(cluster.replica_url(owners[j]), audio) for j, audio in enumerate(audios))
    )
    # Subscriber k: job k mod J, on replica (k div J) mod N.
    placement = [(k % jobs, (k // jobs) % replicas) for k in range(subscribers)]
    stats = [StreamStats() for _ in placement]
    await asyncio.gather(
        *(
            open_events(cluster.replicas[replica].port, job_ids[job], stats[k])
            for k, (job, replica) in enumerate(placement)
        )
    )
    wall = time.monotonic() - started
    cpu = [
        cpu_seconds(process) - before for process, before in zip(processes, cpu_before, strict=True)
    ]
    for audio in audios:
        audio.unlink()

    first_seen: dict[tuple[int, str], float] = {}
    for s, (job, _) in zip(stats, placement, strict=True):
        for event_id, at in s.received[1:]:  # the first frame is each one's snapshot
            key = (job, event_id)
            first_seen[key] = min(first_seen.get(key, at), at)
    lags: list[float] = []
    other_lags: list[float] = []
    for s, (job, replica) in zip(stats, placement, strict=True):
        for event_id, at in s.received[1:]:
            lag = (at - first_seen[(job, event_id)]) * 1000
            lags.append(lag)
            if replica != owners[job]:
                other_lags.append(lag)
    return Run(
        replicas=replicas,
        subscribers=subscribers,
        events=len(first_seen),
        p50_ms=percentile(lags, 0.50),
        p99_ms=percentile(lags, 0.99),
        max_ms=max(lags),
        other_p50_ms=percentile(other_lags, 0.50) if other_lags else None,
        other_p99_ms=percentile(other_lags, 0.99) if other_lags else None,
        cpu_seconds=cpu,
        wall_seconds=wall,
        all_done=all(s.last_event == "done" for s in stats),
    )


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    with fresh_postgres_database() as uri:
        yield uri


async def run_configuration(
    args: argparse.Namespace, replicas: int, redis_url: str | None, database_uri: str, tmp: Path
) -> list[Run]:
    runs = []
    async with run_cluster(
        tmp,
        replicas=replicas,
        simulators=1,
        max_sessions=args.jobs,
        speed=args.speed,
        database_uri=database_uri,
        redis_url=redis_url,
        LOG_LEVEL="WARNING",
        TRANSCRIBE_SSE_MIN_EVENT_INTERVAL_SECONDS=str(args.min_event_interval),
    ) as cluster:
        for repeat in range(args.repeats):
            run = await measure(
                cluster,
                tmp,
                jobs=args.jobs,
                subscribers=args.subscribers,
                minutes=args.audio_seconds / 60,
            )
            cpu = " ".join(f"{seconds:.2f}" for seconds in run.cpu_seconds)
            print(
                f"{replicas} replica(s), repeat {repeat + 1}: {run.events} events, lag p50 "
                f"{run.p50_ms:.1f} ms p99 {run.p99_ms:.1f} ms, CPU s per replica {cpu}, "
                f"wall {run.wall_seconds:.1f} s, all done: {run.all_done}",
                flush=True,
            )
            runs.append(run)
    return runs


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def summary_row(runs: list[Run]) -> str:
    replicas = runs[0].replicas
    per_replica = [median([run.cpu_seconds[i] for run in runs]) for i in range(replicas)]
    others = [run.other_p50_ms for run in runs if run.other_p50_ms is not None]
    others99 = [run.other_p99_ms for run in runs if run.other_p99_ms is not None]
    other = f"{median(others):.1f} / {median(others99):.1f}" if others else "–"
    return (
        f"| {replicas} | {runs[0].subscribers} | {median([r.events for r in runs]):.0f} "
        f"| {median([r.p50_ms for r in runs]):.1f} | {median([r.p99_ms for r in runs]):.1f} "
        f"| {median([r.max_ms for r in runs]):.1f} | {other} "
        f"| {' / '.join(f'{c:.2f}' for c in per_replica)} | {sum(per_replica):.2f} "
        f"| {median([r.wall_seconds for r in runs]):.1f} | {all(r.all_done for r in runs)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--audio-seconds", type=float, default=120.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-event-interval", type=float, default=0.25)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    redis_url = os.environ.get("TRANSCRIBE_REDIS_URL") or None
    configurations = args.replicas
    if redis_url is None and any(n > 1 for n in configurations):
        print("TRANSCRIBE_REDIS_URL is unset: running the 1-replica baseline only", flush=True)
        configurations = [1]
    mode = "distributed (Redis)" if redis_url else "in-process (no Redis)"
    results: list[list[Run]] = []
    for replicas in configurations:
        with tempfile.TemporaryDirectory(prefix="aymurai-bench-replicas-") as tmp:
            workdir = Path(tmp)
            with database(args.database, workdir) as database_uri:
                results.append(
                    asyncio.run(run_configuration(args, replicas, redis_url, database_uri, workdir))
                )
    table = [
        "| replicas | subscribers | events | lag p50 (ms) | lag p99 (ms) | lag max (ms) "
        "| other replicas p50 / p99 (ms) | CPU s per replica | CPU s total | wall (s) "
        "| all done |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(summary_row(runs) for runs in results),
    ]
    report = "\n".join(
        [
            f"# Replicas: events delivery lag and CPU, {dt.date.today().isoformat()}",
            "",
            f"{mode}, {args.database}; {args.jobs} jobs of {args.audio_seconds:g} s speech-like "
            f"audio at {args.speed:g}x on one simulator, uploaded to the replicas in turn; "
            f"{args.subscribers} subscribers of the events stream spread over jobs and replicas; "
            f"min event interval {args.min_event_interval:g} s; medians of {args.repeats} "
            f"repeats. Machine: {platform.machine()}, {os.cpu_count()} CPUs (the subscribers, "
            "the simulator and the replicas share them).",
            "",
            "Lag = a subscriber's receive time of an event minus the earliest receive time of "
            "the same event id among that job's subscribers (all in one client process, so its "
            "own scheduling is included). CPU = user + system seconds of each `aymurai-api` "
            "process from the first upload to the last subscriber's `done`.",
            "",
            *table,
            "",
            "Reproduce: `"
            + ("TRANSCRIBE_REDIS_URL=redis://127.0.0.1:6379/0 " if redis_url else "")
            + ".venv/bin/python "
            f"bench/replicas.py --replicas {' '.join(map(str, args.replicas))} --subscribers "
            f"{args.subscribers} --jobs {args.jobs} --audio-seconds {args.audio_seconds:g} "
            f"--speed {args.speed:g} --repeats {args.repeats}`",
        ]
    )
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"replicas-{dt.date.today().isoformat()}.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
