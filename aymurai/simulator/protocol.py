"""WLK message building per profile: transcript state → the JSON objects a real server sends.

Pure (no I/O). Each profile is a set of switches taken from the protocol reference (§4, §11.2):

* ``0.2.17`` (the AymurAI fork, the baseline): ``H:MM:SS`` times truncated to whole seconds, no
  ``remaining_time_transcription_processing``/``_policy``, config without ``mode``, an ongoing
  pause shown as a trailing silence line, and no end-of-stream flush.
* ``0.2.26`` (upstream HEAD): ``H:MM:SS.cc`` times, the two audio-clock lag fields, config with
  ``"mode":"full"``, only finished pauses shown, and everything flushed into lines at the end.

Snapshot dicts keep the real field order (Python dicts preserve insertion order and
``json.dumps`` keeps it), because a careless client may depend on it and the real order is what we
want such a client to meet. Lag values follow the real ``max(0, round(x, 1))``: the int ``0`` when
there is no lag, else a one-decimal float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aymurai.simulator.transcript import Line, Transcript

STATUS_ACTIVE = "active_transcription"
STATUS_NO_AUDIO = "no_audio_detected"
STATUS_ERROR = "error"

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Profile:
    """What differs between the WLK versions the simulator imitates."""

    name: str
    centisecond_times: bool
    processing_fields: bool
    mode_in_config: bool
    show_ongoing_pause: bool
    flush_at_end: bool


PROFILES: dict[str, Profile] = {
    "0.2.17": Profile(
        name="0.2.17",
        centisecond_times=False,
        processing_fields=False,
        mode_in_config=False,
        show_ongoing_pause=True,
        flush_at_end=False,
    ),
    "0.2.26": Profile(
        name="0.2.26",
        centisecond_times=True,
        processing_fields=True,
        mode_in_config=True,
        show_ongoing_pause=False,
        flush_at_end=True,
    ),
}


def get_profile(name: str) -> Profile:
    """Look up a profile by version name.

    Raises:
        ValueError: for an unknown name; the message lists the known ones.
    """
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown WLK profile {name!r} (known: {known})") from None


@dataclass(frozen=True)
class Lags:
    """The ``remaining_time_*`` inputs, in seconds, before rounding."""

    transcription: float = 0.0
    processing: float = 0.0
    policy: float = 0.0
    diarization: float = 0.0


def format_time(seconds: float, profile: Profile) -> str:
    """``H:MM:SS`` truncated (0.2.17, ``str(timedelta(seconds=int(s)))``) or ``H:MM:SS.cc``."""
    if not profile.centisecond_times:
        whole = int(seconds)
        return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    centis = math.floor(seconds * 100 + 0.5)
    whole, cc = divmod(centis, 100)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}.{cc:02d}"


def round_lag(seconds: float) -> float | int:
    """The real servers' ``max(0, round(x, 1))``: int 0 when non-positive, else a 0.1 s step."""
    return max(0, round(seconds, 1))


def build_config(profile: Profile, *, use_audio_worklet: bool) -> JsonObject:
    message: JsonObject = {"type": "config", "useAudioWorklet": use_audio_worklet}
    if profile.mode_in_config:
        message["mode"] = "full"
    return message


def build_ready_to_stop() -> JsonObject:
    return {"type": "ready_to_stop"}


def build_error_message(error: str) -> JsonObject:
    """The 0.2.25+ session-parameter error, sent right after accept and followed by close 4400."""
    return {"type": "error", "error": error}


def build_line(line: Line, profile: Profile) -> JsonObject:
    return {
        "speaker": line.speaker,
        "text": line.text,
        "start": format_time(line.start, profile),
        "end": format_time(line.end, profile),
    }


def build_snapshot(
    profile: Profile,
    *,
    lines: list[JsonObject],
    buffer_transcription: str = "",
    buffer_diarization: str = "",
    lags: Lags | None = None,
    status: str | None = None,
    error: str | None = None,
) -> JsonObject:
    """One status snapshot (no ``type`` field), fields in the real order.

    ``status`` defaults to ``no_audio_detected`` when there is nothing to show, else
    ``active_transcription``; ``error`` is added last and only when given.
    """
    lags = lags or Lags()
    if status is None:
        has_content = bool(lines or buffer_transcription or buffer_diarization)
        status = STATUS_ACTIVE if has_content else STATUS_NO_AUDIO
    snapshot: JsonObject = {
        "status": status,
        "lines": lines,
        "buffer_transcription": buffer_transcription,
        "buffer_diarization": buffer_diarization,
        "buffer_translation": "",
        "remaining_time_transcription": round_lag(lags.transcription),
    }
    if profile.processing_fields:
        snapshot["remaining_time_transcription_processing"] = round_lag(lags.processing)
        snapshot["remaining_time_transcription_policy"] = round_lag(lags.policy)
    snapshot["remaining_time_diarization"] = round_lag(lags.diarization)
    if error is not None:
        snapshot["error"] = error
    return snapshot


def build_initial_snapshot(profile: Profile) -> JsonObject:
    """The ``no_audio_detected`` snapshot sent right after config, before any audio."""
    return build_snapshot(profile, lines=[])


def build_error_snapshot(profile: Profile, error: str) -> JsonObject:
    """An FFmpeg-style failure: status ``error``, the ``error`` text, every other field default."""
    return build_snapshot(profile, lines=[], status=STATUS_ERROR, error=error)


def build_transcript_snapshot(
    profile: Profile, transcript: Transcript, *, lags: Lags | None = None
) -> JsonObject:
    """The snapshot for a session's current transcript state."""
    return build_snapshot(
        profile,
        lines=[build_line(line, profile) for line in transcript.lines()],
        buffer_transcription=transcript.buffer_transcription,
        buffer_diarization=transcript.buffer_diarization,
        lags=lags,
    )
