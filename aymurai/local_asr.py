"""`make run-local` / `aymurai-local`: a CPU WLK with a real Whisper model, plus the gateway.

Starts WLK 0.2.26 from `.venv-local` (built by `make install-local`) on 127.0.0.1:`LOCAL_ASR_PORT`
with the faster-whisper backend and the model `LOCAL_ASR_MODEL` (`tiny.en` or the multilingual
`base`) from `.models/`, waits until it answers `/health`, then runs the gateway
(`python -m aymurai`) pointed at it. One Ctrl-C (SIGINT or SIGTERM) stops both: the gateway first,
so running transcriptions end cleanly while WLK is still there, then WLK. If either process exits
on its own the other is stopped too and the launcher exits with its code.

We supervise two child processes here rather than with shell job control (`wlk & make run`),
because a shell leaves WLK running when the gateway fails to start, and forwards Ctrl-C to both
at once, so WLK may vanish under transcriptions that are still draining.

WLK is started offline: `HF_HUB_OFFLINE=1`, a local `--warmup-file` (its default downloads a sample
from GitHub) and `--backend-policy localagreement` (the default, simulstreaming, needs PyTorch
Whisper weights that are not shipped). The test tier (test/realasr) builds its WLK command line
with `wlk_command()` and `LOCAL_LEAD_BUDGET_SECONDS` so the two never drift apart.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from dotenv import dotenv_values

logger = logging.getLogger("aymurai.local")

MODELS = ("tiny.en", "base")
# tiny.en knows only English; base is multilingual and our users' main case is Spanish court audio.
DEFAULT_LANGUAGE = {"tiny.en": "en", "base": "es"}
WARMUP_FILE = "warmup.wav"
DEFAULT_PORT = 8000
WLK_STARTUP_TIMEOUT_SECONDS = 300.0  # cold imports of torch, numba, ctranslate2 on a busy laptop
WLK_STOP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.5
# A short lead for a CPU WLK: fed 20 s ahead (the default, sized for GPU servers), WLK's
# LocalAgreement decodes big chunks, and the words before a pause of 5 s or more then lack their
# second, confirming pass and are discarded (docs/real-asr.md). With 4 s, tiny.en matched a direct
# real-time client's accuracy and still ran at 0.65x real time (bench/results/real_asr-*.json).
LOCAL_LEAD_BUDGET_SECONDS = 4.0


class LocalAsrError(Exception):
    """The local ASR cannot start (not installed, bad model, WLK died or never got ready)."""


def wlk_command(
    *,
    venv: Path,
    models_dir: Path,
    model: str,
    language: str,
    port: int,
    host: str = "127.0.0.1",
) -> list[str]:
    """The command line of a CPU WLK 0.2.26 serving `model` from `models_dir`.

    Raises:
        LocalAsrError: the venv, the model or the warm-up clip is missing, or `language` does not
            fit `model` (tiny.en is English only).
    """
    if model not in MODELS:
        raise LocalAsrError(f"LOCAL_ASR_MODEL must be one of {', '.join(MODELS)}, not {model!r}")
    if model == "tiny.en" and language != "en":
        raise LocalAsrError(f"tiny.en is English only; use LOCAL_ASR_MODEL=base for {language!r}")
    server = venv / "bin" / "whisperlivekit-server"
    model_dir = models_dir / model
    warmup = models_dir / WARMUP_FILE
    for needed in (server, model_dir / "model.bin", warmup):
        if not needed.exists():
            raise LocalAsrError(f"{needed} is missing: run `make install-local`")
    return [
        str(server),
        "--host",
        host,
        "--port",
        str(port),
        "--pcm-input",
        "--backend",
        "faster-whisper",
        "--backend-policy",
        "localagreement",
        "--model_dir",
        str(model_dir),
        "--lan",
        language,
        "--warmup-file",
        str(warmup),
    ]


def wlk_environment() -> dict[str, str]:
    """The environment WLK runs in: offline, so no library tries the Hugging Face hub."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def is_wlk_healthy(host: str, port: int) -> bool:
    """True when WLK answers `GET /health` with 200 (it binds only once the model is loaded)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2.0) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_for_wlk(
    process: subprocess.Popen[bytes], host: str, port: int, *, timeout_seconds: float
) -> None:
    """Wait until WLK is healthy.

    Raises:
        LocalAsrError: WLK exited or was not healthy within `timeout_seconds`.
    """
    deadline = time.monotonic() + timeout_seconds
    while not is_wlk_healthy(host, port):
        if process.poll() is not None:
            raise LocalAsrError(f"WLK exited with code {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise LocalAsrError(f"WLK was not ready within {timeout_seconds:.0f} s")
        time.sleep(POLL_SECONDS)


def stop_process(process: subprocess.Popen[bytes], sig: int, timeout_seconds: float) -> None:
    """Send `sig`, wait up to `timeout_seconds`, then kill; always reaps the process."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            logger.warning(
                "pid %d did not stop in %.0f s: killing it", process.pid, timeout_seconds
            )
            process.kill()
    process.wait()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    # LOCAL_ASR_* may sit in .env beside the gateway's settings; the real environment wins.
    env = {**{k: v for k, v in dotenv_values(".env").items() if v is not None}, **os.environ}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--model", default=env.get("LOCAL_ASR_MODEL", "tiny.en"), choices=MODELS, help="Whisper"
    )
    parser.add_argument(
        "--language",
        default=env.get("LOCAL_ASR_LANGUAGE") or None,
        help="en, es, … or auto (default: en for tiny.en, es for base)",
    )
    parser.add_argument("--port", type=int, default=int(env.get("LOCAL_ASR_PORT", DEFAULT_PORT)))
    parser.add_argument("--venv", type=Path, default=Path(".venv-local"))
    parser.add_argument("--models-dir", type=Path, default=Path(".models"))
    parser.add_argument("--startup-timeout", type=float, default=WLK_STARTUP_TIMEOUT_SECONDS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[local] %(message)s")
    args = parse_args(argv)
    language = args.language or DEFAULT_LANGUAGE[args.model]
    host = "127.0.0.1"
    try:
        command = wlk_command(
            venv=args.venv,
            models_dir=args.models_dir,
            model=args.model,
            language=language,
            port=args.port,
            host=host,
        )
    except LocalAsrError as exc:
        logger.error("%s", exc)
        return 2

    stop = threading.Event()
    signals_seen = 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            logger.warning("second %s: killing both processes", signal.Signals(signum).name)
            for child in children:
                if child.poll() is None:
                    child.kill()
        stop.set()

    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # Own sessions: a terminal Ctrl-C reaches only this launcher, which stops the children in order.
    logger.info("starting WLK (%s, language %s) on %s:%d", args.model, language, host, args.port)
    wlk = subprocess.Popen(command, env=wlk_environment(), start_new_session=True)
    children.append(wlk)
    try:
        try:
            deadline = time.monotonic() + args.startup_timeout
            while not is_wlk_healthy(host, args.port):
                if stop.is_set():
                    return 130
                if wlk.poll() is not None:
                    raise LocalAsrError(
                        f"WLK exited with code {wlk.returncode} before it was ready"
                    )
                if time.monotonic() > deadline:
                    raise LocalAsrError(f"WLK was not ready within {args.startup_timeout:.0f} s")
                stop.wait(POLL_SECONDS)
        except LocalAsrError as exc:
            logger.error("%s", exc)
            return 1
        gateway_env = {
            **os.environ,
            "TRANSCRIBE_WS_URI": f"ws://{host}:{args.port}/asr",
            # WLK runs inference behind one model lock: two sessions at once both fall below real
            # time on a CPU, so one session at a time (others queue) unless the user says otherwise.
            "TRANSCRIBE_MAX_CONCURRENT_SESSIONS": os.environ.get(
                "TRANSCRIBE_MAX_CONCURRENT_SESSIONS", "1"
            ),
            "TRANSCRIBE_WS_LEAD_BUDGET_SECONDS": os.environ.get(
                "TRANSCRIBE_WS_LEAD_BUDGET_SECONDS", str(LOCAL_LEAD_BUDGET_SECONDS)
            ),
            # The language this WLK transcribes: the only `language` /v1 requests may ask for.
            "TRANSCRIBE_WLK_LANGUAGE": os.environ.get("TRANSCRIBE_WLK_LANGUAGE", language),
        }
        logger.info("WLK ready; starting the gateway (API_HOST/API_PORT from the environment)")
        gateway = subprocess.Popen(
            [sys.executable, "-m", "aymurai"], env=gateway_env, start_new_session=True
        )
        children.insert(0, gateway)
        while not stop.is_set() and wlk.poll() is None and gateway.poll() is None:
            stop.wait(POLL_SECONDS)
        if not stop.is_set():
            which = "WLK" if wlk.poll() is not None else "the gateway"
            logger.error("%s exited on its own; stopping the other", which)
        # The gateway drains running transcriptions (TRANSCRIBE_SHUTDOWN_GRACE_SECONDS) while WLK
        # still serves them; uvicorn's own graceful timeout is grace + 3 s.
        grace = float(os.environ.get("TRANSCRIBE_SHUTDOWN_GRACE_SECONDS", "30")) + 5
        stop_process(gateway, signal.SIGINT, grace)
        code = gateway.returncode
        return 0 if stop.is_set() else (code or 1)
    finally:
        stop_process(wlk, signal.SIGTERM, WLK_STOP_TIMEOUT_SECONDS)
        logger.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
