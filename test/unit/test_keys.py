"""API keys: the keys file, hashing and matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aymurai.keys import (
    KeyRing,
    KeysFileError,
    add_key,
    hash_key,
    parse_scopes,
    read_keys,
    remove_key,
)


def test_keys_add_stores_only_the_hash_and_matches_the_key(tmp_path: Path) -> None:
    """add_key returns a fresh high-entropy key; the file keeps its SHA-256, name and scopes."""
    path = tmp_path / "new" / "keys.json"
    key = add_key(path, "court-7", parse_scopes("transcribe,validate"))
    other = add_key(path, "ops", parse_scopes(["admin"]))
    assert key != other and key.startswith("aym_") and len(key) >= 40
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    ring = KeyRing(read_keys(path))
    found = ring.match(key)
    assert found is not None and found.name == "court-7"
    assert found.scopes == {"transcribe", "validate"}
    assert ring.match(other) is not None and ring.match(other).name == "ops"  # type: ignore[union-attr]
    assert ring.match(key[:-1]) is None
    assert ring.match("") is None
    assert ring.match("x" * 10_000) is None


def test_keys_remove_and_unknown_names(tmp_path: Path) -> None:
    """remove_key deletes by name; a taken or bad name and an unknown scope are refused."""
    path = tmp_path / "keys.json"
    add_key(path, "a", parse_scopes("transcribe"))
    with pytest.raises(ValueError):
        add_key(path, "a", parse_scopes("transcribe"))
    with pytest.raises(ValueError):
        add_key(path, "no spaces", parse_scopes("transcribe"))
    with pytest.raises(ValueError):
        parse_scopes("transcribe,root")
    with pytest.raises(ValueError):
        parse_scopes("")
    assert remove_key(path, "a") is True
    assert remove_key(path, "a") is False
    assert read_keys(path) == []


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        json.dumps({"keys": [{"name": "a", "scopes": ["transcribe"]}]}),
        json.dumps({"keys": [{"name": "a", "sha256": "zz", "scopes": ["transcribe"]}]}),
        json.dumps({"keys": [{"name": "a", "sha256": "0" * 64, "scopes": ["god"]}]}),
        json.dumps({"keys": [{"name": "a", "sha256": "0" * 64, "scopes": ["admin"]}] * 2}),
    ],
)
def test_keys_file_not_ours_is_an_error(tmp_path: Path, content: str) -> None:
    """A keys file that is not our format refuses to load (the gateway must not start open)."""
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(KeysFileError):
        read_keys(path)
