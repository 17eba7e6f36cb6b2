"""The Redis the replicas share: one client, key names, Redis' clock, and whether it answers.

Every Redis call of the gateway goes through `SharedRedis.call()`, the one place where redis-py's
exceptions enter our code: a connection or timeout error becomes `SharedStateUnavailableError`
(503 `REDIS_UNAVAILABLE` for a new upload) and marks Redis unavailable; the next call that
succeeds marks it available again, so a replica recovers by itself when Redis returns. `watch()`
pings in the background so that `/readyz` knows even when nothing else is calling.

Times that several replicas compare (lease expiries) are read from Redis (`TIME`, inside the Lua
scripts), never from a replica's own clock: replicas whose clocks disagree still agree on leases.

A blocking read (XREAD BLOCK) must return before the socket timeout, or redis-py reports a
timeout on a healthy connection: `MAX_BLOCK_MS` stays well under `SOCKET_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import redis.asyncio as redis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from aymurai.errors import SharedStateUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

SOCKET_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 2.0
MAX_BLOCK_MS = 2000
"""The longest XREAD BLOCK: well under the socket timeout (see the module docstring)."""
WATCH_INTERVAL_SECONDS = 1.0
RETRIES = 1

UNAVAILABLE_ERRORS = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    OSError,
)


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':***@' if user else '***@'}{host}"


class SharedRedis:
    """The shared Redis of a replica: `call()` every command through it."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        replica_id: str,
        lease_ttl_seconds: float,
        client: redis.Redis | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.replica_id = replica_id
        self.lease_ttl_seconds = lease_ttl_seconds
        self.client: redis.Redis = client or redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            # One quick retry (a connection the server closed while idle), not redis-py's ten
            # with backoff: a Redis that is down must not hold a job's recorder for seconds.
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), RETRIES),
            health_check_interval=10,
            decode_responses=False,
        )
        self.available = True
        self.problem: str | None = None
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def lease_ttl_ms(self) -> int:
        return int(self.lease_ttl_seconds * 1000)

    def key(self, *parts: str) -> str:
        """A key of this gateway: `<prefix>:<part>:<part>…`."""
        return ":".join((self.prefix, *parts))

    def on_availability(self, listener: Callable[[bool], None]) -> None:
        """`listener(available)` is called whenever Redis becomes unavailable or available."""
        self._listeners.append(listener)

    def _mark(self, available: bool, problem: str | None = None) -> None:
        if available == self.available:
            self.problem = problem if not available else None
            return
        self.available = available
        self.problem = problem
        if available:
            logger.info("Redis at %s answers again", redact(self.url))
        else:
            logger.error("Redis at %s is unavailable: %s", redact(self.url), problem)
        for listener in self._listeners:
            listener(available)

    async def call(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis command (or pipeline); its failure to connect becomes ours.

        Raises:
            SharedStateUnavailableError: Redis could not be reached or did not answer in time.
        """
        try:
            result = await command()
        except UNAVAILABLE_ERRORS as exc:
            self._mark(False, f"{type(exc).__name__}: {exc}")
            raise SharedStateUnavailableError() from exc
        self._mark(True)
        return result

    async def ping(self) -> None:
        await self.call(self.client.ping)

    async def watch(self) -> None:
        """Forever: ping, so availability is known while nothing else calls (run in a task)."""
        while True:
            try:
                await self.ping()
            except SharedStateUnavailableError:
                pass
            await anyio.sleep(WATCH_INTERVAL_SECONDS)

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except UNAVAILABLE_ERRORS:
            pass


def check_reachable(url: str) -> str | None:
    """At startup (sync): None when Redis answers a PING, else the problem in one line."""
    import redis as sync_redis

    client = sync_redis.Redis.from_url(
        url, socket_timeout=CONNECT_TIMEOUT_SECONDS, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except (redis_errors.RedisError, OSError) as exc:
        return f"cannot reach Redis at {redact(url)}: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None
