"""Engine construction and schema migration.

The engine is synchronous SQLAlchemy: every call goes through `TranscriptStore`, which runs it in a
bounded worker thread, so the event loop never waits on the database. The app migrates the schema
to head at startup with Alembic (unless TRANSCRIBE_MIGRATE_ON_START is off), so a fresh SQLite file
or an empty PostgreSQL database just works; `aymurai-api migrate` does the same as a deploy step.

The migration scripts live in the repository's top-level `alembic/` folder, where developers and
the alembic CLI expect them; `aymurai/db/migrations` is a link to it, so the wheel carries them
and a non-editable install can migrate (we ship the scripts, not a copy that could drift).

Replicas starting at once migrate one at a time: `hold_migration_lock` (used by alembic/env.py,
so the alembic CLI is covered too) takes a PostgreSQL advisory lock around the migration
transaction, or an exclusive file lock beside a SQLite database. The second replica then finds the
schema at head and does nothing, instead of racing for `alembic_version`.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same in every replica (pg_advisory_xact_lock(bigint)).
MIGRATION_LOCK_KEY = 0x61796D75_72616901  # "aymurai" + 1


def sqlite_file(database: str | None) -> Path | None:
    """The file of a SQLite database name, or None for an in-memory one.

    A URI filename (``sqlite:///file:/data/x.db?mode=ro&uri=true``, how a database is opened
    read-only) names ``/data/x.db``, not a folder called ``file:``.
    """
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
        if not database or database == ":memory:" or "mode=memory" in database:
            return None
    return Path(database)


def make_engine(database_uri: str) -> Engine:
    url = make_url(database_uri)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        # Worker threads share the engine's pool; SQLite's own check would reject that.
        connect_args["check_same_thread"] = False
        path = sqlite_file(url.database)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed during a write; busy_timeout turns lock contention between
    # concurrent uploads into a short wait instead of "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        # A read-only or immutable file cannot switch journal mode. Serving reads still works;
        # `/readyz` reports that writes fail (issue 8), rather than the gateway not starting.
        logger.warning("SQLite database is not writable: %s", exc)
    cursor.close()


def alembic_config(database_uri: str) -> Config:
    """Alembic configured in code: no alembic.ini is needed (an installed wheel has none)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # env.py reads this attribute before falling back to Settings.
    config.attributes["database_uri"] = database_uri
    return config


def migrate_to_head(database_uri: str) -> None:
    command.upgrade(alembic_config(database_uri), "head")


def downgrade_to_base(database_uri: str) -> None:
    command.downgrade(alembic_config(database_uri), "base")


def is_schema_current(connection: Connection) -> bool:
    """True when the database's revision is the newest migration (blocking; run in a thread)."""
    url = connection.engine.url.render_as_string(hide_password=False)
    script = ScriptDirectory.from_config(alembic_config(url))
    current = set(MigrationContext.configure(connection).get_current_heads())
    return current == set(script.get_heads())


@contextmanager
def hold_migration_lock(connection: Connection) -> Iterator[None]:
    """Serialise migrations between processes; wrap the whole migration transaction in it."""
    backend = connection.dialect.name
    if backend == "postgresql":
        # A session-level lock (committed at once so alembic starts its own transaction); the
        # server frees it if this process dies mid-migration.
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
        return
    path = sqlite_file(connection.engine.url.database)
    if backend != "sqlite" or path is None:
        yield
        return
    with Path(f"{path}.migrate-lock").open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield
