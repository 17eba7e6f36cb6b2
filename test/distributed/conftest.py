"""Fixtures of the distributed-mode tests: a fresh PostgreSQL database, Redis, libfaketime.

Each skips locally when its dependency is missing and fails in CI (`test.e2e.require`). The
replicas themselves are started by `test.cluster.run_cluster()` inside each test, since every
scenario needs its own shape (replicas, simulators, caps, clocks).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from test.cluster import require_faketime
from test.postgres import fresh_postgres_database
from test.redis import require_redis


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """The URI of an empty PostgreSQL database, dropped after the test."""
    with fresh_postgres_database() as uri:
        yield uri


@pytest.fixture
def redis_url() -> str:
    """The test Redis (the cluster writes under a fresh key prefix and deletes it afterwards)."""
    return require_redis()


@pytest.fixture
def faketime_library() -> Path:
    """The preloadable libfaketime (`make install-faketime`)."""
    return require_faketime()
