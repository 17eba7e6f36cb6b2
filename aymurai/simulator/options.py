"""Simulator behaviour knobs: the ``Fault`` modes and per-session options.

A ``WLKSimulator`` holds defaults; each connection may override them through the query string
(``/asr?fault=drop&profile=0.2.17&speed=10&fault_after=1.5&diarization=1&worklet=0&dots=1``), so
one simulator serves many behaviours. ``fault_times=N`` fires the fault in the first N sessions
that reach it (counted per simulator), so a test can fail a session once and watch the client
resume on a healthy one; 0 (the default) fires it in every session. Unknown parameters are
ignored, as the real server ignores them (``language``, ``mode``, ``token`` …). A *known*
parameter with a bad value is rejected at the handshake with HTTP 400 instead, because a silently
ignored typo in a test URL would make the test exercise the wrong behaviour.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from aymurai.simulator.protocol import Profile, get_profile


class Fault(enum.StrEnum):
    """Failure modes; the value is the ``?fault=`` name."""

    HANDSHAKE_REFUSED = "handshake_refused"
    """Reject the HTTP upgrade with 503."""
    CLOSE_1011 = "close_1011"
    """Close with 1011 after ``fault_after_seconds`` of audio."""
    TCP_DROP = "tcp_drop"
    """Abort the TCP connection, no close frame, after ``fault_after_seconds`` of audio."""
    MALFORMED_JSON = "malformed_json"
    """Interleave non-JSON text and unknown-type JSON with the normal messages."""
    ERROR_STATUS = "error_status"
    """After ``fault_after_seconds`` of audio: FFmpeg ``status: error`` snapshot, ready_to_stop."""
    ERROR_MESSAGE = "error_message"
    """0.2.25+: ``{"type":"error"}`` right after accept, then close 4400."""
    STALL = "stall"
    """After ``fault_after_seconds`` of audio: no reads, no pongs, for ``stall_seconds``."""
    NEVER_READY = "never_ready"
    """Send the final snapshot but never ``ready_to_stop``."""
    NO_WORKLET = "no_worklet"
    """Config says ``useAudioWorklet: false`` (the server expects a container, not PCM)."""
    OVERLOAD = "overload"
    """After ``fault_after_seconds`` of audio: an error message, then close 1011, as WLK does
    since PR #435 when a session's audio queue stays full for 30 s."""


# Short names accepted in query strings, for readable test URLs.
_FAULT_ALIASES = {
    "drop": Fault.TCP_DROP,
    "reject": Fault.HANDSHAKE_REFUSED,
    "1011": Fault.CLOSE_1011,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class InvalidOptionError(ValueError):
    """A known query parameter has a value the simulator cannot use."""


@dataclass(frozen=True)
class SessionOptions:
    """The behaviour of one session."""

    profile: Profile
    speed: float
    fault: Fault | None
    fault_after_seconds: float
    diarization: bool
    use_audio_worklet: bool
    stall_seconds: float
    snapshot_interval_seconds: float
    pause_seconds: float
    # Real Whisper hallucinates runs of punctuation (". . . .") in pauses of compressed audio and
    # WLK passes them on as speech lines: ``?dots=1`` adds such a line after every silence line.
    punctuation_in_pauses: bool = False
    fault_times: int = 0
    """Fire the fault in the first N sessions of the simulator that reach it; 0 = in all."""

    def __post_init__(self) -> None:
        for name in ("speed", "snapshot_interval_seconds", "pause_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidOptionError(f"{name} must be a positive number, got {value!r}")
        for name in ("fault_after_seconds", "stall_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidOptionError(f"{name} must be a non-negative number, got {value!r}")
        if self.fault_times < 0:
            raise InvalidOptionError(f"fault_times must be >= 0, got {self.fault_times!r}")

    @property
    def sends_worklet_config(self) -> bool:
        return self.use_audio_worklet and self.fault is not Fault.NO_WORKLET

    def with_query(self, query: Mapping[str, str]) -> SessionOptions:
        """Apply query-string overrides.

        Raises:
            InvalidOptionError: a known parameter has an unusable value.
        """
        changes: dict[str, object] = {}
        if "profile" in query:
            try:
                changes["profile"] = get_profile(query["profile"])
            except ValueError as exc:
                raise InvalidOptionError(str(exc)) from None
        if "fault" in query:
            changes["fault"] = parse_fault(query["fault"])
        for key, name in (
            ("speed", "speed"),
            ("fault_after", "fault_after_seconds"),
            ("stall", "stall_seconds"),
            ("pause", "pause_seconds"),
            ("interval", "snapshot_interval_seconds"),
        ):
            if key in query:
                changes[name] = _parse_float(key, query[key])
        if "fault_times" in query:
            try:
                changes["fault_times"] = int(query["fault_times"])
            except ValueError:
                raise InvalidOptionError(
                    f"fault_times must be an integer, got {query['fault_times']!r}"
                ) from None
        if "diarization" in query:
            changes["diarization"] = _parse_bool("diarization", query["diarization"])
        if "dots" in query:
            changes["punctuation_in_pauses"] = _parse_bool("dots", query["dots"])
        if "worklet" in query:
            changes["use_audio_worklet"] = _parse_bool("worklet", query["worklet"])
        return replace(self, **changes)  # type: ignore[arg-type]


def parse_fault(value: str) -> Fault | None:
    """A ``Fault`` from its name or alias; ``""``/``none`` mean no fault.

    Raises:
        InvalidOptionError: unknown name.
    """
    name = value.strip().lower()
    if name in ("", "none"):
        return None
    if name in _FAULT_ALIASES:
        return _FAULT_ALIASES[name]
    try:
        return Fault(name)
    except ValueError:
        known = ", ".join([f.value for f in Fault] + sorted(_FAULT_ALIASES))
        raise InvalidOptionError(f"unknown fault {value!r} (known: {known})") from None


def _parse_float(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InvalidOptionError(f"{key} must be a number, got {value!r}") from None


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidOptionError(f"{key} must be 0 or 1, got {value!r}")
