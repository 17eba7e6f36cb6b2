"""Tiny PCM builders for the simulator tests: tones and silence as 16 kHz mono s16le bytes."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


def tone(hz: float, seconds: float, *, amplitude: float = 0.3) -> bytes:
    """A sine tone; ``amplitude`` is a fraction of full scale."""
    t = np.arange(round(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * amplitude * 32767).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(round(SAMPLE_RATE * seconds) * 2)
