"""Simulator recognizer: audio content → words, windowing and the speech threshold."""

from __future__ import annotations

import numpy as np
import pytest

from aymurai.simulator.recognizer import (
    MIN_TAIL_BYTES,
    WINDOW_BYTES,
    recognize_pcm,
    recognize_window,
    split_windows,
)
from test.unit.simulator.pcm import silence, tone


@pytest.mark.parametrize("hz", [200, 440, 1000, 3210, 7000])
def test_recognize_window_names_the_tone_frequency(hz: int) -> None:
    """A pure tone window reads as its frequency rounded to 10 Hz."""
    assert recognize_window(tone(hz, 0.5)) == f"f{hz}"


def test_recognize_window_rounds_to_the_nearest_10_hz() -> None:
    """443 Hz reads as f440 and 447 Hz as f450."""
    assert recognize_window(tone(443, 0.5)) == "f440"
    assert recognize_window(tone(447, 0.5)) == "f450"


def test_recognize_window_treats_digital_silence_as_silence() -> None:
    """An all-zero window yields no word."""
    assert recognize_window(silence(0.5)) is None


def test_recognize_window_speech_threshold_is_about_minus_40_dbfs() -> None:
    """A tone at -46 dBFS RMS is silence; one at -34 dBFS RMS is speech."""
    # Sine RMS is amplitude / sqrt(2): amplitude 0.007 → about -46 dBFS, 0.028 → about -34 dBFS.
    assert recognize_window(tone(440, 0.5, amplitude=0.007)) is None
    assert recognize_window(tone(440, 0.5, amplitude=0.028)) == "f440"


def test_recognize_window_depends_on_sample_format() -> None:
    """The same tone byte-swapped (big-endian) does not read as the tone."""
    samples = np.frombuffer(tone(440, 0.5), dtype="<i2")
    assert recognize_window(samples.astype(">i2").tobytes()) != "f440"


def test_recognize_window_depends_on_sample_rate() -> None:
    """A 440 Hz tone rendered at 8 kHz but read as 16 kHz reads as f880."""
    t = np.arange(8000) / 8000
    pcm_8k = (np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype("<i2").tobytes()
    assert recognize_window(pcm_8k[:WINDOW_BYTES]) == "f880"


def test_recognize_window_ignores_a_dc_offset() -> None:
    """A constant offset does not turn into an "f0" word."""
    samples = np.frombuffer(tone(600, 0.5), dtype="<i2").astype(np.int32) + 2000
    assert recognize_window(samples.astype("<i2").tobytes()) == "f600"


def test_split_windows_cuts_half_second_windows_and_keeps_long_tails() -> None:
    """Full windows always; the partial tail only when asked and at least 0.1 s long."""
    pcm = bytes(2 * WINDOW_BYTES + MIN_TAIL_BYTES)
    assert [len(w) for w in split_windows(pcm, include_tail=False)] == [WINDOW_BYTES] * 2
    assert [len(w) for w in split_windows(pcm, include_tail=True)] == [
        WINDOW_BYTES,
        WINDOW_BYTES,
        MIN_TAIL_BYTES,
    ]
    assert len(split_windows(pcm[:-2], include_tail=True)) == 2


def test_recognize_pcm_gives_one_word_per_speech_window_in_order() -> None:
    """Tones separated by silence give their words in order, silence gives none."""
    pcm = tone(440, 1.0) + silence(1.5) + tone(880, 0.5) + tone(300, 0.25)
    assert recognize_pcm(pcm) == ["f440", "f440", "f880", "f300"]


def test_recognize_pcm_windows_follow_the_audio_clock() -> None:
    """Windows start at multiples of 0.5 s, so a tone straddling a boundary shows twice."""
    pcm = silence(0.25) + tone(500, 0.5) + silence(0.25)
    assert recognize_pcm(pcm) == ["f500", "f500"]


def test_recognize_pcm_ignores_a_trailing_odd_byte() -> None:
    """An odd byte count (half a sample) does not break decoding."""
    assert recognize_pcm(tone(440, 0.5) + b"\x01") == ["f440"]
