"""`aymurai-api` / `python -m aymurai`: serve the gateway, or migrate its database.

    aymurai-api            serve with uvicorn on API_HOST:API_PORT (settings from the environment)
    aymurai-api migrate    upgrade the database to the newest migration, then exit (a deploy step)

Serving: SIGTERM/SIGINT start the drain at once (no new transcriptions; running ones get
TRANSCRIBE_SHUTDOWN_GRACE_SECONDS, then end with SHUTTING_DOWN). The app does that itself (see
`api/signals.py`), so `uvicorn aymurai.api.main:app` and gunicorn drain the same way; here we only
set uvicorn's graceful-shutdown timeout just past the grace, so nothing keeps the process alive.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from aymurai import __version__
from aymurai.api.main import create_app
from aymurai.api.server import make_config
from aymurai.db.engine import migrate_to_head
from aymurai.logs import configure_logging
from aymurai.settings import Settings, get_settings

logger = logging.getLogger("aymurai")


def serve(settings: Settings) -> None:
    app = create_app(settings)
    grace = settings.transcribe_shutdown_grace_seconds
    config = make_config(
        app,
        settings,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # our handler (with request ids) is already on the root logger
        timeout_graceful_shutdown=int(grace) + 3,
        proxy_headers=True,
    )
    uvicorn.Server(config).run()


def migrate(settings: Settings) -> int:
    try:
        migrate_to_head(settings.sqlalchemy_database_uri)
    except Exception as exc:  # one line for the deploy log, not a traceback
        logger.error("migration failed: %s: %s", type(exc).__name__, exc)
        return 1
    logger.info("database migrated to the newest revision")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aymurai-api",
        description="The aymurai ASR gateway. Settings come from the environment and .env.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="serve the gateway (the default)")
    commands.add_parser("migrate", help="upgrade the database to the newest migration and exit")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "migrate":
        sys.exit(migrate(settings))
    serve(settings)


if __name__ == "__main__":
    main()
