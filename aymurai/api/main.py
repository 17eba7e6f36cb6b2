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
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from aymurai import __version__
from aymurai.api.auth import AdminDep, EventTokens
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
from aymurai.distributed.setup import start_distributed
from aymurai.keys import KeyRing, read_keys
from aymurai.logs import configure_logging
from aymurai.metrics import GatewayMetrics
from aymurai.settings import Settings, get_settings
from aymurai.transcription.service import TranscriptionService
from aymurai.transcription.spool import Spool

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def load_key_ring(settings: Settings) -> KeyRing | None:
    """The keys of TRANSCRIBE_API_KEYS_FILE, read once (a change needs a restart); None = off.

    Raises:
        KeysFileError: the file is set but unreadable or not our format (the gateway must not
            start open by mistake).
    """
    if settings.transcribe_api_keys_file is None:
        if settings.api_host not in LOOPBACK_HOSTS:
            logger.warning(
                "API keys are off and API_HOST is %s: anyone who can reach this port may "
                "transcribe, overwrite validations and read /metrics; set "
                "TRANSCRIBE_API_KEYS_FILE (see README, API keys)",
                settings.api_host,
            )
        return None
    path = Path(settings.transcribe_api_keys_file)
    ring = KeyRing(read_keys(path))
    if not ring:
        logger.warning("API keys are on but %s holds no key: every request is refused", path)
    else:
        logger.info("API keys on: %d keys from %s", len(ring), path)
    return ring


def _drop_security_from_openapi(app: FastAPI) -> None:
    """Keys off: the schema must not claim routes need a key (clients and fuzzers believe it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.get("components", {}).pop("securitySchemes", None)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.pop("security", None)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _add_admin_docs(app: FastAPI) -> None:
    """/openapi.json and /docs behind the `admin` scope (FastAPI's own ones are open)."""

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(_: AdminDep) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(_: AdminDep) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway_metrics = GatewayMetrics()  # one registry per app
    key_ring = load_key_ring(settings)
    secret = settings.transcribe_events_token_secret

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
            # Redis closes after the task group: its tasks (leases, mirrors) use it to the end.
            async with AsyncExitStack() as shared, anyio.create_task_group() as jobs_group:
                distributed = None
                if settings.distributed:
                    distributed = await start_distributed(settings, store, jobs_group)
                    shared.push_async_callback(distributed.aclose)
                service = TranscriptionService(
                    settings,
                    store,
                    jobs_group,
                    gateway_metrics,
                    **(distributed.service_parts() if distributed is not None else {}),
                )
                if distributed is not None:
                    distributed.run(jobs_group, service)
                app.state.service = service
                app.state.distributed = distributed
                # Uploads orphaned by a killed gateway (ours or another's sharing the folder),
                # except those of unfinished jobs: `recover()` runs them again.
                keep = frozenset(await service.spool_paths_in_use())
                await anyio.to_thread.run_sync(partial(spool.remove_orphans, keep=keep))
                await service.recovery.recover()  # logs and carries on when the database cannot
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
        # With keys on, the schema and docs need `admin` (issue 8): served by our own routes.
        docs_url="/docs" if key_ring is None else None,
        redoc_url="/redoc" if key_ring is None else None,
        openapi_url="/openapi.json" if key_ring is None else None,
    )
    app.state.settings = settings
    app.state.key_ring = key_ring
    app.state.distributed = None  # set by the lifespan in distributed mode
    app.state.event_tokens = (
        EventTokens(
            secret.get_secret_value().encode() if secret is not None else None,
            ttl_seconds=settings.transcribe_events_token_ttl_seconds,
        )
        if key_ring is not None
        else None
    )
    if key_ring is not None:
        _add_admin_docs(app)
    else:
        _drop_security_from_openapi(app)
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
