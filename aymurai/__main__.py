"""`aymurai-api` / `python -m aymurai`: serve the gateway, or migrate its database.

    aymurai-api            serve with uvicorn on API_HOST:API_PORT (settings from the environment)
    aymurai-api migrate    upgrade the database to the newest migration, then exit (a deploy step)
    aymurai-api keys add NAME --scopes transcribe,validate   print a new API key once
    aymurai-api keys list | keys remove NAME                  names and scopes, never keys

`keys` edits TRANSCRIBE_API_KEYS_FILE (or `--file`), creating it if needed; a running gateway
reads it at startup only, so restart it (every replica) after a change.

Serving: SIGTERM/SIGINT start the drain at once (no new transcriptions; running ones get
TRANSCRIBE_SHUTDOWN_GRACE_SECONDS, then end with SHUTTING_DOWN). The app does that itself (see
`api/signals.py`), so `uvicorn aymurai.api.main:app` and gunicorn drain the same way; here we only
set uvicorn's graceful-shutdown timeout just past the grace, so nothing keeps the process alive.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from aymurai import __version__
from aymurai.api.main import create_app
from aymurai.api.server import make_config
from aymurai.db.engine import migrate_to_head
from aymurai.distributed.connection import check_reachable
from aymurai.keys import SCOPES, KeysFileError, add_key, parse_scopes, read_keys, remove_key
from aymurai.logs import configure_logging
from aymurai.settings import Settings, get_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

logger = logging.getLogger("aymurai")


def serve(settings: Settings) -> int:
    if settings.transcribe_redis_url is not None:
        # Distributed mode needs Redis from the start: one line naming it, and a non-zero exit.
        problem = check_reachable(settings.transcribe_redis_url.get_secret_value())
        if problem is not None:
            logger.error("%s (TRANSCRIBE_REDIS_URL); not starting", problem)
            return EXIT_FAILED
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
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns (it does not exit) when the app fails to start: say so in the exit code.
    return EXIT_OK if server.started else EXIT_FAILED


def migrate(settings: Settings) -> int:
    try:
        migrate_to_head(settings.sqlalchemy_database_uri)
    except Exception as exc:  # one line for the deploy log, not a traceback
        logger.error("migration failed: %s: %s", type(exc).__name__, exc)
        return 1
    logger.info("database migrated to the newest revision")
    return 0


def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    """`keys add|list|remove`: the new key goes to stdout (once), everything else to stderr."""
    file = args.file or settings.transcribe_api_keys_file
    if not file:
        sys.stderr.write("aymurai-api keys: set TRANSCRIBE_API_KEYS_FILE or pass --file\n")
        return EXIT_USAGE
    path = Path(file)
    try:
        if args.keys_command == "add":
            try:
                scopes = parse_scopes(args.scopes)
                key = add_key(path, args.name, scopes)
            except ValueError as exc:
                sys.stderr.write(f"aymurai-api keys add: {exc}\n")
                return EXIT_USAGE
            sys.stderr.write(
                f"added key {args.name!r} ({', '.join(sorted(scopes))}) to {path}; it is shown "
                "once, only its hash is kept. Restart the gateway to use it.\n"
            )
            sys.stdout.write(key + "\n")
        elif args.keys_command == "list":
            for item in read_keys(path):
                line = f"{item.name}\t{','.join(sorted(item.scopes))}\t{item.created_at}\n"
                sys.stdout.write(line)
        elif args.keys_command == "remove":
            if not remove_key(path, args.name):
                sys.stderr.write(f"aymurai-api keys remove: no key named {args.name!r}\n")
                return EXIT_FAILED
            sys.stderr.write(f"removed key {args.name!r}; restart the gateway to refuse it\n")
    except (KeysFileError, OSError) as exc:
        sys.stderr.write(f"aymurai-api keys: {exc}\n")
        return EXIT_FAILED
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aymurai-api",
        description="The aymurai ASR gateway. Settings come from the environment and .env.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="serve the gateway (the default)")
    commands.add_parser("migrate", help="upgrade the database to the newest migration and exit")
    keys = commands.add_parser(
        "keys",
        help="manage API keys (TRANSCRIBE_API_KEYS_FILE)",
        description="Edit the API keys file. The gateway reads it at startup: restart after.",
    )
    keys.add_argument(
        "--file", default=None, help="the keys file (default: $TRANSCRIBE_API_KEYS_FILE)"
    )
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    add = keys_commands.add_parser("add", help="create a key and print it once")
    add.add_argument("name", metavar="NAME", help="who holds the key (shown in metrics and logs)")
    add.add_argument(
        "--scopes",
        required=True,
        help=f"comma-separated, of: {', '.join(SCOPES)}",
    )
    keys_commands.add_parser("list", help="names, scopes and creation times (never keys)")
    remove = keys_commands.add_parser("remove", help="delete a key by name")
    remove.add_argument("name", metavar="NAME")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "migrate":
        sys.exit(migrate(settings))
    if args.command == "keys":
        sys.exit(run_keys(args, settings))
    sys.exit(serve(settings))


if __name__ == "__main__":
    main()
