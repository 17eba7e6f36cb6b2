"""Resume after a mid-file failure: the job reconnects, resends from a seek point, and the done
text equals a run without the fault, word for word (simulator over real sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aymurai.simulator import WLKSimulator
from aymurai.simulator.recognizer import BYTES_PER_SECOND
from test.audio_fixtures import make_audio_file, make_corrupt_copy
from test.e2e import (
    StreamResult,
    document_words,
    make_settings,
    run_gateway,
    seconds,
    spooled_files,
    stream_transcription,
    upload_files,
)
from test.events import follow_events

pytestmark = pytest.mark.integration

CHUNK_SECONDS = 1.0
OVERLAP_SECONDS = 2.0  # TRANSCRIBE_WS_RESUME_OVERLAP_SECONDS, the default
# Tones of whole half seconds (the simulator's word windows) with a long pause (a silence line):
# distinct words, so a word lost or doubled at the seam shows in the text.
SEGMENTS: list[tuple[float, float]] = [
    (440, 1.5),
    (660, 1.0),
    (880, 2.0),
    (550, 1.5),
    (700, 2.0),
    (0, 1.0),
    (330, 1.5),
    (990, 1.0),
    (620, 2.0),
    (0, 2.5),
    (470, 1.5),
    (810, 2.5),
    (370, 1.5),
    (760, 2.0),
    (0, 2.0),
    (520, 1.5),
    (930, 2.5),
    (410, 1.0),
    (680, 2.0),
    (0, 1.5),
    (850, 2.0),
    (590, 2.0),
]
SECONDS = sum(length for _, length in SEGMENTS)
FAULT_AT_SECONDS = 0.4 * SECONDS


def tone_file(tmp_path: Path) -> Path:
    return make_audio_file(tmp_path, fmt="wav_s16", tone_hz=SEGMENTS, name="tones")


def word_times(done: dict[str, Any]) -> list[tuple[str, float]]:
    """(word, estimated centre) of every word: each paragraph's words spread over start–end."""
    result = []
    for paragraph in done["document"]:
        words = paragraph["text"].split()
        step = (paragraph["end"] - paragraph["start"]) / len(words)
        result += [(w, paragraph["start"] + (i + 0.5) * step) for i, w in enumerate(words)]
    return result


def current_times(result: StreamResult) -> list[float]:
    return [
        frame.json()["current_time"]
        for frame in result.events
        if frame.event in ("transcription", "done")
    ]


def upstream_events(result: StreamResult) -> list[dict[str, Any]]:
    return [frame.json() for frame in result.of("upstream")]


@pytest.mark.parametrize(
    ("fault", "extra", "idle_timeout"),
    [
        pytest.param("close_1011", {}, 10.0, id="1011"),
        pytest.param("tcp_drop", {}, 10.0, id="tcp-drop"),
        pytest.param("overload", {}, 10.0, id="overload-pr435"),
        pytest.param("stall", {"stall": 30}, 4.0, id="stall-past-idle-timeout"),
    ],
)
async def test_resume_after_fault_matches_a_clean_run(
    tmp_path: Path, fault: str, extra: dict[str, object], idle_timeout: float
) -> None:
    """A fault at 40 % once: same words as a clean run, times within a chunk, time never goes
    back, and the simulator saw a second session starting at the seek point."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url_for(
                fault=fault, fault_after=FAULT_AT_SECONDS, fault_times=1, **extra
            ),
            transcribe_ws_chunk_seconds=CHUNK_SECONDS,
            # Above the 2.5 s pause, below the stall.
            transcribe_ws_idle_timeout_seconds=seconds(idle_timeout),
            # A small lead: WLK has transcribed most of what it received when the fault hits,
            # so the seek point is well into the file (not 0, which would prove little).
            transcribe_ws_lead_budget_seconds=5.0,
        )
        audio = tone_file(tmp_path)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            resumed = await stream_transcription(client, audio, timeout_seconds=60)
            clean = await stream_transcription(client, audio, use_cache=False, timeout_seconds=60)
            stored = await client.get(
                f"/asr/validation/document/{resumed.headers['x-document-id']}"
            )
        sessions = simulator.sessions

    assert resumed.last.event == "done", resumed.last.data
    assert clean.last.event == "done"
    assert len(sessions) == 3  # failed, resumed, clean
    assert sessions[0].fault_fired and not sessions[1].fault_fired
    resumed_words = document_words(resumed.last.json())
    assert resumed_words == document_words(clean.last.json())
    assert resumed_words == simulator.expected_words(sessions[2].pcm)
    for (word, at), (clean_word, clean_at) in zip(
        word_times(resumed.last.json()), word_times(clean.last.json()), strict=True
    ):
        assert word == clean_word
        # Paragraph times never go back on the wire (StreamTimeline), so they hold only because
        # the seam's cut line goes on with the new session's words and a tail's provisional end
        # stops where the sound stops (not inside a pause WLK is processing).
        assert abs(at - clean_at) <= CHUNK_SECONDS

    times = current_times(resumed)
    assert times == sorted(times), "current_time went back"
    assert times[-1] == pytest.approx(SECONDS, abs=0.01)

    reconnecting, resumed_event = upstream_events(resumed)
    seek = reconnecting["resume_from"]
    assert reconnecting == {"state": "reconnecting", "attempt": 1, "resume_from": seek}
    assert resumed_event == {"state": "resumed", "attempt": 1, "resume_from": seek}
    assert 4.0 <= seek < FAULT_AT_SECONDS
    # The second session starts exactly at the seek point: the file's PCM from there on.
    skip = round(seek * BYTES_PER_SECOND / 2) * 2
    assert bytes(sessions[1].pcm) == bytes(sessions[2].pcm[skip:])
    assert stored.status_code == 200
    assert spooled_files(settings) == []


async def test_resume_gives_up_after_max_resumes(tmp_path: Path) -> None:
    """Three failures in a row with TRANSCRIBE_WS_MAX_RESUMES=2: `error`, nothing stored."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url_for(fault="close_1011", fault_after=2.0, fault_times=3),
            transcribe_ws_max_resumes=2,
        )
        audio = tone_file(tmp_path)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio, timeout_seconds=60)
            stored = await client.get(f"/asr/validation/document/{result.headers['x-document-id']}")
        sessions = simulator.sessions

    assert result.last.event == "error"
    assert result.last.json()["code"] == "UPSTREAM_SERVICE_ERROR"
    assert "done" not in [frame.event for frame in result.events]
    assert [(e["state"], e["attempt"]) for e in upstream_events(result)] == [
        ("reconnecting", 1),
        ("resumed", 1),
        ("reconnecting", 2),
        ("resumed", 2),
    ]
    assert len(sessions) == 3
    assert stored.status_code == 404
    assert spooled_files(settings) == []


