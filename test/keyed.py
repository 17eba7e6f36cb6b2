"""Test helpers for API keys: a keys file with one key per role, and distinct audio files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aymurai.keys import add_key, parse_scopes
from test.audio_fixtures import make_audio_file

ROLES = {
    "alice": "transcribe",
    "bob": "transcribe",
    "reviewer": "validate",
    "ops": "admin",
}


@dataclass(frozen=True)
class Keys:
    file: Path
    by_name: dict[str, str]

    def header(self, name: str) -> dict[str, str]:
        """`Authorization: Bearer <key>` of the key named `name`."""
        return {"Authorization": f"Bearer {self.by_name[name]}"}


def make_keys_file(directory: Path) -> Keys:
    """A keys file holding one key per entry of ROLES (written by the CLI's own code)."""
    path = directory / "keys" / "api-keys.json"
    by_name = {name: add_key(path, name, parse_scopes(scopes)) for name, scopes in ROLES.items()}
    return Keys(path, by_name)


def make_distinct_audio(directory: Path, index: int, *, bursts: int = 3) -> Path:
    """Speech-like audio (6 s tones, 2.5 s pauses) whose bytes, so document id, differ by index."""
    segments: list[tuple[float, float]] = []
    for _ in range(bursts):
        segments += [(300.0 + 10 * index, 6.0), (0.0, 2.5)]
    return make_audio_file(directory, fmt="wav_s16", tone_hz=segments, name=f"audio-{index}")
