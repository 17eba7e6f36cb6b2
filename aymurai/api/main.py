"""The ASGI application: `create_app(settings)` and the lazily built `app` for uvicorn.

The lifespan owns everything with a lifetime: it migrates the database to head (unless
TRANSCRIBE_MIGRATE_ON_START is off), creates the engine and the store, takes the spool folder
(removing uploads orphaned by a killed gateway), opens the task group transcription jobs run in,
starts the drain at SIGTERM (see `api/signals.py`), and on shutdown drains the jobs and disposes
of the engine.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from aymurai import __version__
from aymurai.api.errors import DEFAULT_ERROR_RESPONSES, install_error_handlers
from aymurai.api.middleware import RequestIdMiddleware
from aymurai.api.routes import (
    health,
    live,
    metrics,
    openai,
    transcription,
    transcriptions,
    validation,
    web,
)
from aymurai.api.signals import drain_on_signals
from aymurai.db.engine import make_engine, migrate_to_head
from aymurai.db.store import TranscriptStore
from aymurai.logs import configure_logging
from aymurai.metrics import GatewayMetrics
from aymurai.settings import Settings, get_settings
from aymurai.transcription.service import TranscriptionService
from aymurai.transcription.spool import Spool

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway_metrics = GatewayMetrics()  # one registry per app

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate = settings.transcribe_migrate_on_start
        if migrate:
            await anyio.to_thread.run_sync(migrate_to_head, settings.sqlalchemy_database_uri)
        engine = make_engine(settings.sqlalchemy_database_uri)
        store = TranscriptStore(engine, max_threads=settings.db_max_threads, schema_current=migrate)
        grace = settings.transcribe_shutdown_grace_seconds
        spool = Spool(
            settings.transcribe_spool_dir,
            min_free_bytes=settings.transcribe_spool_min_free_bytes,
            max_uploads=settings.transcribe_max_concurrent_uploads,
        )
        await anyio.to_thread.run_sync(spool.open)
        app.state.spool = spool
        try:
            async with anyio.create_task_group() as jobs_group:
                service = TranscriptionService(settings, store, jobs_group, gateway_metrics)
                app.state.service = service
                # Uploads orphaned by a killed gateway (ours or another's sharing the folder),
                # except those of unfinished jobs: `recover()` runs them again.
                keep = frozenset(await service.spool_paths_in_use())
                await anyio.to_thread.run_sync(partial(spool.remove_orphans, keep=keep))
                await service.recover()  # logs and carries on when the database cannot
                logger.info(
                    "gateway ready; WLK at %s",
                    ", ".join(f"{b.name} (max {b.max_sessions})" for b in settings.ws_backends),
                )
                try:
                    with drain_on_signals(lambda: service.begin_shutdown(grace)):
                        yield
                finally:
                    await service.shutdown(grace)
                    jobs_group.cancel_scope.cancel()
        finally:
            spool.close()
            engine.dispose()

    app = FastAPI(
        title="aymurai ASR gateway",
        version=__version__,
        description="Streams transcriptions from a WhisperLiveKit server as Server-Sent Events.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in (
        transcription.router,
        transcriptions.router,
        live.router,
        validation.router,
        health.router,
        metrics.router,
        web.router,
    ):
        app.include_router(router, responses=DEFAULT_ERROR_RESPONSES)
    app.include_router(openai.router)  # documents OpenAI's error object itself
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Document-Id", "X-Request-ID", "X-Transcription-Id", "Location"],
    )
    # Outermost, so even CORS preflights and errors carry the request id.
    app.add_middleware(RequestIdMiddleware)
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn aymurai.api.main:app` (and gunicorn's UvicornWorker) work without building an app
    # (and reading settings) at import time; they get our log lines, request ids included.
    if name == "app":
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        return create_app(settings)
    raise AttributeError(name)
