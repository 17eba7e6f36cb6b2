"""PostgreSQL for tests: a fresh schema per test in the database named by AYMURAI_TEST_POSTGRES_URI.

Skips locally when PostgreSQL is unreachable (with the reason), fails in CI (`CI=true`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from test.e2e import require

DEFAULT_URI = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_uri() -> str:
    return os.environ.get("AYMURAI_TEST_POSTGRES_URI", DEFAULT_URI)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards; yields its URL."""
    base = make_url(postgres_uri())
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
        reachable = True
    except Exception:  # any driver error means "not usable here"
        reachable = False
    require(
        reachable, f"PostgreSQL is not reachable at {base.render_as_string(hide_password=True)}"
    )
    name = f"aymurai_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
