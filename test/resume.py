"""Client resume tests' shared setup: a paced job behind a cutting proxy, cut as the job advances.

The clients under test (the CLI, the npm `eventsource` package, Chromium's `EventSource`) run in
their own processes and tell us nothing about their progress, so the cuts follow the job instead:
`cut_as_job_advances()` polls the job on the gateway directly (not through the proxy) and cuts
every connection through the proxy when the job's audio position passes each fraction of the
total, after the client has reconnected since the previous cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from aymurai.simulator import WLKSimulator
from test.e2e import RunningGateway, eventually, make_settings, run_gateway, seconds
from test.events import make_speech_like_file
from test.proxy import CuttingProxy, cutting_proxy

# An EventSource waits `retry` before reconnecting: short, so that three cuts cost little time.
RETRY_MS = 300
CUT_AT = (0.25, 0.5, 0.75)


@dataclass
class ResumeSetup:
    simulator: WLKSimulator
    gateway: RunningGateway
    proxy: CuttingProxy
    audio: Path


@asynccontextmanager
async def resume_setup(
    tmp_path: Path, *, total_seconds: float = 40.0, speed: float = 5.0, **overrides: Any
) -> AsyncIterator[ResumeSetup]:
    """A simulator at `speed`, a gateway with a short `retry`, a proxy in front of it, audio."""
    audio = make_speech_like_file(tmp_path, total_seconds=total_seconds)
    async with WLKSimulator(speed=speed) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_sse_retry_ms=RETRY_MS,
            **overrides,
        )
        async with run_gateway(settings) as gateway:
            port = int(gateway.base_url.rsplit(":", 1)[1])
            async with cutting_proxy(port) as proxy:
                yield ResumeSetup(simulator, gateway, proxy, audio)


async def newest_job(client: httpx.AsyncClient, *, timeout_seconds: float = 20.0) -> str:
    """The id of the newest job, once there is one."""
    async with asyncio.timeout(seconds(timeout_seconds)):
        while True:
            jobs = (await client.get("/asr/transcriptions", params={"limit": 1})).json()
            if jobs:
                return str(jobs[0]["id"])
            await asyncio.sleep(0.05)


async def cut_as_job_advances(
    setup: ResumeSetup,
    job_id: str,
    *,
    fractions: tuple[float, ...] = CUT_AT,
    timeout_seconds: float = 60.0,
) -> None:
    """Cut the proxy's connections when the job passes each fraction of its audio."""
    proxy = setup.proxy
    async with setup.gateway.client() as client, asyncio.timeout(seconds(timeout_seconds)):
        for fraction in fractions:
            while True:
                job = (await client.get(f"/asr/transcriptions/{job_id}")).json()
                assert job["status"] in ("queued", "running"), (
                    f"the job ended before the cut: {job}"
                )
                if job["total_time"] and job["current_time"] >= fraction * job["total_time"]:
                    break
                await asyncio.sleep(0.05)
            accepted = proxy.connections_accepted
            proxy.cut()
            # The next cut must find the client connected again, or it would cut nothing.
            await eventually(
                lambda accepted=accepted: proxy.connections_accepted > accepted,
                timeout_seconds=10,
                what="the client to reconnect after a cut",
            )


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, *statuses: str, timeout_seconds: float = 60.0
) -> dict[str, Any]:
    """The job once its status is one of `statuses`."""
    async with asyncio.timeout(seconds(timeout_seconds)):
        while True:
            job: dict[str, Any] = (await client.get(f"/asr/transcriptions/{job_id}")).json()
            if job["status"] in statuses:
                return job
            await asyncio.sleep(0.05)


def assert_ids_increase(connections: list[list[int]]) -> None:
    """Ids strictly increase, except that a connection's first id (the resume snapshot) may
    repeat the previous connection's last one when nothing happened meanwhile (docs/jobs.md)."""
    previous: int | None = None
    for ids in connections:
        assert ids == sorted(set(ids)), f"ids within a connection must increase: {ids}"
        if ids and previous is not None:
            assert ids[0] >= previous, f"a resume went back from {previous} to {ids[0]}"
        if ids:
            previous = ids[-1]
