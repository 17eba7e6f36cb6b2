"""The npm `eventsource` package (Node 20) on the events stream: resume through cuts, then 204.

`test/node/follow.mjs` runs as a subprocess (installed by `make install-node`) and prints one JSON
line per HTTP answer, event and connection error; the proxy (test/proxy.py) cuts its connections.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aymurai.simulator import WLKSimulator
from test.e2e import (
    make_settings,
    require,
    run_gateway,
    seconds,
    stream_transcription,
    upload_files,
)
from test.events import apply_transcription, make_speech_like_file
from test.resume import RETRY_MS, assert_ids_increase, cut_as_job_advances, resume_setup

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
FOLLOW = NODE_DIR / "follow.mjs"


def require_node() -> str:
    node = shutil.which("node")
    require(node is not None, "node is missing: run `make install-node`")
    require(
        (NODE_DIR / "node_modules" / "eventsource").is_dir(),
        "the eventsource package is missing: run `make install-node`",
    )
    assert node is not None
    return node


@asynccontextmanager
async def node_follower(url: str, mode: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        require_node(),
        str(FOLLOW),
        url,
        mode,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        cwd=NODE_DIR,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def read_lines(process: asyncio.subprocess.Process, timeout_seconds: float = 60) -> list[Any]:
    """Every JSON line up to `closed` (the script exits then)."""
    assert process.stdout is not None
    lines: list[Any] = []
    async with asyncio.timeout(seconds(timeout_seconds)):
        while line := await process.stdout.readline():
            lines.append(json.loads(line))
        assert await process.wait() == 0
    assert lines and lines[-1] == {"kind": "closed"}, lines
    return lines


def events_of(lines: list[Any]) -> list[Any]:
    return [line for line in lines if line["kind"] == "event"]


async def test_node_eventsource_resumes_through_cutting_proxy(tmp_path: Path) -> None:
    """Cut 3 times: `eventsource` reconnects by itself with Last-Event-ID, ids strictly increase,
    the deltas rebuild the done document, which equals an uncut run's; one WLK session."""
    async with resume_setup(tmp_path) as setup:
        async with setup.gateway.client() as client:
            created = (
                await client.post("/asr/transcriptions", files=upload_files(setup.audio))
            ).json()
            async with node_follower(setup.proxy.url + created["events_url"], "close") as node:
                reader = asyncio.create_task(read_lines(node))
                await cut_as_job_advances(setup, created["id"])
                lines = await reader
            sessions_of_cut_run = len(setup.simulator.sessions)
            uncut = await stream_transcription(client, setup.audio, use_cache=False)
    events = events_of(lines)
    connections: list[list[int]] = []
    for line in lines:
        if line["kind"] == "response":
            connections.append([])
        elif line["kind"] == "event":
            connections[-1].append(int(line["id"]))
    assert len(connections) == 4
    assert_ids_increase(connections)
    assert events[-1]["type"] == "done"
    assert events[-1]["data"] == uncut.last.json()
    responses = [line for line in lines if line["kind"] == "response"]
    assert [response["status"] for response in responses] == [200] * 4
    resumed_from = [response["last_event_id"] for response in responses[1:]]
    assert all(resumed_from) and [int(i) for i in resumed_from] == sorted(map(int, resumed_from))
    assert set(resumed_from) <= {event["id"] for event in events}
    document: list[Any] = []
    for event in events:
        if event["type"] == "transcription":
            document = apply_transcription(document, event["data"])
    assert document == events[-1]["data"]["document"]
    assert setup.proxy.cuts == 3
    assert sessions_of_cut_run == 1


async def test_node_eventsource_left_open_after_done_gets_204(tmp_path: Path) -> None:
    """Left open after `done`, `eventsource` reconnects with the done id and gets 204: it stops,
    and the gateway starts no job and no WLK session."""
    audio = make_speech_like_file(tmp_path, total_seconds=10)
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_sse_retry_ms=RETRY_MS
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            created = (await client.post("/asr/transcriptions", files=upload_files(audio))).json()
            async with node_follower(gateway.base_url + created["events_url"], "stay") as node:
                lines = await read_lines(node)
            jobs = (await client.get("/asr/transcriptions")).json()
    events = events_of(lines)
    assert events[-1]["type"] == "done"
    responses = [line for line in lines if line["kind"] == "response"]
    assert [response["status"] for response in responses] == [200, 204]
    assert responses[1]["last_event_id"] == events[-1]["id"]
    assert lines[-2] == {"kind": "connection_error", "code": 204, "ready_state": 2}
    assert [job["id"] for job in jobs] == [created["id"]]
    assert len(simulator.sessions) == 1
