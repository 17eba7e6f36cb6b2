"""The OpenAI dialect: form fields → request, documents → bodies, job updates → stream frames."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from aymurai.api.openai_wire import (
    cached_frames,
    delta_frame,
    done_frame,
    error_frame,
    parse_transcription_request,
    verbose_json_body,
)
from aymurai.api.routes.openai import stream_frames
from aymurai.errors import InvalidRequestError
from aymurai.metrics import GatewayMetrics
from aymurai.settings import Settings
from aymurai.transcription.jobs import (
    KEEPALIVE,
    Done,
    Failed,
    JobUpdate,
    Keepalive,
    Queued,
    Transcribing,
)
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.wlk_protocol import StatusSnapshot, TranscriptLine


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _fields(**values: str | list[str]) -> dict[str, list[str]]:
    return {name: value if isinstance(value, list) else [value] for name, value in values.items()}


def _document(*paragraphs: tuple[int, str], language: str | None = None) -> ASRDocument:
    return ASRDocument(
        document_id=uuid.uuid4(),
        document=[
            ASRParagraph(
                paragraph_id=f"p{i}",
                speaker_no=speaker,
                speaker_id=f"speaker-{speaker}",
                start=i * 2.0,
                end=i * 2.0 + 1.23456,
                text=text,
                language=language,
            )
            for i, (speaker, text) in enumerate(paragraphs)
        ],
        current_time=10.0,
        total_time=10.0,
    )


def test_parse_request_defaults_to_json_without_streaming() -> None:
    """Only `model` is needed; any name is accepted when no models are configured."""
    request = parse_transcription_request(_fields(model="anything"), _settings())
    assert (request.model, request.response_format, request.stream) == ("anything", "json", False)


def test_parse_request_reads_the_sdk_encodings() -> None:
    """`stream=true`, `timestamp_granularities[]`, temperature 0 and chunking auto are fine."""
    request = parse_transcription_request(
        _fields(
            model="whisper-1",
            stream="true",
            response_format="text",
            temperature="0",
            chunking_strategy="auto",
            **{"timestamp_granularities[]": ["segment"]},
        ),
        _settings(),
    )
    assert (request.response_format, request.stream) == ("text", True)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({}, "model"),
        ({"model": "m", "response_format": "xml"}, "response_format"),
        ({"model": "m", "response_format": "srt", "stream": "true"}, "response_format"),
        ({"model": "m", "response_format": "verbose_json", "stream": "1"}, "response_format"),
        ({"model": "m", "stream": "maybe"}, "stream"),
        ({"model": "m", "timestamp_granularities[]": "word"}, "timestamp_granularities"),
        ({"model": "m", "timestamp_granularities": "char"}, "timestamp_granularities"),
        ({"model": "m", "prompt": "Names: Ana, Luis."}, "prompt"),
        ({"model": "m", "language": "es"}, "language"),
        ({"model": "m", "temperature": "0.4"}, "temperature"),
        ({"model": "m", "temperature": "hot"}, "temperature"),
        ({"model": "m", "include[]": "logprobs"}, "include"),
        ({"model": "m", "chunking_strategy": '{"type":"server_vad"}'}, "chunking_strategy"),
        ({"model": "m", "known_speaker_names[]": "Ana"}, "known_speaker_names"),
        ({"model": "m", "user": "someone"}, "user"),
        ({"model": "m", "keywords[]": "Ana"}, "keywords"),
        ({"model": "m", "languages[]": ["es", "en"]}, "languages"),
        ({"model": ["a", "b"]}, "model"),
    ],
)
def test_parse_request_refuses_what_wlk_cannot_honour(
    fields: dict[str, str | list[str]], param: str
) -> None:
    """Each unusable field is a 400 naming it, never silently ignored."""
    with pytest.raises(InvalidRequestError) as error:
        parse_transcription_request(_fields(**fields), _settings())
    assert error.value.param == param


def test_parse_request_language_must_be_the_servers() -> None:
    """`language` is accepted only when it names the language WLK was started with."""
    settings = _settings(transcribe_wlk_language="ES")
    parse_transcription_request(_fields(model="m", language="es"), settings)
    parse_transcription_request(_fields(model="m", language="es-AR"), settings)
    parse_transcription_request(_fields(model="m", **{"languages[]": ["en", "es"]}), settings)
    with pytest.raises(InvalidRequestError) as candidates:
        parse_transcription_request(_fields(model="m", **{"languages[]": ["en"]}), settings)
    assert candidates.value.param == "languages"
    with pytest.raises(InvalidRequestError, match="'es' only") as error:
        parse_transcription_request(_fields(model="m", language="en"), settings)
    assert error.value.param == "language"
    assert _settings(transcribe_wlk_language="auto").transcribe_wlk_language is None


def test_parse_request_models_setting_restricts_names() -> None:
    """TRANSCRIBE_OPENAI_MODELS (comma-separated) limits the accepted names."""
    settings = _settings(transcribe_openai_models="whisper-1, large-v3")
    assert settings.transcribe_openai_models == ["whisper-1", "large-v3"]
    parse_transcription_request(_fields(model="large-v3"), settings)
    with pytest.raises(InvalidRequestError) as error:
        parse_transcription_request(_fields(model="whisper-2"), settings)
    assert error.value.param == "model"


def test_verbose_json_has_only_real_segment_fields() -> None:
    """Segments: id, start, end, text (ms-rounded), plus speaker only when diarized."""
    single = verbose_json_body(_document((1, " Hello  world "), (1, "   ")), _settings())
    assert single == {
        "task": "transcribe",
        "language": "unknown",
        "duration": 10.0,
        "text": "Hello world",
        "segments": [{"id": 0, "start": 0.0, "end": 1.235, "text": "Hello world"}],
        "usage": {"type": "duration", "seconds": 10.0},
    }
    diarized = verbose_json_body(_document((1, "Hi"), (2, "Bye"), language="en"), _settings())
    assert diarized["language"] == "en"
    assert [s["speaker"] for s in diarized["segments"]] == ["speaker-1", "speaker-2"]
    assert _settings(transcribe_wlk_language="es").transcribe_wlk_language == "es"


def _payload(frame: bytes) -> Any:
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    assert frame.count(b"\n") == 2, "one data line per event"
    return json.loads(frame[len(b"data: ") :])


def test_stream_frames_are_openai_events() -> None:
    """Delta, done and error events are single `data:` lines in OpenAI's shapes."""
    assert _payload(delta_frame(" a\nb")) == {"type": "transcript.text.delta", "delta": " a\nb"}
    assert _payload(done_frame("x")) == {"type": "transcript.text.done", "text": "x"}
    assert _payload(error_frame("UPSTREAM_TIMEOUT", "slow")) == {
        "type": "error",
        "error": {
            "message": "slow",
            "type": "server_error",
            "param": None,
            "code": "UPSTREAM_TIMEOUT",
        },
    }


