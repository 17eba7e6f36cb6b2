"""The `/asr` protocol as the real WhisperLiveKit server speaks it (stub ASR, real speech).

These pin down what the gateway's WLK client relies on (docs/contract-tests.md).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from .wlk_harness import SAMPLE_RATE, RealWlk

pytestmark = pytest.mark.contract

FRAME_SECONDS = 1.0
SESSION_TIMEOUT_S = 60.0
TIME_RE = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)(?:\.(\d{1,2}))?$")
SNAPSHOT_FIELDS = {
    "status",
    "lines",
    "buffer_transcription",
    "buffer_diarization",
    "buffer_translation",
    "remaining_time_transcription",
    "remaining_time_diarization",
}
SNAPSHOT_FIELDS_0223 = {
    "remaining_time_transcription_processing",
    "remaining_time_transcription_policy",
}


def parse_time(value: str) -> float:
    """Seconds from WLK's `H:MM:SS` (0.2.17) or `H:MM:SS.cc` (0.2.20+)."""
    match = TIME_RE.match(value)
    assert match, f"unparsable WLK time {value!r}"
    hours, minutes, seconds, centis = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(centis or 0) / 100


def final_words(snapshot: dict[str, Any]) -> list[str]:
    """Final transcript: non-silence lines' text + buffer_diarization + buffer_transcription."""
    parts = [line["text"] or "" for line in snapshot["lines"] if line["speaker"] != -2]
    parts += [snapshot["buffer_diarization"], snapshot["buffer_transcription"]]
    return " ".join(parts).split()


async def send_pcm(ws: ClientConnection, pcm: bytes, frame_seconds: float = FRAME_SECONDS) -> None:
    """Send PCM as binary frames of at most `frame_seconds`, then the empty end-of-stream frame."""
    step = int(SAMPLE_RATE * frame_seconds) * 2
    for offset in range(0, len(pcm), step):
        await ws.send(pcm[offset : offset + step])
    await ws.send(b"")


