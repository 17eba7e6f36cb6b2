"""Admission control over real sockets: the session limit, the FIFO queue, overflow, leaving.

The simulator runs slowly (a few seconds of audio take about a second) so that the uploads of a
test overlap; each test starts its uploads one after the other, waiting for the first event of one
before sending the next, so queue positions are deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from aymurai.simulator import WLKSimulator
from aymurai.transcription.service import TranscriptionService
from test.audio_fixtures import make_audio_file
from test.e2e import (
    RunningGateway,
    SSEFrame,
    document_words,
    iter_sse,
    make_settings,
    run_gateway,
    seconds,
    spooled_files,
    stream_transcription,
    upload_files,
)

pytestmark = pytest.mark.integration

# Audio seconds per wall-clock second in the simulator: slow enough for uploads to overlap.
SLOW_SPEED = 2.0


def _tone(tmp_path: Path, hz: int, audio_seconds: float = 2.0) -> Path:
    return make_audio_file(
        tmp_path, fmt="wav_s16", seconds=audio_seconds, tone_hz=hz, name=f"tone-{hz}"
    )


def _words(hz: int, audio_seconds: float = 2.0) -> list[str]:
    return [f"f{hz}"] * int(audio_seconds / 0.5)


def _service(gateway: RunningGateway) -> TranscriptionService:
    service: TranscriptionService = gateway.app.state.service
    return service


async def _until(predicate: Callable[[], bool], what: str, timeout_seconds: float = 5.0) -> None:
    """Poll the gateway's state (it has no event to wait on) until `predicate()`, bounded."""
    deadline = asyncio.get_running_loop().time() + seconds(timeout_seconds)
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class OpenStream:
    """A stream read by a background task; `first` is set at its first event."""

    frames: list[SSEFrame] = field(default_factory=list)
    status: int | None = None
    first: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def events(self) -> list[SSEFrame]:
        return [frame for frame in self.frames if frame.event is not None]

    def positions(self) -> list[int]:
        return [frame.json()["position"] for frame in self.events if frame.event == "queued"]

    async def finish(self, timeout_seconds: float = 20.0) -> None:
        assert self.task is not None
        async with asyncio.timeout(seconds(timeout_seconds)):
            await self.task


