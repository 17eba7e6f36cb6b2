"""Real Whisper on a CPU: the gateway vs. a minimal direct WLK client vs. offline faster-whisper.

The same espeak-ng speech (test/realasr/speech.py: English for tiny.en, Spanish for base) goes
    1. through the gateway (SSE endpoint; WAV and a compressed copy), with its lead pacing;
    2. straight to WLK with a minimal client: 1 s PCM frames at real-time pace, then the empty
       end-of-audio frame, the transcript being WLK's final lines plus its uncommitted tail;
    3. through faster-whisper offline on the whole file (same model, no streaming): the accuracy
       ceiling.
For each: word error rate against the script and wall time. One WLK process (session cap 1: one
run at a time), started as `make run-local` starts it. Needs `make install-local`.

    .venv/bin/python bench/real_asr.py --model tiny.en
    .venv/bin/python bench/real_asr.py --model base --out bench/results/real_asr-base.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aymurai.local_asr import (  # noqa: E402
    DEFAULT_LANGUAGE,
    stop_process,
    wait_for_wlk,
    wlk_command,
    wlk_environment,
)
from test.contract.wlk_harness import wav_to_pcm16k  # noqa: E402
from test.e2e import iter_sse, make_settings, run_gateway, upload_files  # noqa: E402
from test.realasr.speech import (  # noqa: E402
    SCRIPTS,
    Script,
    encode,
    espeak_binary,
    has_last_words,
    synthesize,
    word_error_rate,
)

VENV = ROOT / ".venv-local"
MODELS_DIR = ROOT / ".models"
FRAME_BYTES = 32000  # 1 s of s16le 16 kHz mono

OFFLINE_SCRIPT = """
import json, sys, time
from faster_whisper import WhisperModel
model_dir, audio, language = sys.argv[1:4]
started = time.monotonic()
model = WhisperModel(model_dir, device="cpu", compute_type="int8")
loaded = time.monotonic()
segments, _ = model.transcribe(audio, language=language)
text = " ".join(s.text.strip() for s in segments)
print(json.dumps({"text": text, "load_seconds": loaded - started,
                  "seconds": time.monotonic() - loaded}))
"""


def wlk_text(snapshot: dict[str, Any]) -> str:
    """WLK's transcript in a snapshot: speech lines, then the uncommitted tail."""
    parts = [line.get("text") or "" for line in snapshot["lines"] if line["speaker"] != -2]
    parts.append(snapshot.get("buffer_diarization") or "")
    parts.append(snapshot.get("buffer_transcription") or "")
    return " ".join(p.strip() for p in parts if p.strip())


async def direct_client(url: str, wav: Path) -> dict[str, Any]:
    """A minimal WLK client: 1 s frames at real-time pace, then b"", until ready_to_stop."""
    pcm = wav_to_pcm16k(wav)
    final: dict[str, Any] | None = None
    started = time.monotonic()
    async with websockets.connect(url, max_size=None) as ws:

        async def send() -> None:
            for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
                await ws.send(pcm[offset : offset + FRAME_BYTES])
                await asyncio.sleep(max(0.0, started + index + 1 - time.monotonic()))
            await ws.send(b"")

        sender = asyncio.create_task(send())
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "ready_to_stop":
                break
            if "lines" in message:
                final = message
        await sender
    return {"text": wlk_text(final) if final else "", "seconds": time.monotonic() - started}


async def through_gateway(
    wlk_url: str, audio: Path, tmp: Path, lead_budget: float
) -> dict[str, Any]:
    settings = make_settings(
        tmp,
        transcribe_ws_uri=wlk_url,
        transcribe_ws_lead_budget_seconds=lead_budget,
        transcribe_max_concurrent_sessions=1,
        transcribe_ws_idle_timeout_seconds=60.0,
        transcribe_ws_ready_timeout_seconds=120.0,
    )
    async with run_gateway(settings) as gateway:
        async with gateway.client(timeout=httpx.Timeout(600.0)) as client:
            started = time.monotonic()
            done: dict[str, Any] | None = None
            async with client.stream(
                "POST",
                "/asr/transcribe/stream",
                params={"use_cache": "false"},
                files=upload_files(audio),
            ) as response:
                async for frame in iter_sse(response):
                    if frame.event in ("done", "error"):
                        done = frame.json()
                        break
            seconds = time.monotonic() - started
    if done is None or "document" not in done:
        raise RuntimeError(f"the gateway failed: {done}")
    text = " ".join(p["text"] for p in done["document"])
    return {"text": text, "seconds": seconds}


