"""The OpenAI-compatible API through the official SDKs: `openai` for Python and for Node 20.

A real gateway on a free port in front of the WLK simulator (diarization on, so speakers show);
the SDKs parse every response and event themselves, which is the point: our shapes must be the ones
they expect. Keepalive comments are made frequent so the SDK streams go through some.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import srt  # type: ignore[import-untyped]
import webvtt
from openai.types.audio import (
    Transcription,
    TranscriptionDiarized,
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
    TranscriptionVerbose,
)

from aymurai.simulator import WLKSimulator
from aymurai.transcription.identity import document_id_for_bytes
from test.audio_fixtures import make_audio_file, make_text_file
from test.e2e import (
    RunningGateway,
    document_text,
    eventually,
    iter_sse,
    make_settings,
    require,
    run_gateway,
    seconds,
    upload_files,
)

pytestmark = pytest.mark.integration

# Tone segments (Hz, seconds); the simulator names each 0.5 s of sound by its frequency, and the
# 2.5 s pause hands the turn to the other speaker.
SEGMENTS = [(440, 2.0), (0, 1.0), (660, 1.5), (0, 2.5), (880, 2.0)]
EXPECTED_TEXT = " ".join(["f440"] * 4 + ["f660"] * 3 + ["f880"] * 4)
NODE_DIR = Path(__file__).resolve().parents[1] / "node"
KEEPALIVE_SECONDS = 0.02


def _audio(tmp_path: Path, name: str, fmt: str = "flac") -> Path:
    """A fresh file per test (formats give different bytes, so no test hits another's cache)."""
    return make_audio_file(tmp_path, fmt=fmt, sample_rate=44100, tone_hz=SEGMENTS, name=name)


@pytest.fixture
async def openai_gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    """Gateway + diarizing simulator, with keepalive comments every 20 ms of silence."""
    async with WLKSimulator(profile="0.2.26", speed=10.0, diarization=True) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_sse_keepalive_seconds=KEEPALIVE_SECONDS,
        )
        async with run_gateway(settings) as running:
            yield running


def _client(gateway: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{gateway.base_url}/v1",
        api_key="unused",
        max_retries=0,
        timeout=seconds(60),
    )


def _document_url(audio: Path) -> str:
    return f"/asr/validation/document/{document_id_for_bytes(audio.read_bytes())}"


async def _stored_text(gateway: RunningGateway, audio: Path) -> str:
    async with gateway.client() as client:
        response = await client.get(_document_url(audio))
    assert response.status_code == 200, response.text
    return document_text(response.json())


async def test_openai_python_sdk_streams_deltas_that_add_up_to_done(
    openai_gateway: RunningGateway, tmp_path: Path
) -> None:
    """stream=True: typed delta events, one done; deltas concatenate to it and to the store."""
    audio = _audio(tmp_path, "stream")
    async with _client(openai_gateway) as client, asyncio.timeout(seconds(60)):
        stream = await client.audio.transcriptions.create(
            file=audio, model="whisper-1", stream=True
        )
        events = [event async for event in stream]
        # The same bytes again: a cache hit streams as well.
        again = await client.audio.transcriptions.create(file=audio, model="m", stream=True)
        cached = [event async for event in again]

    for run in (events, cached):
        assert isinstance(run[-1], TranscriptionTextDoneEvent)
        deltas = run[:-1]
        assert deltas and all(isinstance(e, TranscriptionTextDeltaEvent) for e in deltas), run
        assert "".join(e.delta for e in deltas) == run[-1].text == EXPECTED_TEXT
    assert len(events) > 3, "the job's text came in one piece; it should grow as WLK commits"
    assert await _stored_text(openai_gateway, audio) == EXPECTED_TEXT


