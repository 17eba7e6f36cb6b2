"""The transcription web page: static files only, served by `aymurai.api.routes.web`.

`static/` holds plain HTML, CSS and ES modules with no build step; they talk to the gateway only
through its public HTTP API (`POST /asr/transcribe/stream`), exactly like `aymurai-asr`.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