async def test_cached_frames_stream_paragraphs_as_deltas() -> None:
    """A cache hit: one delta per non-empty paragraph, then done with their concatenation."""
    frames = [f async for f in cached_frames(_document((1, "Hello"), (2, " "), (2, "big  world")))]
    payloads = [_payload(f) for f in frames]
    assert payloads == [
        {"type": "transcript.text.delta", "delta": "Hello"},
        {"type": "transcript.text.delta", "delta": " big world"},
        {"type": "transcript.text.done", "text": "Hello big world"},
    ]


def _transcribing(document_id: uuid.UUID, text: str, buffer: str = "") -> Transcribing:
    line = TranscriptLine(1, text, 0.0, 1.0)
    snapshot = StatusSnapshot("active_transcription", (line,), buffer_transcription=buffer)
    return Transcribing(document_id, snapshot, 1.0, 10.0)


async def _frames(updates: list[JobUpdate | Keepalive], outcomes: list[str]) -> list[Any]:
    async def source() -> Any:
        for update in updates:
            yield update

    metrics = GatewayMetrics()
    frames = stream_frames(
        source(), keepalive_seconds=None, metrics=metrics, received_at=time.monotonic()
    )
    result = [
        "keepalive" if frame == b": keepalive\n\n" else _payload(frame) async for frame in frames
    ]
    assert metrics.registry.get_sample_value("aymurai_sse_streams_active") == 0
    outcomes.extend(
        sample.labels["outcome"]
        for metric in metrics.registry.collect()
        if metric.name == "aymurai_transcription_requests"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.value == 1
    )
    return result


async def test_stream_frames_send_committed_deltas_then_the_final_commit() -> None:
    """Queue updates send nothing, idle ones a comment; the end-of-stream words are a delta."""
    document = _document((1, "a b c d"))
    doc_id = document.document_id
    outcomes: list[str] = []
    frames = await _frames(
        [
            Queued(doc_id, 2),
            _transcribing(doc_id, " a b", buffer=" guess"),
            _transcribing(doc_id, " a b c"),
            KEEPALIVE,
            Done(document),
        ],
        outcomes,
    )
    assert frames == [
        {"type": "transcript.text.delta", "delta": "a"},
        {"type": "transcript.text.delta", "delta": " b"},
        "keepalive",
        {"type": "transcript.text.delta", "delta": " c d"},
        {"type": "transcript.text.done", "text": "a b c d"},
    ]
    assert outcomes == ["done"]


async def test_stream_frames_end_with_an_error_event_on_failure() -> None:
    """An upstream failure after deltas: one error event, nothing after it."""
    doc_id = uuid.uuid4()
    outcomes: list[str] = []
    frames = await _frames(
        [_transcribing(doc_id, " one two three"), Failed("UPSTREAM_TIMEOUT", "slow")], outcomes
    )
    assert frames[0] == {"type": "transcript.text.delta", "delta": "one two"}
    assert frames[1]["type"] == "error" and frames[1]["error"]["code"] == "UPSTREAM_TIMEOUT"
    assert frames[1]["error"]["type"] == "server_error"
    assert len(frames) == 2 and outcomes == ["UPSTREAM_TIMEOUT"]


async def test_stream_frames_done_carries_the_stored_text_when_wlk_dropped_words() -> None:
    """If the final text contradicts what was sent, done reports the stored transcript."""
    doc_id = uuid.uuid4()
    frames = await _frames(
        [_transcribing(doc_id, " alpha beta gamma"), Done(_document((1, "alpha gamma")))], []
    )
    assert frames == [
        {"type": "transcript.text.delta", "delta": "alpha beta"},
        {"type": "transcript.text.done", "text": "alpha gamma"},
    ]


def test_stream_framing_keeps_keepalives_invisible_to_the_python_sdk() -> None:
    """The SDK's own decoder sees our comments as nothing, because we never send `id:`.

    (With an `id:` line earlier in the stream it would turn each comment block into an empty
    event, whose JSON then fails to parse: the trap this framing avoids.)
    """
    from openai._streaming import SSEDecoder

    body = delta_frame("a") + b": keepalive\n\n" + delta_frame(" b") + done_frame("a b")
    events = list(SSEDecoder().iter_bytes(iter([body])))
    assert [json.loads(event.data)["type"] for event in events] == [
        "transcript.text.delta",
        "transcript.text.delta",
        "transcript.text.done",
    ]
    with_id = list(SSEDecoder().iter_bytes(iter([b"id: 1\n" + body])))
    assert [event.data for event in with_id][1] == ""