async def test_openai_stream_framing_is_data_lines_and_keepalive_comments(
    openai_gateway: RunningGateway, tmp_path: Path
) -> None:
    """The raw stream: `data:` lines and `: keepalive` comments only, never `id:` or `event:`."""
    audio = _audio(tmp_path, "framing", fmt="wav_s16")
    lines: list[str] = []
    async with openai_gateway.client() as client, asyncio.timeout(seconds(60)):
        async with client.stream(
            "POST",
            "/v1/audio/transcriptions",
            files=upload_files(audio),
            data={"model": "whisper-1", "stream": "true"},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in response.aiter_lines()]
    fields = [line for line in lines if line]
    assert all(line.startswith("data: ") or line == ": keepalive" for line in fields), fields
    assert ": keepalive" in fields, "no idle comment went out; the SDK tests prove nothing then"
    payloads = [json.loads(line.removeprefix("data: ")) for line in fields if line[0] == "d"]
    assert [p["type"] for p in payloads][-1] == "transcript.text.done"
    assert {p["type"] for p in payloads[:-1]} == {"transcript.text.delta"}
    assert all(set(p) == {"type", "delta"} for p in payloads[:-1])
    assert set(payloads[-1]) == {"type", "text"}


async def test_openai_python_sdk_parses_each_response_format(
    openai_gateway: RunningGateway, tmp_path: Path
) -> None:
    """json, text, srt, vtt, verbose_json and diarized_json, each parsed by the SDK's own types."""
    audio = _audio(tmp_path, "formats", fmt="mp3")
    async with _client(openai_gateway) as client, asyncio.timeout(seconds(60)):
        plain = await client.audio.transcriptions.create(file=audio, model="whisper-1")
        text = await client.audio.transcriptions.create(
            file=audio, model="whisper-1", response_format="text"
        )
        subrip = await client.audio.transcriptions.create(
            file=audio, model="whisper-1", response_format="srt"
        )
        vtt = await client.audio.transcriptions.create(
            file=audio, model="whisper-1", response_format="vtt"
        )
        verbose = await client.audio.transcriptions.create(
            file=audio,
            model="whisper-1",
            response_format="verbose_json",
            timestamp_granularities=["segment"],
        )
        diarized = await client.audio.transcriptions.create(
            file=audio, model="whisper-1", response_format="diarized_json"
        )
        models = await client.models.list()

    stored = await _stored_text(openai_gateway, audio)
    assert isinstance(plain, Transcription)
    assert plain.text == stored
    assert plain.usage is not None and plain.usage.type == "duration"
    assert text == stored + "\n"

    cues = list(srt.parse(subrip))
    assert len(cues) >= 2
    # Diarized (two speakers): each cue names its speaker, as our other renderers do.
    assert " ".join(c.content.split(": ", 1)[1] for c in cues) == stored
    captions = webvtt.from_buffer(io.StringIO(vtt)).captions
    assert [c.text for c in captions] == [c.content for c in cues]

    assert isinstance(verbose, TranscriptionVerbose)
    assert verbose.text == stored
    assert verbose.duration == pytest.approx(9.0, abs=0.05)
    assert verbose.language == "unknown"
    assert verbose.segments is not None and len(verbose.segments) == len(cues)
    segment = verbose.segments[0].model_dump(exclude_unset=True)
    # Only fields WLK really gives: no invented logprobs, tokens or temperatures.
    assert set(segment) == {"id", "start", "end", "text", "speaker"}
    assert [s.id for s in verbose.segments] == list(range(len(cues)))
    assert {s.model_extra["speaker"] for s in verbose.segments} == {"speaker-1", "speaker-2"}  # type: ignore[index]
    assert all(s.start <= s.end for s in verbose.segments)

    assert isinstance(diarized, TranscriptionDiarized)
    assert diarized.text == stored
    assert [s.text for s in diarized.segments] == [s.text for s in verbose.segments]
    assert [m.id for m in models.data] == ["whisperlivekit"]


