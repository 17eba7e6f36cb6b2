"""Is WhisperLiveKit ready? What `GET /readyz` says about the pool of WLK servers.

Readiness checks arrive often (every few seconds from each load balancer or kubelet), and each
probe against a real server opens a session there (WLK sets up per-session state on accept), so
the probes stay light (`pool.py`):
- a server's answer is reused for TRANSCRIBE_WS_PROBE_TTL_SECONDS, and a real transcription
  opening a session counts as one, so a busy gateway never opens probe sessions at all;
- at most one probe per server is in flight: concurrent checks wait and reuse its result;
- a probe sends no audio: handshake, config message, close (1000).

The gateway is ready while at least one server is up; each server's state is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aymurai.transcription.pool import UpstreamPool


@dataclass(frozen=True)
class UpstreamReadiness:
    problem: str | None
    """None while at least one server is up, else the first server's `"CODE: detail"`."""
    servers: list[dict[str, Any]]
    """Per server: name, state (up/down), sessions in use, cap, last problem."""


async def check_upstream(pool: UpstreamPool) -> UpstreamReadiness:
    """Probe the servers whose last answer is stale, then report."""
    statuses = await pool.check()
    servers = [
        {
            "name": status.backend.name,
            "state": status.state.value,
            "sessions_in_use": status.in_use,
            "max_sessions": status.backend.max_sessions,
            "problem": status.problem,
        }
        for status in statuses
    ]
    if any(status.is_up for status in statuses):
        return UpstreamReadiness(None, servers)
    problem = next((s.problem for s in statuses if s.problem), "UPSTREAM_UNAVAILABLE: no server")
    return UpstreamReadiness(problem, servers)
