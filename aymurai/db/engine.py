"""Engine construction and schema migration.

The engine is synchronous SQLAlchemy: every call goes through `TranscriptStore`, which runs it in a
bounded worker thread, so the event loop never waits on the database. The app migrates the schema
to head at startup with Alembic, so a fresh SQLite file or an empty PostgreSQL database just works.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_DIR = PROJECT_ROOT / "alembic"


def make_engine(database_uri: str) -> Engine:
    url = make_url(database_uri)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        # Worker threads share the engine's pool; SQLite's own check would reject that.
        connect_args["check_same_thread"] = False
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
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
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    # env.py reads this attribute before falling back to Settings.
    config.attributes["database_uri"] = database_uri
    return config


def migrate_to_head(database_uri: str) -> None:
    command.upgrade(alembic_config(database_uri), "head")


def downgrade_to_base(database_uri: str) -> None:
    command.downgrade(alembic_config(database_uri), "base")
