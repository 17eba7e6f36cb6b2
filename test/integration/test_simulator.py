"""WLK simulator over real sockets, driven by a plain ``websockets`` client.

Covers the happy path on both profiles, the 0.2.17 tail left in the buffers, every fault mode,
per-connection query overrides, what is recorded, and stop/start on the same port. Every wait is
bounded; speeds are high so the whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from aymurai.simulator import Fault, WLKSimulator

pytestmark = pytest.mark.integration

# Scales every timeout, for slow CI machines.
TIME_UNIT = float(os.environ.get("AYMURAI_TEST_TIME_UNIT", "1"))
TIMEOUT = 5 * TIME_UNIT
QUIET = 0.3 * TIME_UNIT  # how long "nothing more arrives" is watched for
FRAME = 3200  # 100 ms of 16 kHz s16le mono, like the browser client


def tone(hz: float, seconds: float, amplitude: float = 0.3) -> bytes:
    t = np.arange(round(16_000 * seconds)) / 16_000
    return (np.sin(2 * np.pi * hz * t) * amplitude * 32767).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(round(16_000 * seconds) * 2)


# 440 Hz ×2 windows, a 2.5 s pause, 880 Hz ×2 windows, then a 0.3 s 300 Hz sub-window tail.
SPEECH = tone(440, 1.0) + silence(2.5) + tone(880, 1.0) + tone(300, 0.3)
SPEECH_WORDS = ["f440", "f440", "f880", "f880", "f300"]


@pytest.fixture
async def sim() -> AsyncIterator[WLKSimulator]:
    async with WLKSimulator(speed=200.0, fault_after_seconds=1.0) as simulator:
        yield simulator


async def send_audio(ws: ClientConnection, pcm: bytes, frame_bytes: int = FRAME) -> None:
    """Send PCM in frames; stop quietly if the server goes away mid-stream."""
    try:
        for i in range(0, len(pcm), frame_bytes):
            await ws.send(pcm[i : i + frame_bytes])
    except ConnectionClosed:
        pass


async def read_messages(ws: ClientConnection, *, until_type: str = "ready_to_stop") -> list[Any]:
    """Read and decode messages until one of ``until_type`` (included); text that is not JSON is
    kept as a string."""
    messages: list[Any] = []
    async with asyncio.timeout(TIMEOUT):
        async for raw in ws:
            assert isinstance(raw, str)
            try:
                message = json.loads(raw)
            except json.JSONDecodeError:
                message = raw
            messages.append(message)
            if isinstance(message, dict) and message.get("type") == until_type:
                return messages
    raise AssertionError(f"connection closed before {until_type!r}: {messages[-3:]}")


async def assert_silent(ws: ClientConnection) -> None:
    """Nothing more arrives and the socket stays open for a while."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), QUIET)


async def transcribe(url: str, pcm: bytes, frame_bytes: int = FRAME) -> list[Any]:
    """A whole well-behaved session: send, end with b"", read to ready_to_stop, close."""
    async with connect(url) as ws:
        await send_audio(ws, pcm, frame_bytes)
        await ws.send(b"")
        return await read_messages(ws)


def snapshots(messages: list[Any]) -> list[dict[str, Any]]:
    return [m for m in messages if isinstance(m, dict) and "type" not in m]


def final_words(snapshot: dict[str, Any]) -> list[str]:
    """The gateway's reading of a final snapshot: speech lines, then both buffers."""
    text: str = "".join(line["text"] for line in snapshot["lines"] if line["speaker"] != -2)
    text += snapshot["buffer_diarization"] + snapshot["buffer_transcription"]
    return text.split()


# Happy paths -------------------------------------------------------------------------------


