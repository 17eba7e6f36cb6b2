"""WhisperLiveKit `/asr` messages: parsing and interpretation, with no I/O (sans-io).

Supports the fork baseline 0.2.17 and upstream 0.2.26. Every status snapshot is the *whole* state:
we replace, never append. Unknown or malformed messages parse to `UnknownMessage` so the caller
can log and ignore them; only the caller decides what is fatal.

Progress ("how much audio has WLK processed") differs by version:
- 0.2.23+ sends `remaining_time_transcription_policy` = processed_end − committed_end on the audio
  clock, so processed_end = end of the last committed speech + policy;
- 0.2.17 has no such field: the end of the last non-silence line is a lower bound. Silence lines
  are skipped because on 0.2.17 their `end` is the wall clock "now", not audio time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

SILENCE_SPEAKER = -2


@dataclass(frozen=True)
class TranscriptLine:
    speaker: int
    text: str
    start: float
    end: float
    language: str | None = None

    @property
    def is_silence(self) -> bool:
        return self.speaker == SILENCE_SPEAKER


@dataclass(frozen=True)
class StatusSnapshot:
    status: str
    lines: tuple[TranscriptLine, ...] = ()
    buffer_transcription: str = ""
    buffer_diarization: str = ""
    error: str | None = None
    remaining_processing_seconds: float | None = None
    remaining_policy_seconds: float | None = None

    @property
    def is_error(self) -> bool:
        return self.status == "error" or bool(self.error)

    @property
    def speech_lines(self) -> tuple[TranscriptLine, ...]:
        return tuple(line for line in self.lines if not line.is_silence and line.text.strip())

    @property
    def tail_text(self) -> str:
        """Text recognised but not yet placed in `lines` (0.2.17 leaves the last words here)."""
        return (self.buffer_diarization + self.buffer_transcription).strip()

    def received_seconds(self) -> float | None:
        """Audio WLK has taken in (0.2.23+: processed + remaining_processing); None before."""
        if self.remaining_processing_seconds is None or self.remaining_policy_seconds is None:
            return None
        return self.processed_seconds() + self.remaining_processing_seconds

    def processed_seconds(self) -> float:
        """Audio seconds WLK has processed, as far as this snapshot tells (a lower bound)."""
        speech_end = max((line.end for line in self.speech_lines), default=0.0)
        if self.remaining_policy_seconds is not None:
            # 0.2.23+: policy = processed_end − committed_end, and a finished pause is committed
            # (WLK adds it to its tokens; it is the silence line, on the audio clock, and an
            # ongoing pause is not shown). From the speech end alone, the estimate would lag by
            # the pause until a word after it is committed, and the pacer's in-flight rule, fed
            # that lag, would wait for audio WLK already has (until the idle timeout).
            committed_end = max((line.end for line in self.lines), default=0.0)
            return max(speech_end, committed_end) + self.remaining_policy_seconds
        return speech_end


@dataclass(frozen=True)
class ConfigMessage:
    use_audio_worklet: bool | None
    mode: str | None = None


@dataclass(frozen=True)
class ReadyToStop:
    pass


@dataclass(frozen=True)
class ErrorMessage:
    error: str


@dataclass(frozen=True)
class UnknownMessage:
    reason: str
    raw: str = field(repr=False, default="")


WLKMessage = StatusSnapshot | ConfigMessage | ReadyToStop | ErrorMessage | UnknownMessage


def parse_time(value: Any) -> float:
    """Parse WLK's "H:MM:SS", "H:MM:SS.cc" or a plain number of seconds.

    Raises:
        ValueError: the value is none of these.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        parts = value.strip().split(":")
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"not a time: {value!r}")
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + float(part)
    else:
        raise ValueError(f"not a time: {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a time: {value!r}")
    return seconds


def _optional_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _parse_line(raw: Any) -> TranscriptLine | None:
    if not isinstance(raw, dict):
        return None
    try:
        speaker = int(raw.get("speaker", 1))
        start = parse_time(raw.get("start", raw.get("beg", 0)))
        end = parse_time(raw.get("end", start))
    except (TypeError, ValueError):
        return None
    text = raw.get("text") or ""
    language = raw.get("detected_language")
    return TranscriptLine(
        speaker=speaker,
        text=text if isinstance(text, str) else str(text),
        start=start,
        end=max(start, end),
        language=language if isinstance(language, str) and language else None,
    )


def _parse_snapshot(data: dict[str, Any]) -> StatusSnapshot:
    raw_lines = data.get("lines")
    parsed = (_parse_line(item) for item in (raw_lines if isinstance(raw_lines, list) else []))
    lines = tuple(line for line in parsed if line is not None)
    error = data.get("error")
    return StatusSnapshot(
        status=str(data.get("status", "active_transcription")),
        lines=lines,
        buffer_transcription=str(data.get("buffer_transcription") or ""),
        buffer_diarization=str(data.get("buffer_diarization") or ""),
        error=str(error) if error else None,
        remaining_processing_seconds=_optional_float(
            data.get("remaining_time_transcription_processing")
        ),
        remaining_policy_seconds=_optional_float(data.get("remaining_time_transcription_policy")),
    )


def parse_message(text: str | bytes) -> WLKMessage:
    """Turn one text frame from WLK into a message; never raises."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return UnknownMessage("not JSON", raw=str(text)[:200])
    if not isinstance(data, dict):
        return UnknownMessage("not a JSON object", raw=str(text)[:200])
    kind = data.get("type")
    if kind is None or kind == "snapshot":
        return _parse_snapshot(data)
    if kind == "config":
        worklet = data.get("useAudioWorklet")
        mode = data.get("mode")
        return ConfigMessage(
            use_audio_worklet=worklet if isinstance(worklet, bool) else None,
            mode=mode if isinstance(mode, str) else None,
        )
    if kind == "ready_to_stop":
        return ReadyToStop()
    if kind == "error":
        return ErrorMessage(str(data.get("error") or data.get("message") or "unknown error"))
    return UnknownMessage(f"unknown type {kind!r}", raw=str(text)[:200])
