"""The SSE endpoint end to end: real HTTP, the WLK simulator, a fresh SQLite database."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from aymurai.simulator import WLKSimulator
from aymurai.transcription.decode import iter_pcm_chunks
from aymurai.transcription.identity import document_id_for_bytes
from test.audio_fixtures import make_audio_file
from test.e2e import (
    document_words,
    make_settings,
    run_gateway,
    seconds,
    spooled_files,
    stream_transcription,
)

pytestmark = pytest.mark.integration

# Tone segments (Hz, seconds); 0 Hz is silence. The simulator names each 0.5 s of sound by its
# dominant frequency, so these words come back only if the gateway sent the right PCM.
SEGMENTS = [(440, 2.0), (0, 1.0), (660, 1.5), (0, 2.5), (880, 2.0)]
EXPECTED_WORDS = ["f440"] * 4 + ["f660"] * 3 + ["f880"] * 4


def _stereo_mp3(tmp_path: Path) -> Path:
    return make_audio_file(
        tmp_path, fmt="mp3", sample_rate=44100, channels=2, tone_hz=SEGMENTS, name="speech"
    )


@pytest.mark.parametrize("profile", ["0.2.17", "0.2.26"])
async def test_stream_happy_path_on_each_profile(tmp_path: Path, profile: str) -> None:
    """Both WLK versions: transcription events, then one done with every word, stored."""
    async with WLKSimulator(profile=profile, speed=20.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(
            tmp_path, fmt="flac", sample_rate=44100, channels=2, tone_hz=SEGMENTS
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
            stored = await client.get(
                f"/asr/validation/document/{result.last.json()['document_id']}"
            )

    assert result.status == 200, result.body
    assert result.headers["content-type"].startswith("text/event-stream")
    assert result.headers["cache-control"] == "no-cache"
    assert result.headers["x-accel-buffering"] == "no"
    assert uuid.UUID(result.headers["x-document-id"]) == document_id_for_bytes(audio.read_bytes())
    events = result.events
    assert [frame.id for frame in events] == [str(n) for n in range(1, len(events) + 1)]
    assert [frame.event for frame in events[:-1]] == ["transcription"] * (len(events) - 1)
    assert len(events) >= 3
    assert result.last.event == "done"

    total = 9.0
    currents = []
    for frame in events:
        document = frame.json()
        assert document["document_id"] == result.headers["x-document-id"]
        assert document["total_time"] == pytest.approx(total, abs=0.05)
        assert 0 <= document["current_time"] <= document["total_time"]
        currents.append(document["current_time"])
        for paragraph in document["document"]:
            assert paragraph["text"] == paragraph["text"].strip() != ""
            assert paragraph["speaker_id"] == f"speaker-{paragraph['speaker_no']}"
            assert paragraph["start"] <= paragraph["end"]
        ids = [p["paragraph_id"] for p in document["document"]]
        assert len(ids) == len(set(ids))
    assert currents == sorted(currents), "current_time went backwards"
    done = result.last.json()
    assert done["current_time"] == done["total_time"]
    assert document_words(done) == EXPECTED_WORDS
    # Silence lines never reach the client, and every paragraph is speech.
    assert all(p["speaker_no"] >= 0 for p in done["document"])
    assert stored.status_code == 200
    assert stored.json() == done
    assert spooled_files(settings) == []


async def test_stream_tail_words_kept_on_0217(tmp_path: Path) -> None:
    """WLK 0.2.17 leaves the last words in buffer_transcription; the done document keeps them."""
    async with WLKSimulator(profile="0.2.17", speed=20.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(
            tmp_path, fmt="wav_s16", tone_hz=[(500, 2.0), (0, 0.5), (1000, 1.0)]
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
        record = simulator.sessions[0]
    words = document_words(result.last.json())
    assert result.last.event == "done"
    assert words[-1] == "f1000", "the last word (left in WLK's buffer) was lost"
    assert words == simulator.expected_words(record.pcm)[: len(words)]
    assert words.count("f1000") >= 1


async def test_stream_sends_exact_pcm_in_small_binary_frames(tmp_path: Path) -> None:
    """WLK receives the decoded 16 kHz PCM byte for byte, ≤ 1 s frames, one empty end frame."""
    async with WLKSimulator(profile="0.2.26", speed=50.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = _stereo_mp3(tmp_path)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
            record = await simulator.wait_for_session_closed(0, timeout=seconds(5))
    assert result.last.event == "done"
    expected_pcm = b"".join(iter_pcm_chunks(audio))
    assert bytes(record.pcm) == expected_pcm
    assert record.empty_frames == 1
    assert record.frame_sizes[-1] == 0
    assert max(record.frame_sizes) <= 32000
    assert all(size % 2 == 0 for size in record.frame_sizes)
    assert record.frames_after_end == 0
    assert record.text_frames == []
    assert record.ready_to_stop_sent_at is not None and record.closed_at is not None
    assert record.closed_at - record.ready_to_stop_sent_at < 1.0
    assert record.close_code == 1000


async def test_stream_clips_loud_audio_without_wraparound(tmp_path: Path) -> None:
    """A float WAV louder than full scale is clipped, not wrapped: the tone's word survives."""
    async with WLKSimulator(speed=50.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(tmp_path, fmt="wav_f32", amplitude=1.8, seconds=2.0, tone_hz=300)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
        record = simulator.sessions[0]
    samples = np.frombuffer(bytes(record.pcm), dtype="<i2")
    assert samples.max() == 32767 and samples.min() <= -32767
    # A wrap-around would flip signs next to the peaks; clipping keeps runs at the rails.
    assert np.all(np.abs(np.diff(samples.astype(np.int32))) < 20000)
    assert document_words(result.last.json()) == ["f300"] * 4


async def test_stream_cache_hit_is_a_single_done_frame(tmp_path: Path) -> None:
    """Same bytes under another name: one `done` (id 1), no new WLK session."""
    async with WLKSimulator(speed=50.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(tmp_path, fmt="ogg_opus", tone_hz=[(440, 1.0), (0, 0.5)])
        renamed = tmp_path / "renamed.bin"
        renamed.write_bytes(audio.read_bytes())
        async with run_gateway(settings) as gateway, gateway.client() as client:
            first = await stream_transcription(client, audio)
            second = await stream_transcription(client, renamed)
        assert len(simulator.sessions) == 1
    assert first.last.event == "done"
    assert [(f.id, f.event) for f in second.events] == [("1", "done")]
    assert second.last.json() == first.last.json()
    assert second.headers["x-document-id"] == first.headers["x-document-id"]
    done = second.last.json()
    assert done["current_time"] == done["total_time"] == pytest.approx(1.5, abs=0.05)


async def test_stream_use_cache_false_transcribes_again(tmp_path: Path) -> None:
    """`use_cache=false` opens a new WLK session even when a result is stored."""
    async with WLKSimulator(speed=50.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=1.0)
        async with run_gateway(settings) as gateway, gateway.client() as client:
            await stream_transcription(client, audio)
            again = await stream_transcription(client, audio, use_cache=False)
        assert len(simulator.sessions) == 2
    assert again.events[-1].event == "done"
    assert len(again.events) >= 2


async def test_stream_keepalive_comments_while_idle(tmp_path: Path) -> None:
    """With a slow WLK and a short keepalive, `: keepalive` comments arrive between events."""
    async with WLKSimulator(speed=1.0, snapshot_interval_seconds=0.05) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_sse_keepalive_seconds=0.2,
        )
        # A long silence: WLK has nothing new to say for ~2 s.
        audio = make_audio_file(tmp_path, fmt="wav_s16", tone_hz=[(440, 0.5), (0, 2.5)])
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
    keepalives = [f for f in result.frames if f.event is None and "keepalive" in f.comments]
    assert result.last.event == "done"
    assert len(keepalives) >= 2
    assert all(frame.id is None for frame in keepalives)


async def test_stream_four_concurrent_uploads(tmp_path: Path) -> None:
    """Four different uploads at once each get their own correct transcript."""
    import asyncio

    async with WLKSimulator(speed=10.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        tones = [300, 500, 700, 900]
        files = [
            make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=hz, name=f"t{hz}")
            for hz in tones
        ]
        async with run_gateway(settings) as gateway, gateway.client() as client:
            results = await asyncio.gather(*(stream_transcription(client, f) for f in files))
        assert simulator.max_concurrent_sessions == 4
    for hz, result in zip(tones, results, strict=True):
        assert result.last.event == "done"
        assert document_words(result.last.json()) == [f"f{hz}"] * 4


@pytest.mark.parametrize(
    ("fmt", "sample_rate", "channels"),
    [
        ("webm_opus", 48000, 1),  # what browsers' MediaRecorder uploads
        ("mp4_video", 44100, 2),  # a phone video: the audio track is picked
        ("m4a_faststart", 22050, 1),
        ("wav_s24", 8000, 6),  # multichannel, telephone rate
        ("ogg_vorbis", 32000, 2),
    ],
)
async def test_stream_formats_through_the_endpoint(
    tmp_path: Path, fmt: str, sample_rate: int, channels: int
) -> None:
    """Each container reaches WLK as the same words, with total_time the audio's length."""
    async with WLKSimulator(speed=50.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        audio = make_audio_file(
            tmp_path,
            fmt=fmt,
            sample_rate=sample_rate,
            channels=channels,
            tone_hz=[(440, 2.0), (0, 0.5), (880, 1.5)],
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            result = await stream_transcription(client, audio)
    assert result.status == 200, result.body
    done = result.last.json()
    assert document_words(done) == ["f440"] * 4 + ["f880"] * 3
    assert done["total_time"] == pytest.approx(4.0, abs=0.03)
    assert result.events[0].json()["total_time"] == done["total_time"]
