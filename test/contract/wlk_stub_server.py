"""Run the real WhisperLiveKit server code with a stub ASR (no model weights).

Runs under the WLK venv (`.venv-wlk/bin/python`, see scripts/install-contract.sh), never under
the gateway's venv. Everything but the ASR is WLK's own code: the FastAPI app and `/asr`
endpoint, `AudioProcessor`, the Silero VAD (ONNX), line building, `ready_to_stop`.

The stub ASR emits one deterministic word (`word001`, `word002`, ...) per `--word-seconds` of
speech that gets past the VAD, counted per utterance (speech shorter than one word before a pause
yields no word, so no word spans a pause). Each pass commits all but the newest word, which stays
in `buffer_transcription` until the next pass, a silence or the end of stream; each pass sleeps
`--rtf` x its audio duration to model inference cost. Every word is appended, as a JSON line
`{"session": N, "word": "word001", "start": s, "end": s}`, to `--word-log`, so tests
know exactly which words the transcript must contain.

Once the server accepts connections it prints `WLK_STUB_LISTENING port=NNNN` on stdout.

    .venv-wlk/bin/python test/contract/wlk_stub_server.py --port 0 --word-log /tmp/words.jsonl
    .venv-wlk/bin/python test/contract/wlk_stub_server.py --self-check   # build the app, exit

Arguments after `--` are passed to WLK's own parser (e.g. `-- --no-vac`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

SAMPLING_RATE = 16000
LISTENING_PREFIX = "WLK_STUB_LISTENING"
STARTUP_TIMEOUT_S = 60.0


def parse_stub_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split our own options from the ones after `--`, which go to WLK's parser."""
    if "--" in argv:
        cut = argv.index("--")
        own, wlk_extra = argv[:cut], argv[cut + 1 :]
    else:
        own, wlk_extra = argv, []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--rtf", type=float, default=0.05, help="stub inference cost x audio")
    parser.add_argument("--word-seconds", type=float, default=0.5, help="speech per word")
    parser.add_argument("--word-log", type=Path, default=None, help="JSON lines of words")
    parser.add_argument("--self-check", action="store_true", help="build the app and exit")
    return parser.parse_args(own), wlk_extra