def offline(model_dir: Path, audio: Path, language: str) -> dict[str, Any]:
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", OFFLINE_SCRIPT, str(model_dir), str(audio), language],
        env=wlk_environment(),
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def score(script: Script, run: dict[str, Any], audio_seconds: float) -> dict[str, Any]:
    return {
        **run,
        "wer": round(word_error_rate(script.text, run["text"]), 4),
        "last_sentence": has_last_words(run["text"], script),
        "x_real_time": round(run["seconds"] / audio_seconds, 3),
        "seconds": round(run["seconds"], 2),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def streaming_runs(
    url: str,
    script: Script,
    audio: dict[str, Path],
    tmp: Path,
    audio_seconds: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for budget in args.lead_budgets:
        for kind in args.formats:
            name = f"gateway_{kind}_lead{budget:g}"
            run = await through_gateway(url, audio[kind], tmp, budget)
            runs[name] = score(script, run, audio_seconds)
            print(f"{name}: WER {runs[name]['wer']}, {runs[name]['seconds']} s", flush=True)
    if not args.gateway_only:
        runs["direct_wav"] = score(script, await direct_client(url, audio["wav"]), audio_seconds)
        print(f"direct_wav: {runs['direct_wav']['wer']}", flush=True)
    return runs


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    model = args.model
    language = DEFAULT_LANGUAGE[model]
    script = SCRIPTS["en" if model == "tiny.en" else "es"]
    espeak = espeak_binary()
    if espeak is None:
        raise SystemExit("espeak-ng is missing: make install-local")
    tmp = Path(tempfile.mkdtemp(prefix="real-asr-"))
    wav = synthesize(script, tmp / f"{script.language}.wav", espeak=espeak)
    compressed = encode(wav, tmp / f"{script.language}.mp3", fmt="mp3")
    audio_seconds = len(wav_to_pcm16k(wav)) / FRAME_BYTES
    port = free_port()
    command = wlk_command(
        venv=VENV, models_dir=MODELS_DIR, model=model, language=language, port=port
    )
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "model": model,
        "language": language,
        "audio_seconds": round(audio_seconds, 2),
        "reference_words": len(script.text.split()),
    }
    with (tmp / "wlk.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=wlk_environment(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            started = time.monotonic()
            wait_for_wlk(process, "127.0.0.1", port, timeout_seconds=300)
            results["wlk_startup_seconds"] = round(time.monotonic() - started, 1)
            url = f"ws://127.0.0.1:{port}/asr"
            audio = {"wav": wav, "mp3": compressed}
            runs = asyncio.run(streaming_runs(url, script, audio, tmp, audio_seconds, args))
        finally:
            stop_process(process, 15, 10)
    if not args.gateway_only:
        offline_run = offline(MODELS_DIR / model, wav, language)
        runs["offline_wav"] = score(script, offline_run, audio_seconds)
    results["runs"] = runs
    results["load_after"] = round(os.getloadavg()[0], 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", choices=["tiny.en", "base"], default="tiny.en")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument(
        "--lead-budgets",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[20.0, 4.0],
        help="TRANSCRIBE_WS_LEAD_BUDGET_SECONDS values to compare (comma-separated)",
    )
    parser.add_argument("--formats", type=lambda v: v.split(","), default=["wav", "mp3"])
    parser.add_argument("--gateway-only", action="store_true", help="no direct or offline run")
    args = parser.parse_args()
    results = run_benchmark(args)
    out = args.out or ROOT / "bench" / "results" / f"real_asr-{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"\n{args.model} ({results['language']}), {results['audio_seconds']} s of speech:")
    print("| run | WER | last sentence | wall s | x real time |")
    print("|---|---|---|---|---|")
    for name, run in results["runs"].items():
        print(
            f"| {name} | {run['wer']:.3f} | {'yes' if run['last_sentence'] else 'no'} "
            f"| {run['seconds']:.1f} | {run['x_real_time']:.2f} |"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
