"""The WLK servers of `TRANSCRIBE_WS_URI`: parsing the list and each server's session cap.

Pure (no I/O, imports nothing from the gateway, so `settings.py` can validate with it).

    TRANSCRIBE_WS_URI=ws://gpu1:8000/asr#max_sessions=3,ws://gpu2:8000/asr

- URIs are comma-separated; a comma inside a URI must be percent-encoded (`%2C`), as RFC 3986
  allows anywhere a comma could appear in a WebSocket URI.
- An optional fragment `#max_sessions=N` sets that server's cap; without it the server gets
  `TRANSCRIBE_MAX_CONCURRENT_SESSIONS`. The fragment is ours: it is stripped before connecting
  (a WebSocket URI has no fragment, and WLK never sees it).
- Each server is named by its URI without query and fragment (`ws://gpu1:8000/asr`): the name
  is used in logs, `/readyz` and the `backend` label of `/metrics`, where a token in the query
  string must not appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

MAX_SESSIONS_KEY = "max_sessions"


@dataclass(frozen=True)
class Backend:
    """One WLK `/asr` server."""

    name: str
    """The URI without query and fragment: safe to show in logs and metrics."""
    uri: str
    """What we connect to (query kept, fragment removed)."""
    max_sessions: int


def _parse_one(raw: str, default_max_sessions: int) -> Backend:
    if not raw.startswith(("ws://", "wss://")):
        raise ValueError(f"TRANSCRIBE_WS_URI: {raw!r} must start with ws:// or wss://")
    parts = urlsplit(raw)
    if not parts.hostname:
        raise ValueError(f"TRANSCRIBE_WS_URI: {raw!r} has no host")
    max_sessions = default_max_sessions
    if parts.fragment:
        key, sep, value = parts.fragment.partition("=")
        if key != MAX_SESSIONS_KEY or not sep:
            raise ValueError(
                f"TRANSCRIBE_WS_URI: unknown fragment #{parts.fragment} (only #max_sessions=N)"
            )
        try:
            max_sessions = int(value)
        except ValueError:
            raise ValueError(f"TRANSCRIBE_WS_URI: max_sessions={value!r} is not a number") from None
        if not 1 <= max_sessions <= 1024:
            raise ValueError(f"TRANSCRIBE_WS_URI: max_sessions={max_sessions} is not in 1..1024")
    uri = urlunsplit(parts._replace(fragment=""))
    name = urlunsplit(parts._replace(query="", fragment=""))
    return Backend(name=name, uri=uri, max_sessions=max_sessions)


def parse_backend_uris(value: str, *, default_max_sessions: int) -> list[Backend]:
    """The servers listed in `value`, in order.

    Raises:
        ValueError: empty, not ws(s)://, a bad fragment, or the same server twice.
    """
    raws = [item.strip() for item in value.split(",")]
    if not any(raws):
        raise ValueError("TRANSCRIBE_WS_URI is empty")
    backends = [_parse_one(raw, default_max_sessions) for raw in raws if raw]
    names = [backend.name for backend in backends]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"TRANSCRIBE_WS_URI lists {', '.join(duplicates)} more than once")
    return backends
