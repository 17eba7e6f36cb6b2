"""Parsing WLK messages of every supported version, with no I/O."""

from __future__ import annotations

import json

import pytest

from aymurai.transcription.wlk_protocol import (
    ConfigMessage,
    ErrorMessage,
    ReadyToStop,
    StatusSnapshot,
    UnknownMessage,
    parse_message,
    parse_time,
)

SNAPSHOT_0217 = {
    "status": "active_transcription",
    "lines": [
        {"speaker": 1, "text": " Hello world", "start": "0:00:00", "end": "0:00:03"},
        {"speaker": -2, "text": "", "start": "0:00:03", "end": "0:00:09"},
        {"speaker": 2, "text": " Good", "start": "0:00:04", "end": "0:00:05"},
    ],
    "buffer_transcription": " morning",
    "buffer_diarization": " and",
    "buffer_translation": "",
    "remaining_time_transcription": 0,
    "remaining_time_diarization": 0,
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0:00:03", 3.0),
        ("1:02:03", 3723.0),
        ("0:00:02.50", 2.5),
        ("0:01:05.25", 65.25),
        (4, 4.0),
        (2.75, 2.75),
        ("12.5", 12.5),
    ],
)
def test_parse_time_accepts_every_wlk_format(value: object, expected: float) -> None:
    """H:MM:SS, H:MM:SS.cc and plain numbers all parse to seconds."""
    assert parse_time(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["", "a:b", "1:2:3:4", -1, None, True, "nan", [1]])
def test_parse_time_rejects_garbage(value: object) -> None:
    """Anything else is a ValueError, never a silent zero."""
    with pytest.raises(ValueError):
        parse_time(value)


def test_parse_message_snapshot_0217() -> None:
    """A 0.2.17 snapshot keeps every line; speech lines skip silence; tail joins the buffers."""
    message = parse_message(json.dumps(SNAPSHOT_0217))
    assert isinstance(message, StatusSnapshot)
    assert len(message.lines) == 3
    assert [line.text for line in message.speech_lines] == [" Hello world", " Good"]
    assert message.tail_text == "and morning"
    assert message.remaining_policy_seconds is None
    assert message.processed_seconds() == 5.0  # end of the last speech line, not the silence
    assert message.received_seconds() is None  # 0.2.17 does not say
    assert not message.is_error


def test_parse_message_snapshot_0226_progress() -> None:
    """0.2.26 progress = committed speech end + policy lag; received adds the processing lag."""
    data = {
        "status": "active_transcription",
        "lines": [{"speaker": 1, "text": " Hi", "start": "0:00:00.00", "end": "0:00:02.50"}],
        "buffer_transcription": " there",
        "remaining_time_transcription_processing": 3.0,
        "remaining_time_transcription_policy": 1.2,
        "detected_language": "en",
    }
    message = parse_message(json.dumps(data))
    assert isinstance(message, StatusSnapshot)
    assert message.lines[0].end == 2.5
    assert message.processed_seconds() == pytest.approx(3.7)
    assert message.remaining_processing_seconds == 3.0
    assert message.received_seconds() == pytest.approx(6.7)


def test_parse_message_progress_counts_a_finished_pause_as_committed() -> None:
    """0.2.23+: the policy lag runs from the end of a finished pause, not the speech before it."""
    data = {
        "status": "active_transcription",
        "lines": [
            {"speaker": 1, "text": " Hi", "start": "0:00:00.00", "end": "0:00:02.50"},
            {"speaker": -2, "text": "", "start": "0:00:02.50", "end": "0:00:05.00"},
        ],
        "buffer_transcription": " there",
        "remaining_time_transcription_processing": 0.0,
        "remaining_time_transcription_policy": 0.5,
    }
    message = parse_message(json.dumps(data))
    assert isinstance(message, StatusSnapshot)
    assert message.processed_seconds() == pytest.approx(5.5)
    assert message.received_seconds() == pytest.approx(5.5)


def test_parse_message_tolerates_missing_and_extra_fields() -> None:
    """Missing buffers default to empty; unknown fields and malformed lines are skipped."""
    data = {
        "lines": [{"speaker": 1, "text": " ok", "start": "bad"}, {"speaker": 1, "text": " fine"}],
        "new_field": {"x": 1},
    }
    message = parse_message(json.dumps(data))
    assert isinstance(message, StatusSnapshot)
    assert [line.text for line in message.lines] == [" fine"]
    assert message.tail_text == ""


@pytest.mark.parametrize(
    "data",
    [
        {"status": "error", "error": "FFmpeg error: boom"},
        {"status": "active_transcription", "error": "something broke"},
    ],
)
def test_parse_message_error_snapshots(data: dict[str, object]) -> None:
    """`status: error` or an `error` field marks the snapshot as a failure."""
    message = parse_message(json.dumps(data))
    assert isinstance(message, StatusSnapshot) and message.is_error


def test_parse_message_control_messages() -> None:
    """config, ready_to_stop and the 0.2.25 error message have their own types."""
    assert parse_message('{"type":"config","useAudioWorklet":false}') == ConfigMessage(False)
    assert parse_message('{"type":"config","useAudioWorklet":true,"mode":"full"}') == (
        ConfigMessage(True, "full")
    )
    assert parse_message('{"type":"ready_to_stop"}') == ReadyToStop()
    assert parse_message('{"type":"error","error":"bad language"}') == ErrorMessage("bad language")


@pytest.mark.parametrize("text", ["not json", "[1,2]", '"str"', '{"type":"noise"}', b"\xff\xfe"])
def test_parse_message_unknown_never_raises(text: str | bytes) -> None:
    """Garbage becomes UnknownMessage (logged and ignored by the session)."""
    assert isinstance(parse_message(text), UnknownMessage)
