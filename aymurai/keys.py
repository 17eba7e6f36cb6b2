"""API keys: the keys file, hashing, and checking a presented key (no HTTP here).

The file (TRANSCRIBE_API_KEYS_FILE) is JSON, written by `aymurai-api keys add|remove`:

    {"version": 1,
     "keys": [{"name": "court-7", "sha256": "<64 hex>", "scopes": ["transcribe", "validate"],
               "created_at": "2026-11-30T04:00:00Z"}]}

A key is `aym_` plus 32 random bytes (base64url), so its SHA-256 is all we keep: no salt or slow
hash is needed for a secret with 256 bits of entropy (the reason passwords need them is that they
are guessable). The gateway reads the file once at startup; a change takes effect at the next
start (or replica roll). We do not watch the file, so a half-written file can never lock everyone
out mid-run, and every replica answers with the same keys until it restarts.

A presented key is hashed and compared with every stored hash with `hmac.compare_digest`: the
time taken does not depend on which key (if any) matched, or on how many bytes of a hash did.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

SCOPE_TRANSCRIBE: Final = "transcribe"
SCOPE_VALIDATE: Final = "validate"
SCOPE_ADMIN: Final = "admin"
SCOPES: Final = (SCOPE_TRANSCRIBE, SCOPE_VALIDATE, SCOPE_ADMIN)

KEY_PREFIX: Final = "aym_"
KEY_RANDOM_BYTES: Final = 32
MAX_PRESENTED_KEY_CHARS: Final = 256  # longer is no key of ours; never hash megabytes
NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FILE_VERSION: Final = 1


class KeysFileError(Exception):
    """The keys file cannot be read or holds something other than our format."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    scopes: frozenset[str]
    created_at: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def parse_scopes(text: str | Iterable[str]) -> frozenset[str]:
    """`transcribe,validate` → the scopes; raises ValueError naming an unknown one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes = frozenset(item.strip() for item in items if item.strip())
    unknown = scopes - set(SCOPES)
    if unknown:
        raise ValueError(
            f"unknown scope(s) {', '.join(sorted(unknown))}; known: {', '.join(SCOPES)}"
        )
    if not scopes:
        raise ValueError(f"at least one scope is needed: {', '.join(SCOPES)}")
    return scopes


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(
            "a key name is 1-64 of A-Z a-z 0-9 . _ - and starts with a letter or digit"
        )
    return name


def _parse_entry(entry: object, where: str) -> ApiKey:
    if not isinstance(entry, dict):
        raise KeysFileError(f"{where}: each key is an object")
    try:
        name = check_name(str(entry["name"]))
        digest = str(entry["sha256"]).lower()
        scopes = parse_scopes(entry["scopes"])
    except KeyError as exc:
        raise KeysFileError(f"{where}: missing field {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise KeysFileError(f"{where}: {exc}") from exc
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise KeysFileError(f"{where}: sha256 must be 64 hex digits")
    return ApiKey(name, digest, scopes, str(entry.get("created_at", "")))


def read_keys(path: Path) -> list[ApiKey]:
    """The keys of the file; a missing file has none.

    Raises:
        KeysFileError: unreadable, not JSON, or not our format (duplicate names included).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise KeysFileError(f"{path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KeysFileError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeysFileError(f'{path}: expected {{"version": 1, "keys": [...]}}')
    keys = [_parse_entry(entry, f"{path}: keys[{i}]") for i, entry in enumerate(data["keys"])]
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise KeysFileError(f"{path}: duplicate key names")
    return keys


def write_keys(path: Path, keys: list[ApiKey]) -> None:
    """Replace the file atomically (a reader never sees half a file), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": FILE_VERSION, "keys": [k.as_json() for k in keys]}, indent=2)
    fd, temporary = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(body + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_key(path: Path, name: str, scopes: frozenset[str]) -> str:
    """Append a new key named `name`; returns the key itself (shown once, never stored).

    Raises:
        ValueError: a bad or taken name.
        KeysFileError: the file is not ours.
    """
    check_name(name)
    keys = read_keys(path)
    if any(key.name == name for key in keys):
        raise ValueError(f"a key named {name!r} exists; remove it first")
    key = new_key()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_keys(path, [*keys, ApiKey(name, hash_key(key), scopes, created)])
    return key


def remove_key(path: Path, name: str) -> bool:
    """Remove the key named `name`; False when there is none."""
    keys = read_keys(path)
    kept = [key for key in keys if key.name != name]
    if len(kept) == len(keys):
        return False
    write_keys(path, kept)
    return True


class KeyRing:
    """The keys a gateway accepts, loaded once."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, presented: str) -> ApiKey | None:
        """The key whose hash matches, or None; constant time in which key matched."""
        if not presented or len(presented) > MAX_PRESENTED_KEY_CHARS:
            return None
        digest = hash_key(presented)
        found: ApiKey | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found
