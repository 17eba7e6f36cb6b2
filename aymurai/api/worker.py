"""A gunicorn worker class that serves with the gateway's slow-client protections.

``gunicorn -k aymurai.api.worker.GatewayUvicornWorker aymurai.api.main:app``: uvicorn's worker with
the header deadline of `api/server.py` and the matching keep-alive timeout. Importing this module
needs gunicorn (not a dependency of the gateway itself).
"""

from __future__ import annotations

from typing import Any

from uvicorn.workers import UvicornWorker

from aymurai.api.server import server_options
from aymurai.settings import get_settings


class GatewayUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {
        **UvicornWorker.CONFIG_KWARGS,
        **server_options(get_settings()),
    }
