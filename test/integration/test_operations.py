"""Operating the gateway over real sockets: /metrics, /healthz, /readyz, request ids and logs."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aymurai.logs import TEXT_FORMAT, RequestIdFilter
from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file, make_text_file
from test.e2e import (
    RunningGateway,
    document_words,
    make_settings,
    run_gateway,
    seconds,
    stream_transcription,
    upload_files,
)

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _requests(samples: Samples, endpoint: str, outcome: str) -> float:
    return _value(
        samples, "aymurai_transcription_requests_total", endpoint=endpoint, outcome=outcome
    )


async def test_metrics_count_a_transcription_a_cache_hit_and_a_refusal(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    """After a transcription, its cache hit and a bad upload, every metric moved as expected."""
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=440)
    async with gateway.client() as client:
        before = await _scrape(client)
        first = await stream_transcription(client, audio)
        hit = await stream_transcription(client, audio)
        invalid = await stream_transcription(client, make_text_file(tmp_path))
        after = await _scrape(client)

    assert (first.last.event, hit.last.event, invalid.status) == ("done", "done", 415)
    assert _requests(before, "stream", "done") == 0
    assert _requests(after, "stream", "done") == 1
    assert _requests(after, "stream", "cache_hit") == 1
    assert _requests(after, "stream", "INVALID_AUDIO") == 1
    assert _value(after, "aymurai_cache_lookups_total", result="miss") == 2
    assert _value(after, "aymurai_cache_lookups_total", result="hit") == 1
    assert _value(after, "aymurai_audio_transcribed_seconds_total") == pytest.approx(2.0)
    assert _value(after, "aymurai_upstream_closes_total", code="1000") == 1
    for histogram in (
        "aymurai_time_to_first_transcript_seconds",
        "aymurai_queue_wait_seconds",
        "aymurai_transcription_processing_seconds",
        "aymurai_transcription_real_time_factor",
    ):
        assert _value(after, f"{histogram}_count") == 1, histogram
    processing = _value(after, "aymurai_transcription_processing_seconds_sum")
    assert 0 < processing < seconds(10)
    assert _value(after, "aymurai_transcription_real_time_factor_sum") == pytest.approx(
        processing / 2.0
    )
    assert 0 < _value(after, "aymurai_time_to_first_transcript_seconds_sum") < processing + 1
    for gauge in (
        "aymurai_sse_streams_active",
        "aymurai_requests_queued",
        "aymurai_upstream_sessions_in_use",
    ):
        assert _value(after, gauge) == 0, gauge


async def test_metrics_and_logs_record_an_upstream_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1011 from WLK: SSE error with the request id, an ERROR log with the cause, metrics."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=3.0, tone_hz=440)
    async with WLKSimulator(speed=20.0) as simulator:
        uri = simulator.url_for(fault="close_1011", fault_after=1.0)
        settings = make_settings(tmp_path, transcribe_ws_uri=uri)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(
                client, audio, headers={"X-Request-ID": "fault-check-7"}
            )
            samples = await _scrape(client)

    assert result.headers["x-request-id"] == "fault-check-7"
    assert result.last.event == "error"
    error = result.last.json()
    assert (error["code"], error["request_id"]) == ("UPSTREAM_SERVICE_ERROR", "fault-check-7")
    assert _requests(samples, "stream", "UPSTREAM_SERVICE_ERROR") == 1
    assert _value(samples, "aymurai_upstream_closes_total", code="1011") == 1
    assert _value(samples, "aymurai_audio_transcribed_seconds_total") == 0
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "UPSTREAM_SERVICE_ERROR" in failures[0].getMessage()
    assert "1011" in failures[0].getMessage()  # the cause: WLK's close code
    assert failures[0].request_id == "fault-check-7"  # type: ignore[attr-defined]


async def test_request_id_appears_in_every_log_line_of_the_request(
    gateway: RunningGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every gateway log line of a request, the job's included, carries its id: `[id] message`."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=660)
    async with gateway.client() as client:
        start = len(caplog.records)
        result = await stream_transcription(client, audio, headers={"X-Request-ID": "trace-42"})
        records = caplog.records[start:]

    assert result.last.event == "done"
    # The gateway's lines; the simulator's (and websockets') are WLK's side, httpx's the client's.
    ours = [
        r
        for r in records
        if r.name.startswith(("aymurai.", "uvicorn.")) and not r.name.startswith("aymurai.sim")
    ]
    assert any(r.name == "uvicorn.access" for r in ours)
    assert {r.request_id for r in ours} == {"trace-42"}  # type: ignore[attr-defined]
    text = "\n".join(logging.Formatter(TEXT_FORMAT).format(r) for r in ours)
    for message in ("accepted upload", "upstream connected", "first transcript", "done"):
        assert re.search(rf"\[trace-42\] .*{message}", text), (message, text)


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("client-id_1.2", "client-id_1.2"),
        ("has spaces!", None),
        ("x" * 65, None),
        (None, None),
    ],
)
async def test_request_id_sane_echoed_insane_replaced(
    gateway: RunningGateway, tmp_path: Path, sent: str | None, echoed: str | None
) -> None:
    """A sane X-Request-ID is echoed and put in error bodies; an insane or missing one is
    replaced by 8 hex characters."""
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    headers = {"X-Request-ID": sent} if sent is not None else {}
    async with gateway.client() as client:
        response = await client.post(
            "/asr/transcribe/stream", files=upload_files(empty), headers=headers
        )
        health = await client.get("/healthz", headers=headers)

    request_id = response.headers["x-request-id"]
    if echoed is not None:
        assert request_id == echoed
    else:
        assert re.fullmatch(r"[0-9a-f]{8}", request_id)
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The uploaded file is empty.",
        "code": "EMPTY_UPLOAD",
        "request_id": request_id,
    }
    assert health.status_code == 200
    assert (health.headers["x-request-id"] == request_id) == (echoed is not None)


async def test_readiness_flips_with_the_upstream(tmp_path: Path) -> None:
    """/readyz is 503 naming the upstream while WLK is down and 200 again once it is back;
    /healthz stays 200 throughout."""
    async with WLKSimulator() as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_ws_probe_ttl_seconds=0.1,
            transcribe_ws_probe_timeout_seconds=1.0,
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ready",
                "checks": {"database": "ok", "spool": "ok", "upstream": "ok"},
                "upstreams": [
                    {
                        "name": simulator.url,
                        "state": "up",
                        "sessions_in_use": 0,
                        "max_sessions": 8,
                        "problem": None,
                    }
                ],
            }

            await simulator.stop()
            down = await _poll_readyz(client, 503)
            assert down.json()["status"] == "unavailable"
            assert down.json()["checks"]["database"] == "ok"
            assert down.json()["checks"]["upstream"].startswith("UPSTREAM_UNAVAILABLE: ")
            assert down.json()["upstreams"][0]["state"] == "down"
            assert (await client.get("/healthz")).status_code == 200

            await simulator.start()
            back = await _poll_readyz(client, 200)
            assert back.json()["checks"]["upstream"] == "ok"


async def _poll_readyz(client: httpx.AsyncClient, status: int) -> httpx.Response:
    async with asyncio.timeout(seconds(5)):
        while True:
            response = await client.get("/readyz")
            if response.status_code == status:
                return response
            await asyncio.sleep(0.05)


async def test_readiness_probe_is_single_flight_and_light(tmp_path: Path) -> None:
    """Concurrent /readyz calls share one probe: one WLK session, closed at once, no audio."""
    async with WLKSimulator() as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_ws_probe_ttl_seconds=60.0
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            answers = await asyncio.gather(*(client.get("/readyz") for _ in range(5)))
            assert [a.status_code for a in answers] == [200] * 5
            probe = await simulator.wait_for_session_closed(0, timeout=seconds(5))
            assert (await client.get("/readyz")).status_code == 200  # cached

    assert len(simulator.sessions) == 1
    assert probe.close_code == 1000
    assert probe.frame_sizes == []


async def test_metrics_registries_are_per_app(tmp_path: Path) -> None:
    """Two apps in one process keep separate metrics (no shared global registry)."""
    async with WLKSimulator() as simulator:
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=1.0, tone_hz=550)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first_settings = make_settings(tmp_path / "a", transcribe_ws_uri=simulator.url)
        second_settings = make_settings(tmp_path / "b", transcribe_ws_uri=simulator.url)
        async with (
            run_gateway(first_settings) as first,
            run_gateway(second_settings) as second,
            first.client() as first_client,
            second.client() as second_client,
        ):
            result = await stream_transcription(first_client, audio)
            first_samples = await _scrape(first_client)
            second_samples = await _scrape(second_client)

    assert document_words(result.last.json()) == ["f550"] * 2
    assert _requests(first_samples, "stream", "done") == 1
    assert _requests(second_samples, "stream", "done") == 0