async def test_simulator_happy_path_0226_flushes_everything_into_lines(sim: WLKSimulator) -> None:
    """0.2.26: config with mode, no_audio_detected first, final lines hold every word."""
    messages = await transcribe(sim.url, SPEECH)
    assert messages[0] == {"type": "config", "useAudioWorklet": True, "mode": "full"}
    assert messages[1]["status"] == "no_audio_detected"
    assert messages[-1] == {"type": "ready_to_stop"}
    final = messages[-2]
    assert final["status"] == "active_transcription"
    assert final["buffer_transcription"] == final["buffer_diarization"] == ""
    assert final["remaining_time_transcription_processing"] == 0
    assert final["lines"] == [
        {"speaker": 1, "text": " f440 f440", "start": "0:00:00.00", "end": "0:00:01.00"},
        {"speaker": -2, "text": "", "start": "0:00:01.00", "end": "0:00:03.50"},
        {"speaker": 1, "text": " f880 f880 f300", "start": "0:00:03.50", "end": "0:00:04.80"},
    ]
    assert final_words(final) == SPEECH_WORDS == sim.expected_words(SPEECH)


async def test_simulator_happy_path_0217_leaves_the_tail_in_the_buffer(sim: WLKSimulator) -> None:
    """0.2.17: the sub-window tail is dropped and the last word stays in buffer_transcription."""
    messages = await transcribe(sim.url_for(profile="0.2.17"), SPEECH)
    assert messages[0] == {"type": "config", "useAudioWorklet": True}
    final = snapshots(messages)[-1]
    assert "remaining_time_transcription_processing" not in final
    assert [line["text"] for line in final["lines"]] == [" f440 f440", "", " f880"]
    assert [line["start"] for line in final["lines"]] == ["0:00:00", "0:00:01", "0:00:03"]
    assert final["buffer_transcription"] == " f880"
    assert final_words(final) == ["f440", "f440", "f880", "f880"]
    record = await sim.wait_for_session_closed(0)
    assert record.dropped_pcm_bytes == len(tone(300, 0.3))


async def test_simulator_0217_drops_audio_beyond_5_seconds_per_frame(sim: WLKSimulator) -> None:
    """One 8 s frame: 0.2.17 processes 5 s and drops 3 s; 0.2.26 flushes all of it."""
    pcm = tone(500, 8.0)
    old = snapshots(await transcribe(sim.url_for(profile="0.2.17"), pcm, frame_bytes=len(pcm)))
    new = snapshots(await transcribe(sim.url_for(profile="0.2.26"), pcm, frame_bytes=len(pcm)))
    assert len(final_words(old[-1])) == 10
    assert len(final_words(new[-1])) == 16 == len(sim.expected_words(pcm))
    record = await sim.wait_for_session_closed(0)
    assert record.dropped_pcm_bytes == 3 * 32_000
    assert record.max_frame_bytes == len(pcm)


async def test_simulator_diarization_alternates_speakers(sim: WLKSimulator) -> None:
    """With diarization, speakers change at each long pause; 0.2.17 keeps buffer_diarization."""
    pcm = tone(440, 1.0) + silence(2.0) + tone(880, 1.5)
    old = snapshots(await transcribe(sim.url_for(profile="0.2.17", diarization=1), pcm))[-1]
    assert [line["speaker"] for line in old["lines"]] == [1, -2, 2]
    assert old["lines"][2]["text"] == " f880"
    assert old["buffer_diarization"] == old["buffer_transcription"] == " f880"
    assert final_words(old) == sim.expected_words(pcm)
    new = snapshots(await transcribe(sim.url_for(diarization=True), pcm))[-1]
    assert [line["speaker"] for line in new["lines"]] == [1, -2, 2]


async def test_simulator_snapshots_are_sent_only_on_change(sim: WLKSimulator) -> None:
    """Consecutive snapshots differ, except that the final one is always sent."""
    sent = snapshots(await transcribe(sim.url, SPEECH))
    assert all(a != b for a, b in zip(sent[:-2], sent[1:-1], strict=True))


async def test_simulator_reports_processing_backlog_on_0226() -> None:
    """At 4× real time, 2 s of audio sent at once shows a processing backlog that drains to 0."""
    async with WLKSimulator(speed=4.0) as slow:
        sent = snapshots(await transcribe(slow.url, tone(440, 2.0), frame_bytes=32_000))
    backlog = [s["remaining_time_transcription_processing"] for s in sent]
    assert max(backlog) >= 1.0
    assert backlog[-1] == 0


