"""Redis for tests: the server named by AYMURAI_TEST_REDIS_URL, a fresh key prefix per test.

Skips locally when Redis is unreachable (with the reason), fails in CI (`CI=true`). Tests never
flush the database: each one writes under its own prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aymurai.distributed.connection import SharedRedis, check_reachable
from test.e2e import eventually, require
from test.processes import free_port

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("AYMURAI_TEST_REDIS_URL", DEFAULT_URL)


def require_redis() -> str:
    """The Redis URL, after checking it answers (skip locally, fail in CI)."""
    url = redis_url()
    problem = check_reachable(url)
    require(problem is None, problem or "")
    return url


def fresh_prefix() -> str:
    return f"aymurai-test-{uuid.uuid4().hex[:12]}"


async def delete_prefix(shared: SharedRedis) -> None:
    keys = [key async for key in shared.client.scan_iter(match=f"{shared.prefix}:*", count=500)]
    if keys:
        await shared.client.delete(*keys)


@asynccontextmanager
async def shared_redis(
    *, prefix: str | None = None, replica_id: str = "test-replica", lease_ttl_seconds: float = 15
) -> AsyncIterator[SharedRedis]:
    """A `SharedRedis` on a fresh prefix; its keys are deleted afterwards."""
    shared = SharedRedis(
        require_redis(),
        prefix=prefix or fresh_prefix(),
        replica_id=replica_id,
        lease_ttl_seconds=lease_ttl_seconds,
    )
    try:
        yield shared
    finally:
        await delete_prefix(shared)
        await shared.aclose()


@dataclass
class RedisServer:
    """A redis-server process of the test's own, to stop and start again (an outage)."""

    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        require(binary is not None, "redis-server is not installed")
        assert binary is not None
        self.process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await eventually(
            lambda: check_reachable(self.url) is None,
            timeout_seconds=10,
            what="redis-server to answer",
        )

    async def stop(self) -> None:
        """SIGKILL: Redis vanishes with everything it held (this one keeps nothing on disk)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@asynccontextmanager
async def own_redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer(free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
