"""``python -m aymurai.simulator`` / ``aymurai-wlk-simulator``: run the WLK simulator standalone.

Lets a newcomer try the gateway without a GPU: point ``TRANSCRIBE_WS_URI`` at the printed URL.
Logs go to stderr, starting with a warning that the transcripts are synthetic.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from aymurai.simulator.options import Fault
from aymurai.simulator.protocol import PROFILES
from aymurai.simulator.server import WLKSimulator

logger = logging.getLogger("aymurai.simulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aymurai-wlk-simulator",
        description="WhisperLiveKit /asr protocol simulator (synthetic transcripts, no GPU).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="0.2.26")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="processing speed, × real time (default 1)"
    )
    parser.add_argument("--fault", choices=[f.value for f in Fault], default=None)
    parser.add_argument("--fault-after", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument(
        "--fault-times", type=int, default=0, metavar="N", help="fire in N sessions only (0: all)"
    )
    parser.add_argument("--stall-seconds", type=float, default=30.0)
    parser.add_argument("--pause-seconds", type=float, default=2.0)
    parser.add_argument("--diarization", action="store_true")
    parser.add_argument(
        "--no-worklet", action="store_true", help="announce useAudioWorklet=false (container input)"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


async def serve_until_signalled(simulator: WLKSimulator) -> None:
    """Serve until SIGINT or SIGTERM, then close open sessions (1001) and return."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM too, so `docker stop` or a process manager gets the same clean shutdown as Ctrl-C.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with simulator:
        logger.info("serving %s (Ctrl-C to stop)", simulator.url)
        await stop.wait()
        logger.info("stopping")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        simulator = WLKSimulator(
            profile=args.profile,
            speed=args.speed,
            fault=args.fault,
            fault_after_seconds=args.fault_after,
            fault_times=args.fault_times,
            diarization=args.diarization,
            use_audio_worklet=not args.no_worklet,
            stall_seconds=args.stall_seconds,
            pause_seconds=args.pause_seconds,
            host=args.host,
            port=args.port,
        )
    except ValueError as exc:
        parser.error(str(exc))
    logger.warning(
        "SIMULATOR: transcripts are synthetic (one word per 0.5 s of sound, named after its "
        "dominant frequency, e.g. 'f440'); this is not speech recognition"
    )
    asyncio.run(serve_until_signalled(simulator))


if __name__ == "__main__":
    main()
