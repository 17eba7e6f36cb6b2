"""Synthetic speech recognizer: 16 kHz s16le mono PCM → one word per 0.5 s window of "speech".

Pure and deterministic (numpy only, no I/O, no asyncio), so the simulator's sessions and the tests'
``expected_words()`` compute exactly the same transcript from the same bytes.

The word depends on the audio *content*, not merely on its length: a gateway that sends the
wrong PCM (wrong rate, wrong sample format, byte-swapped, resampled badly) gets a different
transcript and fails its end-to-end assertions. A window is "speech" when its RMS is above
``SPEECH_THRESHOLD_DBFS``; its word is the FFT peak frequency rounded to the nearest 10 Hz,
spelled ``f"f{hz}"`` (a 440 Hz tone gives ``"f440"``). Quieter windows are silence, no word.

Windows are cut on the audio clock from the start of the stream: window ``k`` covers bytes
``[k * WINDOW_BYTES, (k + 1) * WINDOW_BYTES)``. A trailing partial window (only processed when the
stream is flushed at its end) counts when it holds at least ``MIN_TAIL_SECONDS`` of audio: a few
stray samples left over by a resampler should not produce a word of their own.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
BYTES_PER_SAMPLE = 2
BYTES_PER_SECOND = SAMPLE_RATE * BYTES_PER_SAMPLE
WINDOW_SECONDS = 0.5
WINDOW_SAMPLES = int(SAMPLE_RATE * WINDOW_SECONDS)
WINDOW_BYTES = WINDOW_SAMPLES * BYTES_PER_SAMPLE
MIN_TAIL_SECONDS = 0.1
MIN_TAIL_BYTES = int(MIN_TAIL_SECONDS * BYTES_PER_SECOND)
SPEECH_THRESHOLD_DBFS = -40.0
_FULL_SCALE = 32768.0
_SPEECH_RMS = _FULL_SCALE * 10 ** (SPEECH_THRESHOLD_DBFS / 20)
_FREQUENCY_STEP_HZ = 10


def recognize_window(pcm: bytes | bytearray | memoryview) -> str | None:
    """Return the word for one window of s16le PCM, or ``None`` when the window is silence.

    Args:
        pcm: Up to ``WINDOW_BYTES`` of 16 kHz mono s16le audio. A trailing odd byte is ignored.
    """
    samples = _to_samples(pcm)
    if samples.size == 0 or _rms(samples) <= _SPEECH_RMS:
        return None
    return f"f{_peak_frequency_hz(samples)}"


def split_windows(pcm: bytes | bytearray, *, include_tail: bool) -> list[bytes]:
    """Cut PCM into full windows, plus the partial tail when asked and long enough."""
    full = len(pcm) // WINDOW_BYTES
    windows = [bytes(pcm[i * WINDOW_BYTES : (i + 1) * WINDOW_BYTES]) for i in range(full)]
    tail = pcm[full * WINDOW_BYTES :]
    if include_tail and is_tail_long_enough(len(tail)):
        windows.append(bytes(tail))
    return windows


def is_tail_long_enough(n_bytes: int) -> bool:
    """Whether a trailing partial window is long enough to be recognized when flushed."""
    return n_bytes >= MIN_TAIL_BYTES


def recognize_pcm(pcm: bytes | bytearray) -> list[str]:
    """Every word of a whole stream, tail included: what a flushing (0.2.19+) server ends with."""
    words = (recognize_window(window) for window in split_windows(pcm, include_tail=True))
    return [word for word in words if word is not None]


def _to_samples(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.float64]:
    usable = len(pcm) - len(pcm) % BYTES_PER_SAMPLE
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float64)


def _rms(samples: npt.NDArray[np.float64]) -> float:
    return math.sqrt(float(np.mean(np.square(samples))))


def _peak_frequency_hz(samples: npt.NDArray[np.float64]) -> int:
    # Zero-padding to a full window keeps a 2 Hz bin spacing for short tails; the Hann window keeps
    # leakage from shifting the peak. The DC bin is skipped so an offset does not read as "f0".
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size), n=WINDOW_SAMPLES))
    spectrum[0] = 0.0
    peak_bin = int(np.argmax(spectrum))
    hz = peak_bin * SAMPLE_RATE / WINDOW_SAMPLES
    # Half-up rather than Python's round-half-even, so 445 Hz reads as 450 like a person would say.
    return math.floor(hz / _FREQUENCY_STEP_HZ + 0.5) * _FREQUENCY_STEP_HZ
