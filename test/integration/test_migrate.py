"""Deploying the schema: `aymurai-api migrate`, replicas migrating at once, migrate-on-start off.

The command runs as a real subprocess configured by its environment, as a deploy step would.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from aymurai.simulator import WLKSimulator
from test.e2e import make_settings, run_gateway, seconds
from test.postgres import fresh_postgres_database
from test.processes import gateway_env

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class MigrateRun:
    returncode: int
    output: str


async def run_migrate(database_uri: str, cwd: Path) -> MigrateRun:
    """`aymurai-api migrate` against `database_uri`; its exit status and combined output."""
    script = Path(sys.executable).parent / "aymurai-api"
    process = await asyncio.create_subprocess_exec(
        str(script),
        "migrate",
        cwd=cwd,  # no stray .env from the repository
        env=gateway_env(SQLALCHEMY_DATABASE_URI=database_uri),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(seconds(60)):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return MigrateRun(process.returncode, output.decode(errors="replace"))


def _revision(database_uri: str) -> list[str]:
    engine = create_engine(database_uri)
    try:
        with engine.connect() as connection:
            if "alembic_version" not in inspect(connection).get_table_names():
                return []
            return [row[0] for row in connection.execute(text("SELECT * FROM alembic_version"))]
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        with fresh_postgres_database() as uri:
            yield uri


async def test_migrate_command_upgrades_then_is_a_no_op(
    empty_database: str, tmp_path: Path
) -> None:
    """`migrate` creates the schema, says so in one line, and a rerun changes nothing."""
    first = await run_migrate(empty_database, tmp_path)
    revision = _revision(empty_database)
    second = await run_migrate(empty_database, tmp_path)

    assert first.returncode == 0, first.output
    assert "database migrated" in first.output
    assert len(revision) == 1
    assert second.returncode == 0, second.output
    assert _revision(empty_database) == revision


async def test_migrate_three_replicas_at_once_never_collide(
    empty_database: str, tmp_path: Path
) -> None:
    """Three `migrate` processes started together on an empty database all succeed (the lock
    serialises them), three rounds in a row; without it they raced for alembic_version."""
    for _ in range(3):
        runs = await asyncio.gather(*(run_migrate(empty_database, tmp_path) for _ in range(3)))
        for run in runs:
            assert run.returncode == 0, run.output
        assert len(_revision(empty_database)) == 1
        _drop_everything(empty_database)


def _drop_everything(database_uri: str) -> None:
    engine = create_engine(database_uri)
    try:
        with engine.begin() as connection:
            for table in inspect(connection).get_table_names():
                connection.execute(text(f'DROP TABLE "{table}"'))
    finally:
        engine.dispose()


async def test_migrate_command_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    """A database that cannot be reached: exit 1 and one line naming the failure, no traceback."""
    run = await run_migrate("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path)

    assert run.returncode == 1
    assert "migration failed: OperationalError" in run.output
    assert "Traceback" not in run.output


async def test_migrate_on_start_off_keeps_readiness_down_until_migrated(tmp_path: Path) -> None:
    """With TRANSCRIBE_MIGRATE_ON_START=false an empty database is left alone and /readyz says
    MIGRATION_REQUIRED; once `aymurai-api migrate` has run, the same process becomes ready."""
    async with WLKSimulator() as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_migrate_on_start=False
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            before = await client.get("/readyz")
            tables_before = _revision(settings.sqlalchemy_database_uri)
            migrated = await run_migrate(settings.sqlalchemy_database_uri, tmp_path)
            after = await client.get("/readyz")

    assert before.status_code == 503
    assert before.json()["checks"]["schema"].startswith("MIGRATION_REQUIRED")
    assert tables_before == []
    assert migrated.returncode == 0, migrated.output
    assert after.status_code == 200, after.json()
    assert "schema" not in after.json()["checks"]
