"""Several gateway replicas in the test's process: one PostgreSQL, one Redis prefix, one spool.

Each replica is a full app under uvicorn on its own port (`test.e2e.run_gateway`), configured as
an operator would configure replicas (the same database, Redis, spool and WLK servers). Quicker
than processes for most distributed-mode tests; `test/cluster.py` runs real processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from aymurai.distributed.connection import SharedRedis
from test.e2e import RunningGateway, make_settings, run_gateway
from test.postgres import fresh_postgres_database
from test.redis import delete_prefix, fresh_prefix, require_redis


@asynccontextmanager
async def in_process_replicas(
    tmp_path: Path,
    count: int,
    *,
    ws_uri: str,
    redis_url: str | None = None,
    **overrides: Any,
) -> AsyncIterator[list[RunningGateway]]:
    """`count` replicas sharing a fresh PostgreSQL database, a fresh Redis prefix and a spool."""
    url = redis_url or require_redis()
    prefix = fresh_prefix()
    spool = tmp_path / "shared-spool"
    spool.mkdir(exist_ok=True)
    with fresh_postgres_database() as database:
        try:
            async with AsyncExitStack() as stack:
                replicas = []
                for index in range(count):
                    home = tmp_path / f"replica-{index}"
                    home.mkdir(exist_ok=True)
                    settings = make_settings(
                        home,
                        sqlalchemy_database_uri=database,
                        transcribe_spool_dir=str(spool),
                        transcribe_redis_url=url,
                        transcribe_redis_prefix=prefix,
                        transcribe_replica_id=f"replica-{index}",
                        transcribe_ws_uri=ws_uri,
                        **overrides,
                    )
                    replicas.append(await stack.enter_async_context(run_gateway(settings)))
                yield replicas
        finally:
            cleaner = SharedRedis(url, prefix=prefix, replica_id="cleaner", lease_ttl_seconds=1)
            try:
                await delete_prefix(cleaner)
            except (RedisError, OSError):
                pass  # a Redis of the test's own that it stopped: nothing left to clean
            finally:
                await cleaner.aclose()