async def test_simulator_transcript_depends_on_the_audio(sim: WLKSimulator) -> None:
    """Byte-swapped PCM (wrong endianness) does not produce the expected words."""
    pcm = tone(440, 1.0)
    swapped = np.frombuffer(pcm, dtype="<i2").astype(">i2").tobytes()
    final = snapshots(await transcribe(sim.url, swapped))[-1]
    assert final_words(final) != sim.expected_words(pcm)


# Session ending ----------------------------------------------------------------------------


async def test_simulator_keeps_the_socket_open_after_ready_to_stop(sim: WLKSimulator) -> None:
    """The server never closes: after ready_to_stop nothing arrives until the client closes."""
    async with connect(sim.url) as ws:
        await send_audio(ws, tone(440, 0.5))
        await ws.send(b"")
        await read_messages(ws)
        await assert_silent(ws)
        await ws.send(tone(440, 0.5))  # ignored, but recorded
        await assert_silent(ws)
    record = await sim.wait_for_session_closed(0)
    assert record.close_code == 1000
    assert record.frames_after_end == 1


async def test_simulator_text_frame_ends_the_session_silently(sim: WLKSimulator) -> None:
    """A text frame: no more messages, no close frame, socket left open."""
    async with connect(sim.url) as ws:
        await read_messages(ws, until_type="config")
        await ws.send('{"type":"stop"}')
        await send_audio(ws, tone(440, 1.0))
        await ws.send(b"")
        while True:  # at most the initial snapshot was in flight
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), QUIET))
            except TimeoutError:
                break
            assert message["status"] == "no_audio_detected"
        assert ws.close_code is None
    record = await sim.wait_for_session_closed(0)
    assert record.text_frames == ['{"type":"stop"}']
    assert record.ready_to_stop_sent_at is None
    assert record.close_code == 1000


# Faults ------------------------------------------------------------------------------------


async def test_simulator_handshake_refused_answers_503(sim: WLKSimulator) -> None:
    """fault=handshake_refused rejects the upgrade with HTTP 503 and opens no session."""
    with pytest.raises(InvalidStatus) as excinfo:
        async with connect(sim.url_for(fault=Fault.HANDSHAKE_REFUSED)):
            pass
    assert excinfo.value.response.status_code == 503
    assert sim.sessions == []
    assert sim.refused_handshakes == 1


async def test_simulator_close_1011_after_fault_after_seconds(sim: WLKSimulator) -> None:
    """fault=close_1011 closes with 1011 once fault_after seconds of audio have arrived."""
    async with connect(sim.url_for(fault="close_1011", fault_after=1.0)) as ws:
        await send_audio(ws, tone(440, 3.0))
        with pytest.raises(ConnectionClosedError) as excinfo:
            await read_messages(ws)
    assert excinfo.value.rcvd is not None and excinfo.value.rcvd.code == 1011
    record = await sim.wait_for_session_closed(0)
    assert record.audio_seconds >= 1.0
    assert record.ready_to_stop_sent_at is None
    assert record.close_code == 1011  # the client's echo of the server's close


async def test_simulator_tcp_drop_closes_without_a_close_frame(sim: WLKSimulator) -> None:
    """fault=tcp_drop aborts the TCP connection: the client sees 1006, no close frame."""
    async with connect(sim.url_for(fault="drop")) as ws:
        await send_audio(ws, tone(440, 3.0))
        with pytest.raises(ConnectionClosedError) as excinfo:
            await read_messages(ws)
    assert excinfo.value.rcvd is None
    assert ws.close_code == 1006
    record = await sim.wait_for_session_closed(0)
    assert record.close_code is None


