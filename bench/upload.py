"""Server memory while a large file is uploaded and transcribed through the real HTTP endpoint.

Starts the WLK simulator and the gateway (`aymurai-api`) as separate processes, uploads a large
WAV (default ~600 MB: 57 minutes of 44.1 kHz stereo 16-bit) with a streaming httpx client, and
samples the gateway's RSS every 20 ms with psutil. Reports the RSS before the upload, the peak
during upload + transcription, and the peak added, median of N runs, and writes a markdown table
to bench/results/.

    .venv/bin/python bench/upload.py [--megabytes 600] [--runs 3]

Target (issue 3): the upload adds at most 64 MiB to the server's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_wav(path: Path, megabytes: int) -> float:
    """A 44.1 kHz stereo tone-and-silence WAV of about `megabytes`; returns its seconds."""
    rate, channels = 44100, 2
    frames_total = megabytes * 1_000_000 // (2 * channels)
    t = np.arange(rate) / rate
    second = np.zeros((rate, channels), dtype="<i2")
    second[: rate // 2, :] = (np.sin(2 * np.pi * 440 * t[: rate // 2]) * 12000)[:, None]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        written = 0
        block = np.tile(second, (60, 1)).tobytes()
        block_frames = 60 * rate
        while written < frames_total:
            n = min(block_frames, frames_total - written)
            out.writeframes(block[: n * 4])
            written += n
    return frames_total / rate


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


async def upload(base_url: str, path: Path) -> tuple[str, float]:
    async def body():  # stream the file; never hold it in the client either
        boundary = "benchboundary"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"'
            "\r\nContent-Type: audio/wav\r\n\r\n"
        ).encode()
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    started = time.monotonic()
    last_event = ""
    async with httpx.AsyncClient(timeout=httpx.Timeout(600)) as client:
        async with client.stream(
            "POST",
            f"{base_url}/asr/transcribe/stream?use_cache=false",
            content=body(),
            headers={"Content-Type": "multipart/form-data; boundary=benchboundary"},
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    last_event = line.removeprefix("event: ")
    return last_event, time.monotonic() - started


def run_once(path: Path, workdir: Path) -> dict[str, float | str]:
    sim_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "API_PORT": str(api_port),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'bench.db'}",
        "TRANSCRIBE_WS_URI": f"ws://127.0.0.1:{sim_port}/asr",
        "TRANSCRIBE_SPOOL_DIR": str(workdir),
        "LOG_LEVEL": "WARNING",
    }
    simulator = subprocess.Popen(
        [BIN / "aymurai-wlk-simulator", "--port", str(sim_port), "--speed", "400"],
        stderr=subprocess.DEVNULL,
    )
    gateway = subprocess.Popen([BIN / "aymurai-api"], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(sim_port, 30)
        wait_for_port(api_port, 60)
        process = psutil.Process(gateway.pid)
        time.sleep(0.5)
        baseline = process.memory_info().rss
        peak = baseline
        done = False

        async def sample() -> None:
            nonlocal peak
            while not done:
                peak = max(peak, process.memory_info().rss)
                await asyncio.sleep(0.02)

        async def main() -> tuple[str, float]:
            nonlocal done
            sampler = asyncio.create_task(sample())
            try:
                return await upload(f"http://127.0.0.1:{api_port}", path)
            finally:
                done = True
                await sampler

        last_event, seconds = asyncio.run(main())
        return {
            "baseline_mib": baseline / MIB,
            "peak_mib": peak / MIB,
            "added_mib": (peak - baseline) / MIB,
            "seconds": seconds,
            "last_event": last_event,
        }
    finally:
        for proc in (gateway, simulator):
            proc.terminate()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aymurai-bench-") as tmp:
        workdir = Path(tmp)
        path = workdir / "upload.wav"
        audio_seconds = write_wav(path, args.megabytes)
        size_mib = path.stat().st_size / MIB
        runs = [run_once(path, workdir) for _ in range(args.runs)]
    added = statistics.median(float(r["added_mib"]) for r in runs)
    rows = [
        "| run | baseline RSS (MiB) | peak RSS (MiB) | added (MiB) | wall (s) | last event |",
        "|---|---|---|---|---|---|",
    ]
    for index, r in enumerate(runs, 1):
        rows.append(
            f"| {index} | {r['baseline_mib']:.1f} | {r['peak_mib']:.1f} | {r['added_mib']:.1f} "
            f"| {r['seconds']:.1f} | {r['last_event']} |"
        )
    verdict = "meets" if added <= 64 else "MISSES"
    report = "\n".join(
        [
            f"# Upload memory, {dt.date.today().isoformat()}",
            "",
            f"Upload: {size_mib:.0f} MiB WAV ({audio_seconds / 60:.1f} min, 44.1 kHz stereo s16) "
            "through POST /asr/transcribe/stream?use_cache=false, gateway and WLK simulator "
            "(400x) as separate processes, RSS sampled every 20 ms (psutil).",
            "",
            *rows,
            "",
            f"**Median peak RSS added: {added:.1f} MiB** — {verdict} the 64 MiB target.",
            "",
            f"Reproduce: `.venv/bin/python bench/upload.py --megabytes {args.megabytes} "
            f"--runs {args.runs}`",
        ]
    )
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"upload-{dt.date.today().isoformat()}.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