async def _open_stream(client: httpx.AsyncClient, audio: Path, **params: Any) -> OpenStream:
    """Start streaming `audio`; return once its first event arrived (or the request failed)."""
    stream = OpenStream()

    async def read() -> None:
        async with client.stream(
            "POST",
            "/asr/transcribe/stream",
            params={"use_cache": "false", **params},
            files=upload_files(audio),
        ) as response:
            stream.status = response.status_code
            if response.status_code != 200:
                stream.first.set()
                return
            async for frame in iter_sse(response):
                stream.frames.append(frame)
                if frame.event is not None:
                    stream.first.set()

    stream.task = asyncio.create_task(read())
    async with asyncio.timeout(seconds(10)):
        await asyncio.wait(
            [stream.task, asyncio.create_task(stream.first.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
    if stream.task.done():
        stream.task.result()  # re-raise a failed read
    return stream


async def test_admission_limit_two_of_five_uploads_queue_in_order(tmp_path: Path) -> None:
    """Five uploads, limit 2: never more than 2 WLK sessions, positions count down, all done."""
    tones = [440, 550, 660, 770, 880]
    async with WLKSimulator(speed=SLOW_SPEED) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_max_concurrent_sessions=2,
            transcribe_sse_min_event_interval_seconds=0.0,
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            streams = [await _open_stream(client, _tone(tmp_path, hz)) for hz in tones]
            # The first two got a slot at once; the others waited in line, in arrival order.
            assert [s.events[0].event for s in streams] == ["transcription"] * 2 + ["queued"] * 3
            assert [s.positions()[:1] for s in streams[2:]] == [[1], [2], [3]]
            for stream in streams:
                await stream.finish()
            assert simulator.max_concurrent_sessions == 2
            assert len(simulator.sessions) == 5
            assert _service(gateway).admission.active == 0

    for hz, stream in zip(tones, streams, strict=True):
        positions = stream.positions()
        assert positions == sorted(set(positions), reverse=True), positions  # counting down
        assert stream.events[-1].event == "done", stream.events[-1]
        assert document_words(stream.events[-1].json()) == _words(hz)
        queued = [frame.json() for frame in stream.events if frame.event == "queued"]
        assert all(q["document_id"] == stream.events[-1].json()["document_id"] for q in queued)
    assert streams[-1].positions() == [3, 2, 1]
    assert spooled_files(settings) == []


async def test_admission_queue_full_answers_503_and_a_leaver_frees_its_place(
    tmp_path: Path,
) -> None:
    """Limit 1, queue 1: a third upload gets 503 QUEUE_FULL; a queued client that leaves never
    opens a WLK session, and its place is free for the next upload at once."""
    async with WLKSimulator(speed=SLOW_SPEED) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_max_concurrent_sessions=1,
            transcribe_max_queued=1,
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            service = _service(gateway)
            running = await _open_stream(client, _tone(tmp_path, 440, 4.0))
            leaver = await _open_stream(client, _tone(tmp_path, 550))
            assert leaver.positions() == [1]

            refused = await stream_transcription(client, _tone(tmp_path, 660), use_cache=False)
            assert refused.status == 503
            assert refused.body["code"] == "QUEUE_FULL"
            assert int(refused.headers["retry-after"]) > 0
            assert refused.body["request_id"] == refused.headers["x-request-id"]

            assert leaver.task is not None
            leaver.task.cancel()  # the client goes away while queued
            await asyncio.gather(leaver.task, return_exceptions=True)
            await _until(lambda: service.admission.queued == 0, "the leaver to leave the queue")

            successor = await _open_stream(client, _tone(tmp_path, 770))
            assert successor.positions() == [1]
            await running.finish()
            await successor.finish()
            outcomes = service.metrics.requests.collect()[0].samples

    counted = {
        sample.labels["outcome"]: sample.value
        for sample in outcomes
        if sample.name.endswith("_total") and sample.labels["endpoint"] == "stream"
    }
    assert counted == {"done": 2, "QUEUE_FULL": 1, "client_gone": 1}
    assert running.events[-1].event == "done"
    assert successor.events[-1].event == "done"
    assert document_words(successor.events[-1].json()) == _words(770)
    # Only the running upload and the successor ever reached WLK.
    assert [round(record.audio_seconds) for record in simulator.sessions] == [4, 2]
    assert simulator.max_concurrent_sessions == 1
    assert spooled_files(settings) == []


async def test_admission_cache_hit_never_waits(tmp_path: Path) -> None:
    """With the only slot taken, a stored result is answered at once: a single done, no queue."""
    async with WLKSimulator(speed=SLOW_SPEED) as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_max_concurrent_sessions=1
        )
        cached_audio = _tone(tmp_path, 440, 1.0)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            first = await stream_transcription(client, cached_audio)
            assert first.last.event == "done"
            busy = await _open_stream(client, _tone(tmp_path, 550, 6.0))
            assert _service(gateway).admission.active == 1

            hit = await stream_transcription(client, cached_audio, timeout_seconds=5.0)

            assert busy.task is not None and not busy.task.done()
            busy.task.cancel()
            await asyncio.gather(busy.task, return_exceptions=True)

    assert [frame.event for frame in hit.events] == ["done"]
    assert hit.last.json() == first.last.json()
    assert len(simulator.sessions) == 2


async def test_admission_blocking_endpoint_respects_the_limit(tmp_path: Path) -> None:
    """The deprecated blocking endpoint queues behind a running stream and is refused when full."""
    async with WLKSimulator(speed=SLOW_SPEED) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_max_concurrent_sessions=1,
            transcribe_max_queued=1,
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            service = _service(gateway)
            running = await _open_stream(client, _tone(tmp_path, 440))

            async def blocking(audio: Path) -> httpx.Response:
                return await client.post(
                    "/asr/transcribe", params={"use_cache": "false"}, files=upload_files(audio)
                )

            waiting = asyncio.create_task(blocking(_tone(tmp_path, 660)))
            await _until(lambda: service.admission.queued == 1, "the blocking request to queue")
            assert len(simulator.sessions) == 1

            refused = await blocking(_tone(tmp_path, 880))
            assert refused.status_code == 503
            assert refused.json()["code"] == "QUEUE_FULL"
            assert "retry-after" in refused.headers

            async with asyncio.timeout(seconds(20)):
                answered = await waiting
            await running.finish()

    assert answered.status_code == 200, answered.text
    assert document_words(answered.json()) == _words(660)
    assert simulator.max_concurrent_sessions == 1
    assert len(simulator.sessions) == 2
