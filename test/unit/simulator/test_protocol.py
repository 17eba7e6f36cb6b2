"""Simulator message building: field order, time formats and lag rounding per profile."""

from __future__ import annotations

import pytest

from aymurai.simulator.protocol import (
    Lags,
    build_config,
    build_error_message,
    build_error_snapshot,
    build_initial_snapshot,
    build_ready_to_stop,
    build_transcript_snapshot,
    format_time,
    get_profile,
    round_lag,
)
from aymurai.simulator.transcript import Transcript

OLD = get_profile("0.2.17")
NEW = get_profile("0.2.26")

FIELDS_0217 = [
    "status",
    "lines",
    "buffer_transcription",
    "buffer_diarization",
    "buffer_translation",
    "remaining_time_transcription",
    "remaining_time_diarization",
]
FIELDS_0226 = [
    *FIELDS_0217[:6],
    "remaining_time_transcription_processing",
    "remaining_time_transcription_policy",
    "remaining_time_diarization",
]


def test_get_profile_rejects_unknown_versions() -> None:
    """An unknown profile name raises ValueError naming the known ones."""
    with pytest.raises(ValueError, match=r"0\.2\.17"):
        get_profile("0.3.0")


def test_build_config_mode_only_on_newer_profile() -> None:
    """0.2.17's config has no mode; 0.2.26 adds mode=full."""
    assert build_config(OLD, use_audio_worklet=True) == {"type": "config", "useAudioWorklet": True}
    assert build_config(NEW, use_audio_worklet=False) == {
        "type": "config",
        "useAudioWorklet": False,
        "mode": "full",
    }


def test_build_initial_snapshot_is_no_audio_detected_with_zeros() -> None:
    """The first snapshot: no_audio_detected, no lines, empty buffers, int 0 lags, no type."""
    for profile, fields in ((OLD, FIELDS_0217), (NEW, FIELDS_0226)):
        snapshot = build_initial_snapshot(profile)
        assert list(snapshot) == fields
        assert snapshot["status"] == "no_audio_detected"
        assert snapshot["lines"] == []
        assert {snapshot[k] for k in fields if k.startswith("buffer_")} == {""}
        lags = [snapshot[k] for k in fields if k.startswith("remaining_time_")]
        assert lags == [0] * len(lags)
        assert all(type(v) is int for v in lags)


@pytest.mark.parametrize(
    ("seconds", "old", "new"),
    [
        (0.0, "0:00:00", "0:00:00.00"),
        (2.5, "0:00:02", "0:00:02.50"),
        (59.999, "0:00:59", "0:01:00.00"),
        (3725.25, "1:02:05", "1:02:05.25"),
    ],
)
def test_format_time_truncates_on_old_and_keeps_centiseconds_on_new(
    seconds: float, old: str, new: str
) -> None:
    """0.2.17 truncates to whole seconds (H:MM:SS); 0.2.26 rounds to H:MM:SS.cc."""
    assert format_time(seconds, OLD) == old
    assert format_time(seconds, NEW) == new


def test_round_lag_is_int_zero_or_one_decimal() -> None:
    """Lags follow max(0, round(x, 1)): int 0 when not positive."""
    assert round_lag(-0.3) == 0 and type(round_lag(-0.3)) is int
    assert round_lag(0.04) == 0
    assert round_lag(1.26) == 1.3


def test_build_transcript_snapshot_renders_lines_and_buffers() -> None:
    """Lines carry speaker/text/start/end; buffers hold uncommitted text; status is active."""
    transcript = Transcript(pause_seconds=2.0, diarization=False, show_ongoing_pause=False)
    for i, word in enumerate(["f440", "f440", "f880"]):
        transcript.add_window(word, i * 0.5, (i + 1) * 0.5)
    lags = Lags(transcription=0.44, processing=0.25, policy=0.5)
    snapshot = build_transcript_snapshot(NEW, transcript, lags=lags)
    assert snapshot == {
        "status": "active_transcription",
        "lines": [{"speaker": 1, "text": " f440 f440", "start": "0:00:00.00", "end": "0:00:01.00"}],
        "buffer_transcription": " f880",
        "buffer_diarization": "",
        "buffer_translation": "",
        "remaining_time_transcription": 0.4,
        "remaining_time_transcription_processing": 0.2,
        "remaining_time_transcription_policy": 0.5,
        "remaining_time_diarization": 0,
    }
    assert list(build_transcript_snapshot(OLD, transcript, lags=lags)) == FIELDS_0217


def test_build_error_snapshot_adds_error_last_with_defaults() -> None:
    """An error snapshot has status error, default fields, and the error text last."""
    snapshot = build_error_snapshot(OLD, "FFmpeg error: boom")
    assert list(snapshot) == [*FIELDS_0217, "error"]
    assert snapshot["status"] == "error"
    assert snapshot["error"] == "FFmpeg error: boom"
    assert snapshot["lines"] == []


def test_build_control_messages_have_a_type() -> None:
    """ready_to_stop and error messages are typed; snapshots are not."""
    assert build_ready_to_stop() == {"type": "ready_to_stop"}
    assert build_error_message("bad") == {"type": "error", "error": "bad"}
    assert "type" not in build_initial_snapshot(NEW)
