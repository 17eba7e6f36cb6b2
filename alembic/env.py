"""Alembic environment: URL from the caller or Settings, metadata from aymurai.db.models."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from aymurai.db.engine import hold_migration_lock, make_engine
from aymurai.db.models import metadata
from aymurai.settings import get_settings

config = context.config
# The app configures logging itself; only the alembic CLI should read the ini's loggers.
if config.config_file_name is not None and "database_uri" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

database_uri: str = config.attributes.get("database_uri") or get_settings().sqlalchemy_database_uri


def _configure(connection: Connection | None = None) -> None:
    context.configure(
        connection=connection,
        url=None if connection is not None else database_uri,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table.
        compare_type=True,
    )


if context.is_offline_mode():
    _configure()
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(database_uri)
    try:
        with engine.connect() as connection, hold_migration_lock(connection):
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
