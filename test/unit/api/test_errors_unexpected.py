"""An unexpected exception still answers with the request's id, in the header and the body."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from aymurai.api.errors import install_error_handlers
from aymurai.api.middleware import RequestIdMiddleware


def _failing_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    return app


async def test_handle_unexpected_carries_the_request_id() -> None:
    """A 500 INTERNAL_ERROR has X-Request-ID and the same real id in its body (never "-")."""
    transport = httpx.ASGITransport(app=_failing_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        given = await client.get("/boom", headers={"X-Request-ID": "trace-42"})
        generated = await client.get("/boom")
    assert given.status_code == 500
    assert given.json()["code"] == "INTERNAL_ERROR"
    assert given.headers["x-request-id"] == given.json()["request_id"] == "trace-42"
    assert generated.headers["x-request-id"] == generated.json()["request_id"] != "-"
    assert "a bug" not in generated.text
