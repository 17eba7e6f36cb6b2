"""`aymurai-api` / `python -m aymurai`: serve the gateway with uvicorn, settings from the env.

On SIGTERM/SIGINT the transcription service starts draining at once (no new transcriptions; running
ones get TRANSCRIBE_SHUTDOWN_GRACE_SECONDS, then end with SHUTTING_DOWN), and uvicorn's own
graceful-shutdown timeout is set just past that grace so no stream keeps the process alive.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from types import FrameType

import uvicorn
from fastapi import FastAPI

from aymurai.api.main import create_app
from aymurai.api.server import make_config
from aymurai.logs import configure_logging
from aymurai.settings import get_settings

logger = logging.getLogger("aymurai")


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, grace_seconds: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace = grace_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        service = getattr(self._app.state, "service", None)
        if service is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass  # no loop running, so no transcription either
            else:
                # This is a signal handler: it interrupts arbitrary code, maybe a request with its
                # request id in context. Hand the drain to the loop (which also wakes it at once)
                # in a clean context, rather than spawn a task from here.
                loop.call_soon_threadsafe(
                    service.begin_shutdown, self._grace, context=contextvars.Context()
                )
        super().handle_exit(sig, frame)


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
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
    GatewayServer(config, app, grace).run()


if __name__ == "__main__":
    main()
