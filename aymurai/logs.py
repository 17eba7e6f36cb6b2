"""Logging setup and the request id every log line carries.

The request id lives in a context variable set by the HTTP middleware; tasks started while handling
a request (its transcription job) inherit it, so every line of that request reads `[id] message`.
`LOG_FORMAT=json` switches to one JSON object per line for log shippers.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-5s %(name)s [%(request_id)s] %(message)s"


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_aymurai", False):
            root.removeHandler(existing)
    handler._aymurai = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # python-multipart logs every malformed client body at WARNING; we answer those with 400
    # MALFORMED_REQUEST and log them once at INFO (api/errors.py), so its lines are noise.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
