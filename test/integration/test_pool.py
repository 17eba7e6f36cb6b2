"""A pool of WLK servers: per-server session caps, failover with resume, and a server coming back
(two simulators over real sockets)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import httpx
import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import (
    document_words,
    eventually,
    iter_sse,
    make_settings,
    run_gateway,
    seconds,
    stream_transcription,
    upload_files,
)

pytestmark = pytest.mark.integration

JOBS = 8
CAP = 2


def job_segments(index: int) -> list[tuple[float, float]]:
    """16 s of tones, different per job (so each upload is its own document), no pause."""
    base = 300 + 40 * index
    return [(base + 10 * k, 2.0) for k in range(8)]


def expected_words(index: int) -> list[str]:
    return [f"f{int(hz)}" for hz, length in job_segments(index) for _ in range(int(length * 2))]


async def backend_up(client: httpx.AsyncClient, name: str) -> float:
    """The `aymurai_upstream_backend_up` value for `name`, read from /metrics."""
    text = (await client.get("/metrics")).text
    match = re.search(rf'aymurai_upstream_backend_up{{backend="{re.escape(name)}"}} (\S+)', text)
    assert match, text
    return float(match.group(1))


async def _wait_until_down(client: httpx.AsyncClient, name: str) -> None:
    async with asyncio.timeout(seconds(20)):
        while True:
            if await backend_up(client, name) == 0:
                return
            await asyncio.sleep(0.05)


async def test_pool_caps_fails_over_and_uses_a_server_that_came_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """8 uploads over two servers capped at 2: never more than 2 sessions on either; one stopped
    mid-run: its jobs resume on the other, all 8 complete right; back, it is used again."""
    caplog.set_level(logging.INFO, logger="aymurai.simulator.server")
    async with WLKSimulator(speed=8.0) as first, WLKSimulator(speed=8.0) as second:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=f"{first.url}#max_sessions={CAP},{second.url}#max_sessions={CAP}",
            transcribe_ws_probe_ttl_seconds=0.2,
            transcribe_ws_resume_timeout_seconds=seconds(30),
            # Audio received ≈ audio transcribed: the stopped jobs resume well into their files.
            transcribe_ws_lead_budget_seconds=3.0,
        )
        files = [
            make_audio_file(tmp_path, fmt="wav_s16", tone_hz=job_segments(i), name=f"job{i}")
            for i in range(JOBS)
        ]
        async with run_gateway(settings) as gateway, gateway.client() as client:
            uploads = [
                asyncio.create_task(stream_transcription(client, path, timeout_seconds=90))
                for path in files
            ]
            # Both servers full, the first one well into its files: stop it.
            await eventually(
                lambda: (
                    first.open_sessions == CAP
                    and second.open_sessions == CAP
                    and all(r.audio_seconds >= 8 for r in first.sessions if not r.is_closed)
                ),
                timeout_seconds=30,
                what="both servers busy",
            )
            await first.stop()
            await _wait_until_down(client, first.url)
            restarted_at = time.monotonic()
            await first.start()
            results = await asyncio.gather(*uploads)

    for index, result in enumerate(results):
        assert result.last.event == "done", result.last.data
        assert document_words(result.last.json()) == expected_words(index)
    resumed = [result for result in results if result.of("upstream")]
    assert len(resumed) == CAP, "the jobs of the stopped server resume"
    for result in resumed:
        assert result.of("upstream")[0].json()["resume_from"] > 0
    assert first.max_concurrent_sessions <= CAP
    assert second.max_concurrent_sessions <= CAP
    # From the simulators' logs as well: "session N opened (K open)".
    opened = [int(m) for m in re.findall(r"opened \((\d+) open\)", caplog.text)]
    assert opened and max(opened) <= CAP
    used_after_restart = [r for r in first.sessions if r.opened_at > restarted_at and r.pcm]
    assert used_after_restart, "the server that came back gets jobs again"


async def test_pool_refused_connection_tries_the_next_server(tmp_path: Path) -> None:
    """A server that refuses the handshake is skipped: the job completes on the next one."""
    async with (
        WLKSimulator(speed=20.0, fault="handshake_refused") as refusing,
        WLKSimulator(speed=20.0) as healthy,
    ):
        # Three free slots on the refusing one, one on the healthy one: the refusing one is
        # picked first (most free slots).
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=f"{refusing.url}#max_sessions=3,{healthy.url}#max_sessions=1",
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", tone_hz=job_segments(0), name="refused")
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
            ready = (await client.get("/readyz")).json()
            metrics = (await client.get("/metrics")).text
    assert result.last.event == "done"
    assert document_words(result.last.json()) == expected_words(0)
    assert refusing.refused_handshakes >= 1
    assert len(healthy.sessions) >= 1
    assert {s["name"]: s["state"] for s in ready["upstreams"]} == {
        refusing.url: "down",
        healthy.url: "up",
    }
    assert ready["status"] == "ready"
    refused = f'backend="{refusing.url}",code="UPSTREAM_UNAVAILABLE"'
    assert f"aymurai_upstream_backend_failures_total{{{refused}}}" in metrics
    assert f'aymurai_upstream_backend_up{{backend="{refusing.url}"}} 0.0' in metrics
    assert f'aymurai_upstream_backend_up{{backend="{healthy.url}"}} 1.0' in metrics
    assert f'aymurai_upstream_backend_max_sessions{{backend="{healthy.url}"}} 1.0' in metrics


async def sessions_in_use(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    values = re.findall(r"aymurai_upstream_backend_sessions_in_use\{[^}]*\} (\S+)", text)
    assert values, text
    return sum(float(value) for value in values)


async def test_pool_client_leaving_mid_resume_returns_every_lease(tmp_path: Path) -> None:
    """A client that leaves while its job waits to resume (server gone) frees every slot."""
    async with WLKSimulator(speed=2.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=f"{simulator.url}#max_sessions=1",
            transcribe_ws_resume_timeout_seconds=seconds(60),
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", tone_hz=job_segments(1), name="leave")
        async with run_gateway(settings) as gateway, gateway.client() as client:
            async with asyncio.timeout(seconds(20)):
                async with client.stream(
                    "POST", "/asr/transcribe/stream", files=upload_files(audio)
                ) as response:
                    async for frame in iter_sse(response):
                        if frame.event == "transcription" and frame.json()["document"]:
                            assert await sessions_in_use(client) == 1
                            await simulator.stop()  # the job loses its session, cannot resume
                        if frame.event == "upstream":
                            assert frame.json()["state"] == "reconnecting"
                            break  # and the client leaves while it waits
            await eventually(lambda: not gateway.app.state.service.jobs, what="the job to end")
            assert await sessions_in_use(client) == 0
            assert gateway.app.state.service.admission.active == 0


async def test_pool_readiness_never_probes_a_busy_server(tmp_path: Path) -> None:
    """/readyz does not open a probe session on a server whose sessions are in use (its cap)."""
    async with WLKSimulator(speed=2.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=f"{simulator.url}#max_sessions=1",
            transcribe_ws_probe_ttl_seconds=0.0,  # every check would probe an idle server
        )
        audio = make_audio_file(tmp_path, fmt="wav_s16", tone_hz=job_segments(2), name="busy")
        async with run_gateway(settings) as gateway, gateway.client() as client:
            job = asyncio.create_task(stream_transcription(client, audio))
            await simulator.wait_for_sessions(1, timeout=seconds(10))
            for _ in range(5):
                assert (await client.get("/readyz")).status_code == 200
            assert len(simulator.sessions) == 1
            job.cancel()
    assert simulator.max_concurrent_sessions == 1