async def receive_until_ready(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message after `config`, up to and including `ready_to_stop`."""
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1].get("type") != "ready_to_stop":
        raw = await ws.recv()
        assert isinstance(raw, str), "WLK sends JSON text frames only"
        messages.append(json.loads(raw))
    return messages


async def test_wlk_asr_streams_speech_to_final_transcript(
    real_wlk_server: RealWlk, speech_pcm: bytes
) -> None:
    """Speech PCM in 1 s frames + b"" gives snapshots, then ready_to_stop with every stub word."""
    async with asyncio.timeout(SESSION_TIMEOUT_S):
        async with connect(real_wlk_server.url, max_size=None) as ws:
            config = json.loads(await ws.recv())
            assert config["type"] == "config"
            assert config["useAudioWorklet"] is True  # --pcm-input: raw s16le is expected
            assert config.get("mode", "full") == "full"  # `mode` exists from 0.2.20

            receiver = asyncio.create_task(receive_until_ready(ws))
            await send_pcm(ws, speech_pcm)
            messages = await receiver

            # ready_to_stop ends the results, but the server leaves the socket open:
            # the client has to close it (a close here would raise ConnectionClosed).
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), timeout=1.0)
            assert ws.state is State.OPEN

    is_0217 = real_wlk_server.version == "0.2.17"
    assert messages[-1] == {"type": "ready_to_stop"}
    snapshots = messages[:-1]
    assert snapshots, "no status snapshot before ready_to_stop"
    for snapshot in snapshots:
        assert "type" not in snapshot, f"unexpected typed message {snapshot}"
        assert SNAPSHOT_FIELDS <= snapshot.keys(), f"missing fields in {snapshot}"
        assert (SNAPSHOT_FIELDS_0223 <= snapshot.keys()) is not is_0217, snapshot
        assert snapshot["status"] in {"no_audio_detected", "active_transcription"}, snapshot
        for line in snapshot["lines"]:
            start, end = parse_time(line["start"]), parse_time(line["end"])
            assert start <= end, line
            assert isinstance(line["speaker"], int)

    final = snapshots[-1]
    assert final["status"] == "active_transcription"
    expected = real_wlk_server.words()
    # ~10 s of speech past the VAD at one word per 0.5 s: the VAD let the speech through.
    assert len(expected) >= 10, f"stub produced only {expected}; did the VAD drop the speech?"
    assert final_words(final) == expected

    # Each speech line spans exactly its stub words, on WLK's stream clock: centiseconds from
    # 0.2.20, whole seconds truncated on 0.2.17 (whose clock drifts at other than 1x real time,
    # but the stub's times come from that same clock).
    records = {r["word"]: r for r in real_wlk_server.word_records()}
    speech_lines = [line for line in final["lines"] if line["speaker"] != -2]
    for line in speech_lines:
        words = line["text"].split()
        first, last = records[words[0]], records[words[-1]]
        assert line["text"].startswith(" ")  # Whisper's leading space is kept
        if is_0217:
            assert parse_time(line["start"]) == int(first["start"])
            assert parse_time(line["end"]) == int(last["end"])
        else:
            assert parse_time(line["start"]) == pytest.approx(first["start"], abs=0.011)
            assert parse_time(line["end"]) == pytest.approx(last["end"], abs=0.011)
    assert all(line["speaker"] == 1 for line in speech_lines)  # no diarization: always speaker 1
    audio_seconds = len(speech_pcm) / (2 * SAMPLE_RATE)
    assert max(parse_time(line["end"]) for line in final["lines"]) <= audio_seconds
    if not is_0217:
        # The 6 s pause (> --pause-segmentation-seconds 5) becomes a silence line between two
        # speech lines, in time order. (0.2.17, fed this fast, ends with a 0:00:00 silence line.)
        kinds = ["silence" if line["speaker"] == -2 else "speech" for line in final["lines"]]
        assert kinds == ["speech", "silence", "speech"], final["lines"]
        starts = [parse_time(line["start"]) for line in final["lines"]]
        assert starts == sorted(starts), "lines are not in time order"


QUIET_S = 3.0


async def test_wlk_asr_quiet_once_caught_up_until_end_of_stream(
    real_wlk_server: RealWlk, speech_pcm: bytes
) -> None:
    """Fed ahead of real time, 0.2.26 is silent once caught up (0.2.17 keeps sending) until b""."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(SESSION_TIMEOUT_S):
        async with connect(real_wlk_server.url, max_size=None) as ws:
            await ws.recv()  # config
            step = int(SAMPLE_RATE * FRAME_SECONDS) * 2
            for offset in range(0, len(speech_pcm), step):
                await ws.send(speech_pcm[offset : offset + step])
            # ~20 s of audio sent at once: the wall clock stays behind the audio clock for the
            # whole observation window, so the wall-clock lag field is clamped to 0.
            is_0217 = real_wlk_server.version == "0.2.17"
            window = QUIET_S if is_0217 else 3 * QUIET_S
            started = loop.time()
            gaps: list[float] = []
            last = started
            quiet = False
            while loop.time() - started < window:
                try:
                    await asyncio.wait_for(ws.recv(), timeout=QUIET_S)
                except TimeoutError:
                    quiet = True
                    break
                gaps.append(loop.time() - last)
                last = loop.time()
            if is_0217:
                # Unchanged snapshots are re-sent about every 50 ms: never quiet.
                assert not quiet and max(gaps) < 1.0, gaps
            else:
                assert quiet, f"no {QUIET_S} s silence within {window} s: gaps {gaps}"

            eos = loop.time()
            await ws.send(b"")
            messages = await receive_until_ready(ws)
            assert loop.time() - eos < 2.0  # caught up: the final answer comes at once
    assert final_words(messages[-2]) == real_wlk_server.words()
