"""The transcription web page: `GET /` and its assets under `GET /static/{name}`.

We serve a fixed list of files from routes on this `router`, not a `StaticFiles` mount, because
`include_router()` does not carry mounts over: `app.include_router(web.router)` is all an app
needs. The list also means no path from the URL ever reaches the filesystem. The files are
tiny and change with each release, so they are sent with `Cache-Control: no-cache` (the browser
revalidates; Starlette's FileResponse sets ETag and Last-Modified).

The page is plain HTML and ES modules (`aymurai/web/static/`), no build step, and talks to the
gateway only through the public API (`POST /asr/transcribe/stream`). The Content-Security-Policy
allows scripts, styles and connections to this origin only, plus `blob:` for the local audio
player and downloads.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from aymurai.web import STATIC_DIR

ASSETS: Final[dict[str, str]] = {
    "apikey.js": "text/javascript",
    "app.js": "text/javascript",
    "events.js": "text/javascript",
    "formats.js": "text/javascript",
    "history.js": "text/javascript",
    "live.js": "text/javascript",
    "sse.js": "text/javascript",
    "transcript.js": "text/javascript",
    "style.css": "text/css",
}

_HEADERS: Final[dict[str, str]] = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}
_PAGE_HEADERS: Final[dict[str, str]] = {
    **_HEADERS,
    "Content-Security-Policy": (
        "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["web"], include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
def get_index() -> FileResponse:
    """The transcription page."""
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS
    )


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
def get_asset(name: str) -> FileResponse:
    """A script or stylesheet of the page."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail="Not found")
    return FileResponse(
        STATIC_DIR / name, media_type=f"{media_type}; charset=utf-8", headers=_HEADERS
    )
