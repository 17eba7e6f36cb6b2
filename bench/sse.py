"""SSE bytes per client on both streams, and fan-out delivery lag with many subscribers.

Starts the WLK simulator and the gateway (`aymurai-api`) as separate processes and uploads a
speech-like WAV (16 kHz mono: 6 s tone bursts, one simulated paragraph each, between 2.5 s
pauses). Raw asyncio sockets read the streams (no SSE library in the measurement path).

- bytes: for a 15-minute and a 60-minute file at the same simulator pace, the POST stream
  (`/asr/transcribe/stream`, full snapshots) and the events stream
  (`/asr/transcriptions/{id}/events`, deltas) of the same job: body bytes, frames, largest frame,
  and bytes relative to the final document. Targets (issue 9): events stream 60-min bytes <= 4.5x
  the 15-min bytes, and <= 8x the final document at 20x pace; frames must not grow with it.
- lag: N subscribers (default 200) on the events stream of one job; for every event id, each
  subscriber's receive time minus the earliest receive time of that id (fan-out spread), p50/p99.

    .venv/bin/python bench/sse.py [--speed 20] [--minutes 15 60] [--subscribers 200]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
RATE = 16000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def write_speech_like_wav(path: Path, minutes: float, *, salt: int) -> float:
    """6 s bursts of a tone, 2.5 s pauses; `salt` makes the bytes (document id) unique."""
    t = np.arange(int(6 * RATE)) / RATE
    burst = (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2")
    pause = np.zeros(int(2.5 * RATE), dtype="<i2")
    block = np.concatenate([burst, pause]).tobytes()
    total_frames = int(minutes * 60 * RATE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        written = 0
        while written < total_frames:
            n = min(len(block) // 2, total_frames - written)
            out.writeframes(block[: n * 2])
            written += n
        out.writeframes(salt.to_bytes(2, "little", signed=False))
    return (total_frames + 1) / RATE


@dataclass
class StreamStats:
    bytes: int = 0
    frames: int = 0
    keepalives: int = 0
    largest_frame: int = 0
    largest_transcription: int = 0
    last_event: str = ""
    last_data: str = ""
    received: list[tuple[str, float]] = field(default_factory=list)  # (id, monotonic)

    def feed(self, frame: bytes, at: float) -> None:
        self.bytes += len(frame) + 2
        if frame.startswith(b":"):
            self.keepalives += 1
            return
        self.frames += 1
        self.largest_frame = max(self.largest_frame, len(frame) + 2)
        if b"\nevent: transcription\n" in frame:
            self.largest_transcription = max(self.largest_transcription, len(frame) + 2)
        event_id = ""
        for line in frame.split(b"\n"):
            if line.startswith(b"id: "):
                event_id = line[4:].decode()
            elif line.startswith(b"event: "):
                self.last_event = line[7:].decode()
            elif line.startswith(b"data: "):
                self.last_data = line[6:].decode()
        self.received.append((event_id, at))


async def read_sse(reader: asyncio.StreamReader, stats: StreamStats) -> None:
    """Read an HTTP/1.1 response whose body is an event stream (chunked) until it ends."""
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.decode(errors="replace"))
    buffer = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.strip(), 16)
        if size == 0:
            return
        chunk = await reader.readexactly(size + 2)
        at = time.monotonic()
        buffer += chunk[:-2]
        while (end := buffer.find(b"\n\n")) >= 0:
            stats.feed(buffer[:end], at)
            buffer = buffer[end + 2 :]


async def open_events(port: int, job_id: str, stats: StreamStats) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    writer.write(
        f"GET /asr/transcriptions/{job_id}/events HTTP/1.1\r\nHost: bench\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        await read_sse(reader, stats)
    finally:
        writer.close()


async def post_stream(
    port: int, path: Path, size: int, stats: StreamStats, job_id: asyncio.Future[str]
) -> None:
    """The POST stream, multipart body streamed from disk; resolves `job_id` from its headers."""
    boundary = "benchboundary"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"'
        "\r\nContent-Type: audio/wav\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()
    length = len(preamble) + size + len(epilogue)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    writer.write(
        f"POST /asr/transcribe/stream?use_cache=false HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n".encode()
        + preamble
    )
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            writer.write(chunk)
            await writer.drain()
    writer.write(epilogue)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-transcription-id:"):
            job_id.set_result(line.split(b":", 1)[1].strip().decode())
    buffer = b""
    try:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                return
            chunk = await reader.readexactly(size + 2)
            at = time.monotonic()
            buffer += chunk[:-2]
            while (end := buffer.find(b"\n\n")) >= 0:
                stats.feed(buffer[:end], at)
                buffer = buffer[end + 2 :]
    finally:
        writer.close()


class Stack:
    """The simulator and the gateway as processes, on free ports, in a scratch directory."""

    def __init__(self, workdir: Path, speed: float) -> None:
        self.sim_port, self.api_port = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TRANSCRIBE_", "API_"))},
            "API_PORT": str(self.api_port),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'bench.db'}",
            "TRANSCRIBE_WS_URI": f"ws://127.0.0.1:{self.sim_port}/asr",
            "TRANSCRIBE_SPOOL_DIR": str(workdir / "spool"),
            "TRANSCRIBE_WS_READY_TIMEOUT_SECONDS": "600",
            "LOG_LEVEL": "WARNING",
        }
        self.simulator = subprocess.Popen(
            [BIN / "aymurai-wlk-simulator", "--port", str(self.sim_port), "--speed", str(speed)],
            stderr=subprocess.DEVNULL,
        )
        self.gateway = subprocess.Popen(
            [BIN / "aymurai-api"], env=env, cwd=workdir, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.sim_port, 30)
        wait_for_port(self.api_port, 60)

    def close(self) -> None:
        for proc in (self.gateway, self.simulator):
            proc.terminate()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()


async def measure_bytes(stack: Stack, path: Path) -> tuple[StreamStats, StreamStats, float]:
    posted, followed = StreamStats(), StreamStats()
    job_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    size = path.stat().st_size  # noqa: ASYNC240 - once, before anything runs
    poster = asyncio.create_task(post_stream(stack.api_port, path, size, posted, job_id))
    follower = asyncio.create_task(open_events(stack.api_port, await job_id, followed))
    await asyncio.gather(poster, follower)
    return posted, followed, time.monotonic() - started


async def measure_lag(stack: Stack, path: Path, subscribers: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=600) as c:
        with path.open("rb") as source:
            created = await c.post(
                "/asr/transcriptions",
                params={"use_cache": "false"},
                files={"file": (path.name, source, "audio/wav")},
            )
    job_id = created.json()["id"]
    stats = [StreamStats() for _ in range(subscribers)]
    await asyncio.gather(*(open_events(stack.api_port, job_id, s) for s in stats))
    first_seen: dict[str, float] = {}
    for s in stats:
        for event_id, at in s.received[1:]:  # the first frame is each one's snapshot
            first_seen[event_id] = min(first_seen.get(event_id, at), at)
    lags = sorted(
        (at - first_seen[event_id]) * 1000 for s in stats for event_id, at in s.received[1:]
    )
    counts = [len(s.received) for s in stats]
    return {
        "subscribers": subscribers,
        "events": len(first_seen),
        "p50_ms": lags[len(lags) // 2],
        "p99_ms": lags[int(len(lags) * 0.99)],
        "max_ms": lags[-1],
        "min_events_per_subscriber": min(counts),
        "max_events_per_subscriber": max(counts),
        "done_everywhere": float(all(s.last_event == "done" for s in stats)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--minutes", type=float, nargs="+", default=[15.0, 60.0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--lag-minutes", type=float, default=15.0)
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="aymurai-bench-sse-") as tmp:
        workdir = Path(tmp)
        stack = Stack(workdir, args.speed)
        try:
            for index, minutes in enumerate(args.minutes):
                path = workdir / f"speech-{minutes:g}.wav"
                write_speech_like_wav(path, minutes, salt=index + 1)
                posted, followed, wall = asyncio.run(measure_bytes(stack, path))
                path.unlink()
                document = len(json.dumps(json.loads(followed.last_data)["document"]))
                rows.append(
                    {
                        "minutes": minutes,
                        "wall": wall,
                        "doc": document,
                        "post": posted,
                        "events": followed,
                    }
                )
                print(
                    f"{minutes:g} min: POST {posted.bytes} B / {posted.frames} frames, "
                    f"events {followed.bytes} B / {followed.frames} frames, doc {document} B",
                    flush=True,
                )
            lag_path = workdir / "lag.wav"
            write_speech_like_wav(lag_path, args.lag_minutes, salt=999)
            lag = asyncio.run(measure_lag(stack, lag_path, args.subscribers))
            print(lag, flush=True)
        finally:
            stack.close()
    table = [
        "| audio | stream | bytes | frames | largest `transcription` frame "
        "| bytes / final document | wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for name, key in (("POST (full snapshots)", "post"), ("events (deltas)", "events")):
            s = row[key]
            assert isinstance(s, StreamStats)
            table.append(
                f"| {row['minutes']:g} min | {name} | {s.bytes:,} | {s.frames} | "
                f"{s.largest_transcription:,} | {s.bytes / float(row['doc']):.1f}x "  # type: ignore[arg-type]
                f"| {row['wall']:.0f} |"
            )
    ratio_lines = []
    if len(rows) >= 2:
        short, long = rows[0], rows[-1]
        for key in ("post", "events"):
            a, b = short[key], long[key]
            assert isinstance(a, StreamStats) and isinstance(b, StreamStats)
            ratio_lines.append(
                f"- {key}: {long['minutes']:g}-min bytes / {short['minutes']:g}-min bytes = "
                f"**{b.bytes / a.bytes:.2f}x**"
            )
    report = "\n".join(
        [
            f"# SSE bytes and fan-out lag, {dt.date.today().isoformat()}",
            "",
            f"Simulator pace {args.speed:g}x real time; gateway defaults (min event interval "
            "0.25 s, progress-only events every 2 s). Speech-like WAV: 6 s tone bursts (one "
            "paragraph each) between 2.5 s pauses. Both streams read the same job (the events "
            "stream opened on the POST stream's X-Transcription-Id), raw sockets.",
            "",
            *table,
            "",
            *ratio_lines,
            "",
            f"## {lag['subscribers']:.0f} subscribers on one job ({args.lag_minutes:g} min audio)",
            "",
            "Lag = a subscriber's receive time of an event minus the earliest receive time of the "
            "same event id among all subscribers (all in one client process).",
            "",
            f"- events: {lag['events']:.0f}; per subscriber {lag['min_events_per_subscriber']:.0f}"
            f"–{lag['max_events_per_subscriber']:.0f}; all reached done: "
            f"{bool(lag['done_everywhere'])}",
            f"- lag p50 **{lag['p50_ms']:.1f} ms**, p99 **{lag['p99_ms']:.1f} ms**, max "
            f"{lag['max_ms']:.1f} ms",
            "",
            f"Reproduce: `.venv/bin/python bench/sse.py --speed {args.speed:g} --minutes "
            f"{' '.join(f'{m:g}' for m in args.minutes)} --subscribers {args.subscribers}`",
        ]
    )
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"sse-{dt.date.today().isoformat()}.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