async def test_simulator_malformed_json_is_interleaved_without_ending(sim: WLKSimulator) -> None:
    """fault=malformed_json adds non-JSON and unknown-type frames; the session still completes."""
    messages = await transcribe(sim.url_for(fault="malformed_json"), SPEECH)
    assert any(isinstance(m, str) for m in messages)
    assert any(isinstance(m, dict) and m.get("type") == "simulator_noise" for m in messages)
    assert messages[-1] == {"type": "ready_to_stop"}
    assert final_words(messages[-2]) == SPEECH_WORDS


async def test_simulator_error_status_then_ready_to_stop(sim: WLKSimulator) -> None:
    """fault=error_status sends an FFmpeg error snapshot, then ready_to_stop, socket still open."""
    async with connect(sim.url_for(fault="error_status")) as ws:
        await send_audio(ws, tone(440, 2.0))
        messages = await read_messages(ws)
        await assert_silent(ws)
    error = messages[-2]
    assert error["status"] == "error"
    assert error["error"].startswith("FFmpeg error:")
    assert error["lines"] == []
    assert list(error)[-1] == "error"


async def test_simulator_error_message_then_close_4400(sim: WLKSimulator) -> None:
    """fault=error_message sends a typed error right after accept, then closes with 4400."""
    async with connect(sim.url_for(fault="error_message")) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        with pytest.raises(ConnectionClosed) as excinfo:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert first["type"] == "error" and first["error"]
    assert excinfo.value.rcvd is not None and excinfo.value.rcvd.code == 4400


async def test_simulator_stall_makes_client_pings_time_out(sim: WLKSimulator) -> None:
    """fault=stall stops reading and ponging; a client with a short ping timeout fails with 1011."""
    url = sim.url_for(fault="stall", fault_after=0.5, stall=1.0)
    async with connect(url, ping_interval=0.1, ping_timeout=0.3, close_timeout=0.2) as ws:
        await send_audio(ws, tone(440, 1.0))
        with pytest.raises(ConnectionClosedError) as excinfo:
            await read_messages(ws)
    assert excinfo.value.sent is not None and excinfo.value.sent.code == 1011
    record = await sim.wait_for_session_closed(0)
    assert record.ready_to_stop_sent_at is None


async def test_simulator_never_ready_sends_the_final_snapshot_only(sim: WLKSimulator) -> None:
    """fault=never_ready processes everything but never sends ready_to_stop."""
    pcm = tone(440, 1.0)
    async with connect(sim.url_for(fault="never_ready")) as ws:
        await read_messages(ws, until_type="config")
        await send_audio(ws, pcm)
        await ws.send(b"")
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(TIMEOUT):
            while not received or final_words(received[-1]) != ["f440", "f440"]:
                received.append(json.loads(await ws.recv()))
            assert received[-1]["buffer_transcription"] == ""
        await assert_silent(ws)
    assert all("type" not in m for m in received)
    assert (await sim.wait_for_session_closed(0)).ready_to_stop_sent_at is None


@pytest.mark.parametrize("query", [{"fault": "no_worklet"}, {"worklet": 0}])
async def test_simulator_no_worklet_expects_a_container(
    sim: WLKSimulator, query: dict[str, Any]
) -> None:
    """No worklet: config says useAudioWorklet false, and raw PCM then fails as FFmpeg would."""
    messages = await transcribe(sim.url_for(**query), tone(440, 1.0))
    assert messages[0]["useAudioWorklet"] is False
    assert messages[-2]["status"] == "error"
    assert messages[-1] == {"type": "ready_to_stop"}


async def test_simulator_constructor_fault_applies_to_every_session() -> None:
    """A fault given to the constructor applies to each connection without a query."""
    async with WLKSimulator(fault=Fault.ERROR_MESSAGE) as faulty:
        for _ in range(2):
            async with connect(faulty.url) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "error"
        assert [r.fault for r in await faulty.wait_for_sessions(2)] == [Fault.ERROR_MESSAGE] * 2


# Query overrides and handshake -------------------------------------------------------------


