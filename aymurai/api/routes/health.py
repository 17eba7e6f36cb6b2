"""Liveness and readiness probes.

`/healthz` answers 200 as long as the process serves HTTP: it checks nothing else, so a slow
database or WLK never gets a healthy process restarted. `/readyz` says whether this instance
should receive transcriptions: the database answers, accepts writes and is migrated, the spool
folder exists with room to spare, at least one WhisperLiveKit server is up (a cached probe, see
`transcription/readiness.py`), and the process is not draining. It lists each server's state
under `upstreams`.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from aymurai.api.deps import ServiceDep
from aymurai.errors import ShuttingDownError
from aymurai.transcription.readiness import check_upstream
from aymurai.transcription.service import TranscriptionService

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

OK = "ok"


async def _schema_is_current(service: TranscriptionService) -> bool:
    try:
        return await service.store.is_schema_current()
    except Exception:  # the database check above already says why
        return True


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: 200 while the process serves requests."""
    return {"status": OK}


@router.get(
    "/readyz",
    responses={503: {"description": "A dependency failed; `checks` says which"}},
)
async def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    """Readiness: 200 when the database, spool folder, WhisperLiveKit (and Redis, in distributed
    mode) are usable, else 503."""
    checks: dict[str, str] = {}
    try:
        await service.store.ping()
        await service.store.ping_write()
        checks["database"] = OK
    except Exception as exc:  # any failure means "not ready", never a 500
        logger.warning("readiness: database check failed: %s", exc)
        checks["database"] = f"{getattr(exc, 'code', 'STORAGE_ERROR')}: {exc}"
    checks["spool"] = request.app.state.spool.problem() or OK
    if not await _schema_is_current(service):
        checks["schema"] = (
            "MIGRATION_REQUIRED: the database is not at the newest migration; "
            "run `aymurai-api migrate`."
        )
    distributed = request.app.state.distributed
    if distributed is not None:
        checks["redis"] = await distributed.problem() or OK
    upstream = await check_upstream(service.pool)
    checks["upstream"] = upstream.problem or OK
    if not service.accepting:
        checks["admission"] = f"{ShuttingDownError.code}: {ShuttingDownError.default_detail}"
    ready = all(value == OK for value in checks.values())
    return JSONResponse(
        {
            "status": "ready" if ready else "unavailable",
            "checks": checks,
            "upstreams": upstream.servers,
        },
        status_code=200 if ready else 503,
    )
