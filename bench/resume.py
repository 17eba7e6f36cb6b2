"""Benchmark: a long file with injected WLK failures vs a clean run, against the simulator.

    .venv/bin/python bench/resume.py [--minutes 60] [--speed 20] [--failures 3] [--pairs 1]

Generates a tone fixture under bench/fixtures/ once (16 kHz mono WAV; tones in whole half seconds
with pauses, so every word of the simulator is distinct in time), starts the WLK simulator and the
gateway in this process (real sockets, default settings but the simulator's speed), and
transcribes the file twice with `use_cache=false`:

* clean: no fault;
* faulty: the simulator closes the session with 1011 after `minutes / (failures + 1)` of each
  session's audio, in the first `failures` sessions (`fault_times`); a resumed session starts
  at its seek point, so the failures fall somewhat before 1/4, 2/4 and 3/4 of the file, and
  the job resumes `failures` times.

Reports wall times, the target clean + failures x (overlap + reconnect) (the overlap counted as
wall seconds, the strict reading: at 20x it costs 0.1 s of WLK time), whether the done texts are
identical word for word, and the resume points. Writes bench/results/resume-<date>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from aymurai.simulator import WLKSimulator  # noqa: E402
from test.audio_fixtures import tone_blocks, write_audio_file  # noqa: E402
from test.e2e import document_words, make_settings, run_gateway, stream_transcription  # noqa: E402

FIXTURES = ROOT / "bench" / "fixtures"
RESULTS = ROOT / "bench" / "results"
OVERLAP_SECONDS = 2.0


def fixture(minutes: int) -> Path:
    """`minutes` of tones: 2–6 half-seconds each, frequencies cycling, a 2.5 s pause every ~30 s."""
    path = FIXTURES / f"resume-tones-{minutes}min.wav"
    if path.exists():
        return path
    FIXTURES.mkdir(parents=True, exist_ok=True)
    segments: list[tuple[float, float]] = []
    total, k = 0.0, 0
    while total < minutes * 60:
        length = 0.5 * (2 + k % 5)
        hz = 300 + 10 * ((k * 37) % 70)
        segments.append((hz, length))
        total += length
        k += 1
        if k % 12 == 0:
            segments.append((0, 2.5))
            total += 2.5
    blocks = tone_blocks(seconds=total, sample_rate=16000, channels=1, tone_hz=segments)
    tmp = path.with_suffix(".tmp.wav")
    write_audio_file(tmp, blocks, fmt="wav_s16", sample_rate=16000, channels=1)
    tmp.rename(path)
    return path


async def transcribe(gateway: Any, path: Path) -> tuple[float, Any]:
    async with gateway.client() as client:
        started = time.monotonic()
        result = await stream_transcription(client, path, use_cache=False, timeout_seconds=7200)
        return time.monotonic() - started, result


async def one_run(
    audio: Path, tmp: Path, *, speed: float, failures: int, fault_after: float
) -> tuple[float, Any, list[float]]:
    """(wall seconds, stream result, reconnect delays) of one transcription on a fresh simulator."""
    async with WLKSimulator(speed=speed) as simulator:
        uri = simulator.url
        if failures:
            uri = simulator.url_for(
                fault="close_1011", fault_after=fault_after, fault_times=failures
            )
        await anyio.Path(tmp).mkdir()
        settings = make_settings(
            tmp,
            transcribe_ws_uri=uri,
            # The production defaults, not the test suite's short ones.
            transcribe_ws_idle_timeout_seconds=60.0,
            transcribe_ws_ready_timeout_seconds=120.0,
            transcribe_ws_resume_overlap_seconds=OVERLAP_SECONDS,
        )
        async with run_gateway(settings) as gateway:
            seconds, result = await transcribe(gateway, audio)
        sessions = simulator.sessions
    assert result.last.event == "done", result.last.data
    reconnect = [
        later.opened_at - (earlier.closed_at or later.opened_at)
        for earlier, later in zip(sessions, sessions[1:], strict=False)
        if earlier.fault_fired
    ]
    return seconds, result, reconnect


async def run(minutes: int, speed: float, failures: int, pairs: int) -> str:
    audio = fixture(minutes)
    fault_after = minutes * 60 / (failures + 1)
    clean_runs: list[tuple[float, Any]] = []
    faulty_runs: list[tuple[float, Any]] = []
    reconnect: list[float] = []
    order: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(pairs):
            # Alternate the order, so a load change on the shared machine does not always
            # favour the same run.
            names = ("clean", "faulty") if pair % 2 == 0 else ("faulty", "clean")
            for name in names:
                seconds, result, delays = await one_run(
                    audio,
                    Path(tmp) / f"{name}-{pair}",
                    speed=speed,
                    failures=failures if name == "faulty" else 0,
                    fault_after=fault_after,
                )
                (faulty_runs if name == "faulty" else clean_runs).append((seconds, result))
                reconnect += delays
                order.append(f"{name} {seconds:.1f} s")
                print(f"{name}: {seconds:.1f} s", flush=True)
    clean_words = document_words(clean_runs[0][1].last.json())
    identical = all(
        document_words(result.last.json()) == clean_words for _, result in faulty_runs + clean_runs
    )
    resumes = [
        [frame.json()["resume_from"] for frame in result.of("upstream")][1::2]
        for _, result in faulty_runs
    ]
    clean_seconds = statistics.median(seconds for seconds, _ in clean_runs)
    faulty_seconds = statistics.median(seconds for seconds, _ in faulty_runs)
    mean_reconnect = statistics.mean(reconnect) if reconnect else 0.0
    target = clean_seconds + failures * (OVERLAP_SECONDS + mean_reconnect)
    today = dt.date.today().isoformat()
    load = os.getloadavg()
    lines = [
        f"# Resume benchmark ({today})",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/resume.py', *sys.argv[1:]])}`",
        "",
        f"{minutes}-minute 16 kHz WAV of tones ({len(clean_words)} words), WLK simulator 0.2.26 "
        f"at {speed:g}x real time, gateway defaults (lead budget 20 s, chunk 1 s, overlap "
        f"{OVERLAP_SECONDS:g} s). Faulty runs: close 1011 after {fault_after / 60:.1f} min of "
        f"each of the first {failures} sessions. {pairs} pair(s) of runs, order alternating: "
        f"{', '.join(order)}. Python {platform.python_version()}, {os.cpu_count()} CPUs, load "
        f"average {load[0]:.2f} at the end (machine shared).",
        "",
        "| Run | Median wall time (s) | Runs (s) | Sessions | Resumed from (s) |",
        "|---|---|---|---|---|",
        f"| clean | {clean_seconds:.1f} | "
        + ", ".join(f"{seconds:.1f}" for seconds, _ in clean_runs)
        + " | 1 | — |",
        f"| {failures} failures | {faulty_seconds:.1f} | "
        + ", ".join(f"{seconds:.1f}" for seconds, _ in faulty_runs)
        + f" | {failures + 1} | "
        + "; ".join(", ".join(f"{at:.1f}" for at in points) for points in resumes)
        + " |",
        "",
        f"- Extra time (medians): {faulty_seconds - clean_seconds:+.1f} s for {failures} "
        f"failures ({(faulty_seconds - clean_seconds) / max(failures, 1):+.2f} s each).",
        f"- Reconnect (close seen by the simulator → next session opened): mean "
        f"{mean_reconnect:.2f} s over {len(reconnect)} resumes.",
        f"- Target clean + {failures} × (overlap {OVERLAP_SECONDS:g} s + reconnect "
        f"{mean_reconnect:.2f} s) = {target:.1f} s: "
        + ("**met**" if faulty_seconds <= target else "**missed**")
        + ".",
        "- Done text of every run identical to the clean run, word for word: "
        + ("**yes**." if identical else "**NO**."),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--failures", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=1, help="clean/faulty pairs (alternating)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    report = asyncio.run(run(args.minutes, args.speed, args.failures, args.pairs))
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"resume-{dt.date.today().isoformat()}.md"
    out.write_text(report)
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