async def test_openai_python_sdk_raises_typed_errors_with_our_message(
    openai_gateway: RunningGateway, tmp_path: Path
) -> None:
    """Empty, undecodable, word timestamps, a streamed srt, an unknown route: typed exceptions."""
    audio = _audio(tmp_path, "errors")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    async with _client(openai_gateway) as client, asyncio.timeout(seconds(60)):
        with pytest.raises(openai.BadRequestError) as empty_error:
            await client.audio.transcriptions.create(file=empty, model="whisper-1")
        with pytest.raises(openai.BadRequestError) as invalid_error:
            await client.audio.transcriptions.create(
                file=make_text_file(tmp_path), model="whisper-1"
            )
        with pytest.raises(openai.BadRequestError) as word_error:
            await client.audio.transcriptions.create(
                file=audio,
                model="whisper-1",
                response_format="verbose_json",
                timestamp_granularities=["word"],
            )
        with pytest.raises(openai.BadRequestError) as stream_error:
            await client.audio.transcriptions.create(  # type: ignore[call-overload]
                file=audio, model="whisper-1", response_format="srt", stream=True
            )
        with pytest.raises(openai.BadRequestError) as prompt_error:
            await client.audio.transcriptions.create(file=audio, model="whisper-1", prompt="Hi")
        with pytest.raises(openai.NotFoundError) as route_error:
            await client.files.list()

    assert empty_error.value.code == "EMPTY_UPLOAD"
    assert empty_error.value.param == "file"
    assert "empty" in empty_error.value.message
    assert invalid_error.value.code == "INVALID_AUDIO"
    assert word_error.value.param == "timestamp_granularities"
    assert "Word timestamps" in word_error.value.message
    assert stream_error.value.param == "response_format"
    assert prompt_error.value.param == "prompt"
    assert route_error.value.status_code == 404
    assert isinstance(route_error.value.body, dict) and route_error.value.body["code"] == (
        "NOT_FOUND"
    )


async def test_openai_errors_are_openai_objects_never_422(
    openai_gateway: RunningGateway, tmp_path: Path
) -> None:
    """No file, no model, not multipart, a huge field: 400, OpenAI's error naming the param."""
    audio = _audio(tmp_path, "raw")
    async with openai_gateway.client() as client:
        no_file = await client.post("/v1/audio/transcriptions", data={"model": "x"}, files={})
        no_multipart = await client.post("/v1/audio/transcriptions", json={"model": "x"})
        no_model = await client.post("/v1/audio/transcriptions", files=upload_files(audio))
        unknown = await client.post(
            "/v1/audio/transcriptions",
            files=upload_files(audio),
            data={"model": "x", "frobnicate": "1"},
        )
        huge_field = await client.post(
            "/v1/audio/transcriptions",
            files=upload_files(audio),
            data={"model": "x", "language": "e" * 20_000},
        )
        wrong_method = await client.get("/v1/audio/transcriptions")
        slash = await client.get("/v1/models/")
        deeper = await client.get("/v1/models/a/b")
    for response, param in [
        (no_file, "file"),
        (no_multipart, "file"),
        (no_model, "model"),
        (unknown, "frobnicate"),
        (huge_field, "language"),
    ]:
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
        assert error["param"] == param
    assert wrong_method.status_code == 405
    assert set(wrong_method.json()) == {"error"}
    assert (slash.status_code, deeper.status_code) == (404, 404)
    assert deeper.json()["error"]["code"] == "NOT_FOUND"


async def test_openai_upload_over_the_limit_is_413(tmp_path: Path) -> None:
    """Too large: 413 through the SDK, with our message."""
    audio = _audio(tmp_path, "large")
    settings = make_settings(tmp_path, transcribe_max_upload_bytes=1000)
    async with run_gateway(settings) as gateway, _client(gateway) as client:
        with pytest.raises(openai.APIStatusError) as error:
            await client.audio.transcriptions.create(file=audio, model="whisper-1")
    assert error.value.status_code == 413
    assert error.value.code == "UPLOAD_TOO_LARGE"
    assert "1000 bytes" in error.value.message


