"""Test helpers for the resource API: speech-like audio, a resuming events client, delta replay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

from test.audio_fixtures import make_audio_file
from test.e2e import seconds


def make_speech_like_file(
    directory: Path, *, total_seconds: float, name: str = "speech.wav"
) -> Path:
    """Tone bursts of 6 s with 2.5 s pauses: the simulator makes one paragraph per burst."""
    segments: list[tuple[float, float]] = []
    elapsed = 0.0
    while elapsed < total_seconds:
        segments += [(440.0, 6.0), (0.0, 2.5)]
        elapsed += 8.5
    return make_audio_file(directory, fmt="wav_s16", tone_hz=segments, name=name)


def apply_transcription(document: list[Any], data: dict[str, Any]) -> list[Any]:
    """The client side of a delta (docs/jobs.md): document[:k] + paragraphs, truncated to n."""
    k, n = data["from_index"], data["length"]
    assert 0 <= k <= len(document), f"delta from {k} does not fit {len(document)} paragraphs"
    return (document[:k] + data["paragraphs"])[:n]


@dataclass
class FollowResult:
    events: list[ServerSentEvent] = field(default_factory=list)
    documents: list[list[Any]] = field(default_factory=list)  # after each transcription event
    statuses: list[int] = field(default_factory=list)  # per connection
    connections: int = 0
    retries: list[int | None] = field(default_factory=list)  # `retry` of each first frame
    firsts: list[int] = field(default_factory=list)  # index in `events` of each first frame
    arrived_at: list[float] = field(default_factory=list)  # loop time each event was parsed

    @property
    def ids(self) -> list[int]:
        return [int(event.id) for event in self.events]

    def ids_increase(self) -> bool:
        """Strictly increasing, except that a resume's snapshot may repeat the last id seen
        (when nothing newer happened; docs/jobs.md)."""
        ids = self.ids
        return all(
            b > a or (b == a and index + 1 in self.firsts)
            for index, (a, b) in enumerate(zip(ids, ids[1:], strict=False))
        )

    @property
    def terminal(self) -> ServerSentEvent | None:
        if self.events and self.events[-1].event in ("done", "error"):
            return self.events[-1]
        return None


async def follow_events(
    base_url: str,
    job_id: str,
    *,
    last_event_id: str | None = None,
    cut_after_events: Callable[[int], bool] | None = None,
    cut: Callable[[], None] | None = None,
    stop_after_events: int | None = None,
    max_connections: int = 20,
    timeout_seconds: float = 60.0,
) -> FollowResult:
    """Follow `/asr/transcriptions/{id}/events` like an EventSource, resuming with Last-Event-ID.

    `cut_after_events(n)` is asked after the n-th event of the whole follow; when true, `cut()`
    drops the connection (through a proxy) and the client reconnects with the last id it saw.
    `stop_after_events` leaves (returns) after that many events; after `max_connections` it
    returns whatever it has (`terminal` None).
    """
    result = FollowResult()
    document: list[Any] = []
    seen = 0
    async with asyncio.timeout(seconds(timeout_seconds)):
        async with httpx.AsyncClient(base_url=base_url, timeout=seconds(30)) as client:
            while result.connections < max_connections:
                result.connections += 1
                headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
                first = True
                try:
                    async with aconnect_sse(
                        client, "GET", f"/asr/transcriptions/{job_id}/events", headers=headers
                    ) as source:
                        result.statuses.append(source.response.status_code)
                        if source.response.status_code != 200:
                            return result
                        async for event in source.aiter_sse():
                            if first:
                                result.retries.append(event.retry)
                                result.firsts.append(len(result.events))
                                first = False
                            result.events.append(event)
                            result.arrived_at.append(asyncio.get_running_loop().time())
                            last_event_id = event.id
                            if event.event == "transcription":
                                document = apply_transcription(document, event.json())
                                result.documents.append(document)
                            if event.event in ("done", "error"):
                                return result
                            seen += 1
                            if stop_after_events is not None and seen >= stop_after_events:
                                return result
                            if cut_after_events is not None and cut_after_events(seen):
                                assert cut is not None
                                cut()
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
                    await asyncio.sleep(0.05)  # EventSource waits `retry`; keep tests quick
                    continue
    return result  # out of connections: `terminal` is None


async def wait_until_running(
    client: httpx.AsyncClient, job_id: str, *, past_seconds: float, timeout_seconds: float = 20
) -> dict[str, Any]:
    """Poll the job until it runs past `past_seconds` of audio; fail if it ends first."""
    async with asyncio.timeout(seconds(timeout_seconds)):
        while True:
            job: dict[str, Any] = (await client.get(f"/asr/transcriptions/{job_id}")).json()
            assert job["status"] in ("queued", "running"), job
            if job["status"] == "running" and job["current_time"] >= past_seconds:
                return job
            await asyncio.sleep(0.05)