async def test_simulator_query_overrides_per_connection(sim: WLKSimulator) -> None:
    """One simulator serves a 0.2.17 and a 0.2.26 session side by side; unknown params pass."""
    old = await transcribe(f"{sim.url}?profile=0.2.17&language=es&token=x", tone(440, 1.0))
    new = await transcribe(sim.url, tone(440, 1.0))
    assert "mode" not in old[0] and new[0]["mode"] == "full"
    records = await sim.wait_for_sessions(2)
    assert [r.profile for r in records] == ["0.2.17", "0.2.26"]
    assert records[0].query == "profile=0.2.17&language=es&token=x"


async def test_simulator_rejects_bad_override_values_and_other_paths(sim: WLKSimulator) -> None:
    """A bad value for a known parameter gets 400; a path not ending in /asr gets 403."""
    with pytest.raises(InvalidStatus) as bad_value:
        async with connect(sim.url_for(fault="tcp_dorp")):
            pass
    assert bad_value.value.response.status_code == 400
    with pytest.raises(InvalidStatus) as bad_path:
        async with connect(f"ws://127.0.0.1:{sim.port}/listen"):
            pass
    assert bad_path.value.response.status_code == 403
    async with connect(f"ws://127.0.0.1:{sim.port}/v1/some/prefix/asr") as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "config"
    assert sim.sessions[0].path == "/v1/some/prefix/asr"


# Recording ---------------------------------------------------------------------------------


async def test_simulator_records_frames_audio_and_timing(sim: WLKSimulator) -> None:
    """The record holds the exact PCM, frame sizes, end frame, messages sent and close code."""
    pcm = tone(440, 1.0) + b"\x00"  # an odd size on purpose
    async with connect(f"{sim.url}?x=1") as ws:
        await send_audio(ws, pcm, frame_bytes=5000)
        await ws.send(b"")
        messages = await read_messages(ws)
        await ws.send(b"")
    record = await sim.wait_for_session_closed(0)
    assert record.path == "/asr" and record.query == "x=1"
    assert bytes(record.pcm) == pcm
    assert record.frame_sizes == [5000] * 6 + [2001, 0, 0]
    assert record.max_frame_bytes == 5000
    assert record.empty_frames == 2
    assert record.frames_after_end == 1
    assert record.messages_sent == len(messages)
    assert record.end_frame_at is not None and record.ready_to_stop_sent_at is not None
    assert record.closed_at is not None
    assert record.opened_at < record.end_frame_at < record.ready_to_stop_sent_at < record.closed_at
    assert record.close_code == 1000
    assert sim.open_sessions == 0


async def test_simulator_counts_concurrent_sessions(sim: WLKSimulator) -> None:
    """Three sessions open at once raise max_concurrent_sessions to 3."""
    async with connect(sim.url) as a, connect(sim.url) as b, connect(sim.url) as c:
        await sim.wait_for_sessions(3)
        assert sim.open_sessions == 3
        for ws in (a, b, c):
            await read_messages(ws, until_type="config")
    for index in range(3):
        await sim.wait_for_session_closed(index)
    assert sim.max_concurrent_sessions == 3
    assert sim.open_sessions == 0


async def test_simulator_wait_for_session_closed_times_out(sim: WLKSimulator) -> None:
    """Waiting for a session that never closes raises TimeoutError."""
    async with connect(sim.url):
        with pytest.raises(TimeoutError):
            await sim.wait_for_session_closed(0, timeout=0.1)


# Lifecycle ---------------------------------------------------------------------------------


async def test_simulator_stop_and_start_reuse_the_port(sim: WLKSimulator) -> None:
    """stop() closes open sessions with 1001 and refuses connections; start() serves again."""
    port = sim.port
    async with connect(sim.url) as ws:
        await read_messages(ws, until_type="config")
        await sim.stop()
        async with asyncio.timeout(TIMEOUT):
            await ws.wait_closed()
    assert ws.close_code == 1001
    with pytest.raises(OSError):
        async with connect(sim.url, open_timeout=TIMEOUT):
            pass
    await sim.start()
    assert sim.port == port
    messages = await transcribe(sim.url, tone(440, 0.5))
    assert final_words(snapshots(messages)[-1]) == ["f440"]
    assert len(sim.sessions) == 2