async def test_openai_models_setting_restricts_and_lists_names(tmp_path: Path) -> None:
    """TRANSCRIBE_OPENAI_MODELS: listed by /v1/models; another name is a 400 naming `model`."""
    audio = _audio(tmp_path, "models")
    settings = make_settings(tmp_path, transcribe_openai_models="whisper-1,large-v3")
    async with run_gateway(settings) as gateway, _client(gateway) as client:
        models = await client.models.list()
        model = await client.models.retrieve("large-v3")
        with pytest.raises(openai.BadRequestError) as error:
            await client.audio.transcriptions.create(file=audio, model="gpt-4o-transcribe")
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("gpt-4o-transcribe")
    assert [m.id for m in models.data] == ["whisper-1", "large-v3"]
    assert model.id == "large-v3" and model.object == "model"
    assert error.value.param == "model"


async def test_openai_queue_full_is_a_rate_limit_error(tmp_path: Path) -> None:
    """QUEUE_FULL: the SDK's RateLimitError, with Retry-After, while a slow job holds the slot."""
    busy = make_audio_file(tmp_path, fmt="wav_s16", seconds=60.0, name="busy")
    audio = _audio(tmp_path, "rejected")
    async with WLKSimulator(profile="0.2.26", speed=1.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_max_concurrent_sessions=1,
            transcribe_max_queued=0,
        )
        async with run_gateway(settings) as gateway, gateway.client() as http:
            async with (
                asyncio.timeout(seconds(30)),
                http.stream(
                    "POST",
                    "/v1/audio/transcriptions",
                    files=upload_files(busy),
                    data={"model": "whisper-1", "stream": "true"},
                ) as holding,
            ):
                assert holding.status_code == 200
                await simulator.wait_for_sessions(1, timeout=seconds(10))
                async with _client(gateway) as client:
                    with pytest.raises(openai.RateLimitError) as error:
                        await client.audio.transcriptions.create(file=audio, model="whisper-1")
                node = await _run_node("create", gateway, audio)
    assert error.value.status_code == 429
    assert error.value.code == "QUEUE_FULL"
    assert error.value.response.headers["retry-after"].isdigit()
    assert node["error"]["class"] == "RateLimitError"
    assert node["error"]["code"] == "QUEUE_FULL"


async def test_openai_upstream_failure_mid_stream_is_an_error_event(tmp_path: Path) -> None:
    """WLK drops mid-stream: one last error event, raised by both SDKs; non-streaming is 502."""
    audio = _audio(tmp_path, "failing")
    other = _audio(tmp_path, "failing-too", fmt="wav_s16")
    async with WLKSimulator(
        profile="0.2.26", speed=10.0, fault="1011", fault_after_seconds=3.0
    ) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        async with run_gateway(settings) as gateway, _client(gateway) as client:
            events: list[Any] = []
            with pytest.raises(openai.APIError) as stream_error:
                stream = await client.audio.transcriptions.create(
                    file=audio, model="whisper-1", stream=True
                )
                async for event in stream:
                    events.append(event)
            with pytest.raises(openai.InternalServerError) as blocking_error:
                await client.audio.transcriptions.create(file=other, model="whisper-1")
            node = await _run_node("stream", gateway, _audio(tmp_path, "node", fmt="mp3"))

    assert all(isinstance(e, TranscriptionTextDeltaEvent) for e in events)
    assert stream_error.value.code == "UPSTREAM_SERVICE_ERROR"
    assert stream_error.value.type == "server_error"
    assert stream_error.value.message
    assert blocking_error.value.status_code == 502
    assert blocking_error.value.code == "UPSTREAM_SERVICE_ERROR"
    assert node["error"]["class"] == "APIError"
    assert node["error"]["code"] == "UPSTREAM_SERVICE_ERROR"
    assert all(e["type"] == "transcript.text.delta" for e in node["events"])


# --- Node ---------------------------------------------------------------------------------------
async def _run_node(mode: str, gateway: RunningGateway, *args: Path) -> Any:
    require(shutil.which("node") is not None, "node is not installed")
    require(
        (NODE_DIR / "node_modules" / "openai").is_dir(),
        "the openai npm package is missing: make install-node",
    )
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "openai_transcribe.mjs"),
        mode,
        f"{gateway.base_url}/v1",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(seconds(90)):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)


