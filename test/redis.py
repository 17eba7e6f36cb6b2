"""Redis for tests: the server named by AYMURAI_TEST_REDIS_URL, a fresh key prefix per test.

Skips locally when Redis is unreachable (with the reason), fails in CI (`CI=true`). Tests never
flush the database: each one writes under its own prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aymurai.distributed.connection import SharedRedis, check_reachable
from test.e2e import require

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
