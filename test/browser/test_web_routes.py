"""The page's HTTP routes over a real socket; no browser needed."""

from __future__ import annotations

import pytest

from aymurai.api.routes.web import ASSETS
from aymurai.web import STATIC_DIR
from test.e2e import RunningGateway

pytestmark = pytest.mark.integration


async def test_web_index_served_with_security_headers(gateway: RunningGateway) -> None:
    """`GET /` is the page, with a same-origin CSP and no-cache."""
    async with gateway.client() as client:
        response = await client.get("/")
        head = await client.head("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-cache"
    assert head.status_code == 200


async def test_web_assets_served_from_fixed_list(gateway: RunningGateway) -> None:
    """Every listed asset exists and is served with its type; anything else is 404."""
    on_disk = {path.name for path in STATIC_DIR.iterdir()} - {"index.html"}
    assert set(ASSETS) == on_disk
    async with gateway.client() as client:
        for name, media_type in ASSETS.items():
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].startswith(media_type)
            assert response.content == (STATIC_DIR / name).read_bytes()
        for name in ("index.html", "missing.js", "..%2Fsettings.py", "%2e%2e%2f__init__.py"):
            assert (await client.get(f"/static/{name}")).status_code == 404, name
