"""`GET /metrics`: the process's Prometheus metrics, in the text exposition format.

With API keys on it needs the `admin` scope: Prometheus sends it with `authorization.credentials`
(or `bearer_token_file`) in its scrape config.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from aymurai.api.auth import AdminDep
from aymurai.api.deps import ServiceDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def metrics(service: ServiceDep, _: AdminDep) -> Response:
    """Prometheus metrics of this process (see docs/operations.md for the series)."""
    body, content_type = service.metrics.render()
    return Response(body, media_type=content_type)
