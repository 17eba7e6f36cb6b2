"""Test helpers for `WS /asr/live`: speech-like PCM, a client streaming it in (scaled) real time."""

from __future__ import annotations

import asyncio
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from test.audio_fixtures import make_audio_file
from test.e2e import seconds

BYTES_PER_SECOND = 32000
# Three distinct "words" (the simulator names a 0.5 s window by its pitch), each a paragraph:
# the simulator's pause is set to 0.5 s in these tests, so each 1 s silence closes one.
BURSTS: list[tuple[float, float]] = [
    (440.0, 1.5),
    (0.0, 1.0),
    (660.0, 1.5),
    (0.0, 1.0),
    (880.0, 1.5),
    (0.0, 1.0),
]


def make_live_speech(directory: Path, bursts: list[tuple[float, float]] | None = None) -> Path:
    """A 16 kHz mono WAV of tone bursts separated by pauses."""
    return make_audio_file(directory, fmt="wav_s16", tone_hz=bursts or BURSTS, name="live-speech")


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        return wav.readframes(wav.getnframes())


def ws_url(base_url: str, **query: str) -> str:
    url = base_url.replace("http://", "ws://", 1) + "/asr/live"
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


@dataclass
class LiveResult:
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def kinds(self) -> list[str]:
        return [m["type"] for m in self.messages]

    @property
    def session(self) -> dict[str, Any]:
        return self.of("session")[0]


async def send_in_real_time(
    socket: ClientConnection, pcm: bytes, *, speed: float, chunk_seconds: float = 0.1
) -> None:
    """Send `pcm` in chunks of `chunk_seconds`, `speed` times faster than real time."""
    chunk = int(chunk_seconds * BYTES_PER_SECOND) // 2 * 2
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index, offset in enumerate(range(0, len(pcm), chunk)):
        due = started + index * chunk_seconds / speed
        await asyncio.sleep(max(0.0, due - loop.time()))
        await socket.send(pcm[offset : offset + chunk])


async def collect(socket: ClientConnection, result: LiveResult) -> None:
    """Every message until the gateway closes the socket."""
    try:
        async for raw in socket:
            result.messages.append(json.loads(raw))
    except ConnectionClosed:
        pass
    if socket.close_code is not None:
        result.close_code = socket.close_code
        result.close_reason = socket.close_reason or ""


async def stream_live(
    url: str, pcm: bytes, *, speed: float = 1.5, end_with_empty_frame: bool = True
) -> LiveResult:
    """Stream `pcm` through `WS /asr/live`, end it, and read everything until the close."""
    result = LiveResult()
    async with asyncio.timeout(seconds(30) + len(pcm) / BYTES_PER_SECOND / speed):
        async with connect(url, max_size=None) as socket:
            reader = asyncio.create_task(collect(socket, result))
            await send_in_real_time(socket, pcm, speed=speed)
            if end_with_empty_frame:
                await socket.send(b"")
            await reader
    return result