class WordLog:
    """Thread-safe JSON-lines log of the words every session produced."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        if path is not None:
            path.write_text("")

    def write(self, session: int, word: str, start: float, end: float) -> None:
        if self._path is None:
            return
        line = json.dumps({"session": session, "word": word, "start": start, "end": end})
        with self._lock, self._path.open("a") as f:
            f.write(line + "\n")


class StubASR:
    """Stands in for the shared ASR model: WLK reads only `sep` (and a few optional attributes)."""

    sep = ""  # tokens carry Whisper's leading space, as the SimulStreaming backend's do
    tokenizer = None
    buffer_trimming = "segment"
    buffer_trimming_sec = 15.0
    confidence_validation = False
    backend_choice = "stub"


class StubOnlineProcessor:
    """A per-session online processor with the interface AudioProcessor calls.

    One word per `word_seconds` of inserted speech; each pass commits all but the newest word.
    Times are on WLK's stream clock (the `audio_stream_end_time` WLK passes, which includes
    the silences the VAD removed).
    """

    SAMPLING_RATE = SAMPLING_RATE

    def __init__(
        self, asr: StubASR, session: int, rtf: float, word_seconds: float, log: WordLog
    ) -> None:
        from whisperlivekit.timed_objects import ASRToken, Transcript

        self._token_cls = ASRToken
        self._transcript_cls = Transcript
        self.asr = asr
        self.session = session
        self.rtf = rtf
        self.samples_per_word = int(word_seconds * SAMPLING_RATE)
        self.log = log
        self.speech_samples = 0  # speech of the current utterance (since the last silence)
        self.utterance_words = 0
        self.stream_end = 0.0
        self.n_words = 0
        self.unprocessed_s = 0.0
        self.hypothesis: list[Any] = []  # produced, not yet committed (ASRToken)
        self.chunks: list[tuple[int, float]] = []  # (first speech sample, stream start time)
        self.committed_end = 0.0

    # -- audio in --------------------------------------------------------------------------------
    def _stream_time(self, speech_sample: int, *, is_end: bool = False) -> float:
        """Stream-clock time of a sample index in the concatenated speech the VAD let through.

        An end index on a chunk boundary maps to the end of the earlier chunk, not to the start
        of the next one (which may come after a silence).
        """
        for first_sample, stream_start in reversed(self.chunks):
            if speech_sample > first_sample or (speech_sample == first_sample and not is_end):
                return stream_start + (speech_sample - first_sample) / SAMPLING_RATE
        return 0.0

    def insert_audio_chunk(self, audio: Any, audio_stream_end_time: float | None = None) -> None:
        n = len(audio)
        chunk_s = n / SAMPLING_RATE
        if audio_stream_end_time is None:
            audio_stream_end_time = self.stream_end + chunk_s
        self.chunks.append((self.speech_samples, audio_stream_end_time - chunk_s))
        self.speech_samples += n
        self.unprocessed_s += chunk_s
        self.stream_end = max(self.stream_end, audio_stream_end_time)
        while (self.utterance_words + 1) * self.samples_per_word <= self.speech_samples:
            first = self.utterance_words * self.samples_per_word
            self.utterance_words += 1
            self.n_words += 1
            # A word never starts before the previous one ended (the stream clock is monotonic).
            prev_end = self.hypothesis[-1].end if self.hypothesis else self.committed_end
            word_start = round(max(prev_end, self._stream_time(first)), 3)
            word_end = round(self._stream_time(first + self.samples_per_word, is_end=True), 3)
            word = f"word{self.n_words:03d}"
            self.log.write(self.session, word, word_start, word_end)
            self.hypothesis.append(self._token_cls(start=word_start, end=word_end, text=" " + word))
        # Only chunks holding not-yet-worded speech are needed for later lookups.
        first_needed = self.utterance_words * self.samples_per_word
        while len(self.chunks) > 1 and self.chunks[1][0] <= first_needed:
            self.chunks.pop(0)

    # -- passes ------------------------------------------------------------------------------------
    def _commit(self, keep: int) -> list[Any]:
        cut = max(0, len(self.hypothesis) - keep)
        committed, self.hypothesis = self.hypothesis[:cut], self.hypothesis[cut:]
        if committed:
            self.committed_end = committed[-1].end
        return committed

    def _infer(self) -> None:
        if self.rtf > 0 and self.unprocessed_s > 0:
            time.sleep(self.rtf * self.unprocessed_s)
        self.unprocessed_s = 0.0

    def process_iter(self, *_args: Any, **_kwargs: Any) -> tuple[list[Any], float]:
        self._infer()
        return self._commit(keep=1), self.stream_end

    def get_buffer(self) -> Any:
        if not self.hypothesis:
            return self._transcript_cls(None, None, "")
        text = "".join(t.text for t in self.hypothesis)
        return self._transcript_cls(self.hypothesis[0].start, self.hypothesis[-1].end, text)

    def _end_utterance(self) -> None:
        # Words never straddle a pause: speech shorter than one word before it yields none.
        self.speech_samples = 0
        self.utterance_words = 0
        self.chunks = []

    def start_silence(self) -> tuple[list[Any], float]:
        self._end_utterance()
        self._infer()
        return self._commit(keep=0), self.stream_end

    def end_silence(self, silence_duration: float | None, offset: float) -> None:  # noqa: ARG002
        if silence_duration and silence_duration > 0:
            self.stream_end += silence_duration

    def new_speaker(self, _change_speaker: Any) -> tuple[list[Any], float]:
        return self._commit(keep=0), self.stream_end

    def finish(self) -> tuple[list[Any], float]:
        self._end_utterance()
        self._infer()
        return self._commit(keep=0), self.stream_end


def build_app(args: argparse.Namespace, wlk_extra: list[str], port: int) -> Any:
    """Steps 1-3 of the recipe: argv, engine singleton without models, patched online_factory."""
    # 1. basic_server calls parse_args() at import time.
    sys.argv = [
        "wlk",
        "--pcm-input",
        "--host",
        args.host,
        "--port",
        str(port),
        "--warmup-file",
        "",
        *wlk_extra,
    ]
    from whisperlivekit import audio_processor, core
    from whisperlivekit.parse_args import parse_args

    config = parse_args()

    # 2. Pre-build the TranscriptionEngine singleton, loading no model.
    engine = core.TranscriptionEngine.__new__(core.TranscriptionEngine)
    if hasattr(config, "__dataclass_fields__"):  # 0.2.20+: WhisperLiveKitConfig
        from dataclasses import asdict

        engine.config = config
        engine.args = argparse.Namespace(**asdict(config))
    else:  # older: a plain Namespace with no_* flags
        ns = argparse.Namespace(**vars(config))
        ns.vac = not getattr(ns, "no_vac", False)
        ns.vad = not getattr(ns, "no_vad", False)
        ns.transcription = not getattr(ns, "no_transcription", False)
        engine.config = ns
        engine.args = ns
    engine.asr = StubASR()
    engine.tokenizer = None
    engine.diarization = None
    engine.diarization_model = None
    engine.translation_model = None
    engine.vac_session = None
    if getattr(engine.args, "vac", True):
        from whisperlivekit.silero_vad_iterator import load_onnx_session

        engine.vac_session = load_onnx_session()
    core.TranscriptionEngine._initialized = True

    # 3. Every session gets a stub online processor.
    log = WordLog(args.word_log)
    sessions = itertools.count(1)
    lock = threading.Lock()

    def online_factory(_args: Any, asr: Any, language: Any = None) -> StubOnlineProcessor:  # noqa: ARG001
        with lock:
            session = next(sessions)
        return StubOnlineProcessor(asr, session, args.rtf, args.word_seconds, log)

    audio_processor.online_factory = online_factory

    from whisperlivekit import basic_server

    return basic_server.app


async def serve(app: Any, sock: socket.socket) -> None:
    """Step 4: uvicorn on an already-bound socket; announce the port once it is serving."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if task.done():
            await task  # re-raise the startup failure
            raise SystemExit("uvicorn exited during startup")
        if time.monotonic() > deadline:
            raise SystemExit(f"uvicorn did not start within {STARTUP_TIMEOUT_S} s")
        await asyncio.sleep(0.05)
    port = sock.getsockname()[1]
    print(f"{LISTENING_PREFIX} port={port}", flush=True)  # noqa: T201
    await task


def main(argv: list[str] | None = None) -> None:
    args, wlk_extra = parse_stub_args(sys.argv[1:] if argv is None else argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    sock.setblocking(False)
    app = build_app(args, wlk_extra, sock.getsockname()[1])
    if args.self_check:
        import whisperlivekit

        version = getattr(whisperlivekit, "__version__", None)
        if version is None:
            from importlib.metadata import version as dist_version

            version = dist_version("whisperlivekit")
        print(f"WLK_STUB_OK whisperlivekit={version} app={type(app).__name__}")  # noqa: T201
        sock.close()
        return
    asyncio.run(serve(app, sock))


if __name__ == "__main__":
    main()