async def test_openai_node_sdk_streams_and_parses_every_format(
    openai_gateway: RunningGateway, tmp_path: Path
) -> None:
    """The npm `openai` package on Node: stream, every format, models and errors parse."""
    audio = _audio(tmp_path, "node", fmt="ogg_vorbis")
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    result = await _run_node("all", openai_gateway, audio, empty)

    stored = await _stored_text(openai_gateway, audio)
    events = result["stream"]
    assert events[-1] == {"type": "transcript.text.done", "text": stored}
    assert {e["type"] for e in events[:-1]} == {"transcript.text.delta"}
    assert "".join(e["delta"] for e in events[:-1]) == stored == EXPECTED_TEXT

    formats = result["formats"]
    assert formats["json"]["text"] == stored
    assert formats["text"] == stored + "\n"
    cues = list(srt.parse(formats["srt"]))
    captions = webvtt.from_buffer(io.StringIO(formats["vtt"])).captions
    assert [c.text for c in captions] == [c.content for c in cues] and cues
    assert formats["verbose_json"]["text"] == stored
    assert len(formats["verbose_json"]["segments"]) == len(cues)
    assert formats["diarized_json"]["text"] == stored
    assert result["models"] == ["whisperlivekit"]

    errors = result["errors"]
    assert errors["empty"]["class"] == "BadRequestError"
    assert errors["empty"]["code"] == "EMPTY_UPLOAD"
    assert "empty" in errors["empty"]["message"]
    assert errors["word"]["class"] == "BadRequestError"
    assert errors["word"]["param"] == "timestamp_granularities"
    assert errors["stream_srt"]["param"] == "response_format"
    assert errors["unknown_route"]["class"] == "NotFoundError"


async def test_openai_stream_client_gone_ends_the_job(
    openai_gateway: RunningGateway, tmp_path: Path
) -> None:
    """Leaving a stream early ends the job and stores nothing, as on the other APIs."""
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=30.0, tone_hz=440.0, name="long")
    service = openai_gateway.app.state.service
    async with openai_gateway.client() as client:
        async with (
            asyncio.timeout(seconds(30)),
            client.stream(
                "POST",
                "/v1/audio/transcriptions",
                files=upload_files(audio),
                data={"model": "whisper-1", "stream": "true"},
            ) as response,
        ):
            async for frame in iter_sse(response):
                if frame.data:
                    break
        await eventually(lambda: not service.jobs, what="the job to end")
        stored = await client.get(_document_url(audio))
    assert stored.status_code == 404, stored.text


async def test_openai_open_webui_request_and_language_fallback(
    openai_gateway: RunningGateway, tmp_path: Path
) -> None:
    """Open WebUI's request: verbose_json + one `timestamp_granularities[]`, its chat language
    first (refused: WLK's language is the server's), then the same without language (served)."""
    audio = _audio(tmp_path, "webui", fmt="wav_s16")
    form = {
        "model": "whisper-1",
        "response_format": "verbose_json",
        "timestamp_granularities[]": "segment",
    }
    async with openai_gateway.client() as client:
        with_language = await client.post(
            "/v1/audio/transcriptions",
            files=upload_files(audio),
            data={**form, "language": "en"},
            headers={"Authorization": "Bearer unused"},
        )
        without = await client.post(
            "/v1/audio/transcriptions",
            files=upload_files(audio),
            data=form,
            headers={"Authorization": "Bearer unused"},
        )
    assert with_language.status_code == 400
    assert with_language.json()["error"]["param"] == "language"
    assert without.status_code == 200, without.text
    body = without.json()
    assert body["text"] == EXPECTED_TEXT
    assert [set(s) >= {"id", "start", "end", "text"} for s in body["segments"]] == [True] * len(
        body["segments"]
    )
