"""Is WhisperLiveKit reachable? A cached WebSocket-handshake probe for `GET /readyz`.

Readiness checks arrive often (every few seconds from each load balancer or kubelet), and each
probe against the real server opens a session there (WLK sets up per-session state on accept), so
we keep it light:
- a result is cached for `ttl_seconds`, a failure as well as a success, so a dead server is not
  hammered either;
- at most one probe is in flight: concurrent checks wait on a lock and then reuse its result;
- a real transcription connecting upstream counts as a successful probe (`record_success`), so a
  busy gateway never opens probe sessions at all;
- the probe sends nothing: it completes the handshake and closes at once (code 1000).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import anyio

from aymurai.errors import UpstreamError
from aymurai.transcription.upstream import ConnectionOptions, connect_wlk

logger = logging.getLogger(__name__)


class UpstreamProbe:
    """The last known answer to "does WLK accept a WebSocket handshake?"."""

    def __init__(
        self, options: ConnectionOptions, *, ttl_seconds: float, timeout_seconds: float
    ) -> None:
        self._options = replace(
            options,
            open_timeout_seconds=min(options.open_timeout_seconds, timeout_seconds),
            ping_interval_seconds=None,
        )
        self._ttl = ttl_seconds
        self._lock = anyio.Lock()
        self._checked_at = -math.inf
        self._problem: str | None = None

    def record_success(self) -> None:
        """A transcription just completed a handshake: as good as a probe."""
        self._checked_at = anyio.current_time()
        self._problem = None

    def _is_fresh(self) -> bool:
        return anyio.current_time() - self._checked_at < self._ttl

    async def check(self) -> str | None:
        """None when WLK accepted a handshake within the TTL, else `"CODE: detail"`."""
        if self._is_fresh():
            return self._problem
        async with self._lock:
            if not self._is_fresh():  # another check may have probed while we waited
                self._problem = await self._probe()
                self._checked_at = anyio.current_time()
            return self._problem

    async def _probe(self) -> str | None:
        try:
            async with connect_wlk(self._options):
                pass
        except UpstreamError as exc:
            logger.warning("readiness: WLK probe failed: %s", exc.detail)
            return f"{exc.code}: {exc.detail}"
        return None
