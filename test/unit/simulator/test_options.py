"""Simulator options: fault names and per-connection query overrides."""

from __future__ import annotations

import pytest

from aymurai.simulator.options import Fault, InvalidOptionError, SessionOptions, parse_fault
from aymurai.simulator.protocol import get_profile


def _defaults() -> SessionOptions:
    return SessionOptions(
        profile=get_profile("0.2.26"),
        speed=50.0,
        fault=None,
        fault_after_seconds=2.0,
        diarization=False,
        use_audio_worklet=True,
        stall_seconds=30.0,
        snapshot_interval_seconds=0.05,
        pause_seconds=2.0,
    )


def test_parse_fault_accepts_names_aliases_and_none() -> None:
    """Enum values, the short aliases and "none"/"" all parse."""
    assert parse_fault("close_1011") is Fault.CLOSE_1011
    assert parse_fault("drop") is Fault.TCP_DROP
    assert parse_fault("REJECT") is Fault.HANDSHAKE_REFUSED
    assert parse_fault("none") is None
    assert parse_fault("") is None


def test_parse_fault_rejects_unknown_names() -> None:
    """A typo in a fault name is an error, not a silent no-fault."""
    with pytest.raises(InvalidOptionError, match="unknown fault"):
        parse_fault("tcp_dorp")


def test_session_options_with_query_overrides_known_keys_and_ignores_others() -> None:
    """Known keys override the defaults; unknown keys (language, mode) are ignored."""
    options = _defaults().with_query(
        {
            "fault": "drop",
            "profile": "0.2.17",
            "speed": "10",
            "fault_after": "1.5",
            "diarization": "1",
            "worklet": "0",
            "stall": "3",
            "pause": "1",
            "language": "es",
            "mode": "diff",
        }
    )
    assert options.fault is Fault.TCP_DROP
    assert options.profile.name == "0.2.17"
    assert options.speed == 10.0
    assert options.fault_after_seconds == 1.5
    assert options.diarization is True
    assert options.use_audio_worklet is False
    assert options.stall_seconds == 3.0
    assert options.pause_seconds == 1.0


@pytest.mark.parametrize(
    "query",
    [{"speed": "fast"}, {"speed": "0"}, {"profile": "9.9"}, {"diarization": "maybe"}],
)
def test_session_options_with_query_rejects_bad_values(query: dict[str, str]) -> None:
    """Bad values for known keys raise InvalidOptionError."""
    with pytest.raises(InvalidOptionError):
        _defaults().with_query(query)


def test_session_options_no_worklet_fault_turns_the_worklet_off() -> None:
    """Fault.NO_WORKLET and worklet=0 both make the config say useAudioWorklet false."""
    assert _defaults().sends_worklet_config is True
    assert _defaults().with_query({"fault": "no_worklet"}).sends_worklet_config is False
    assert _defaults().with_query({"worklet": "0"}).sends_worklet_config is False