async def test_resume_is_off_with_zero_max_resumes(tmp_path: Path) -> None:
    """TRANSCRIBE_WS_MAX_RESUMES=0: the first mid-file failure ends the job, as before."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url_for(fault="close_1011", fault_after=2.0, fault_times=1),
            transcribe_ws_max_resumes=0,
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, tone_file(tmp_path))
    assert result.last.json()["code"] == "UPSTREAM_SERVICE_ERROR"
    assert result.of("upstream") == []
    assert len(simulator.sessions) == 1


@pytest.mark.parametrize(
    ("query", "code"),
    [
        pytest.param({"fault": "no_worklet"}, "UPSTREAM_PROTOCOL_ERROR", id="no-worklet"),
        pytest.param({"fault": "error_message"}, "UPSTREAM_SERVICE_ERROR", id="parameter-error"),
        pytest.param(
            {"fault": "error_status", "fault_after": 2.0}, "UPSTREAM_SERVICE_ERROR", id="ffmpeg"
        ),
    ],
)
async def test_resume_never_on_protocol_or_parameter_errors(
    tmp_path: Path, query: dict[str, object], code: str
) -> None:
    """useAudioWorklet:false, a session-parameter error, an error status: one session, no resume."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url_for(**query))
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, tone_file(tmp_path))
    assert result.last.json()["code"] == code
    assert result.of("upstream") == []
    assert len(simulator.sessions) == 1


async def test_resume_never_on_undecodable_audio(tmp_path: Path) -> None:
    """Audio that stops decoding midway fails with INVALID_AUDIO after one session, no resume."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        source = make_audio_file(
            tmp_path, fmt="m4a_faststart", seconds=6.0, sample_rate=44100, channels=2
        )
        corrupt = make_corrupt_copy(source, tmp_path, start_fraction=0.3)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, corrupt)
    assert result.status == 200
    assert result.last.json()["code"] == "INVALID_AUDIO"
    assert result.of("upstream") == []
    assert len(simulator.sessions) == 1


async def test_resume_shows_in_the_resumable_events_stream(tmp_path: Path) -> None:
    """A resource job resumed once: its events stream has `upstream` reconnecting and resumed,
    the deltas still apply and lead up to the done document."""
    async with WLKSimulator(speed=20.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url_for(
                fault="close_1011", fault_after=FAULT_AT_SECONDS, fault_times=1
            ),
            transcribe_ws_lead_budget_seconds=5.0,
        )
        audio = tone_file(tmp_path)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            created = await client.post("/asr/transcriptions", files=upload_files(audio))
            assert created.status_code == 202
            followed = await follow_events(gateway.base_url, created.json()["id"])
    assert followed.terminal is not None and followed.terminal.event == "done"
    notices = [event.json() for event in followed.events if event.event == "upstream"]
    assert [notice["state"] for notice in notices] == ["reconnecting", "resumed"]
    done = followed.terminal.json()
    # Every delta applied (follow_events checks each fits); the last one led up to done.
    last = " ".join(paragraph["text"] for paragraph in followed.documents[-1])
    assert " ".join(document_words(done)).startswith(last)
    # The file's audio: the failed session's up to the seek point, the resumed one's after it.
    first, second = simulator.sessions
    seek_bytes = round(notices[0]["resume_from"] * BYTES_PER_SECOND / 2) * 2
    assert len(first.pcm) >= seek_bytes
    whole = bytes(first.pcm[:seek_bytes]) + bytes(second.pcm)
    assert document_words(done) == simulator.expected_words(whole)
