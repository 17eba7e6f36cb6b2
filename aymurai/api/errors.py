"""Exception handlers: every 4xx/5xx body is `{"detail", "code", "request_id"}`.

Only errors raised before a stream starts come through here; once the first SSE byte is sent the
status is fixed and failures travel as `event: error` frames instead.

Client mistakes are logged at INFO in one line, with no traceback (issue 8: 2,000 aborted uploads
made 276,000 log lines), and so are refusals under load (QUEUE_FULL, TOO_MANY_UPLOADS): they are
counted in the metrics, and an ERROR line per refused request would flood the log exactly when the
gateway is busiest. Every answer carries the request id, 500s included: Starlette runs the
catch-all handler outside our middleware, so it reads the id from the ASGI scope.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from aymurai import errors
from aymurai.logs import request_id_var

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.GatewayError], int] = {
    errors.EmptyUploadError: 400,
    errors.InvalidRequestError: 400,
    errors.MalformedRequestError: 400,
    errors.UnauthenticatedError: 401,
    errors.ForbiddenError: 403,
    errors.KeyLimitError: 429,
    errors.NotFoundError: 404,
    errors.UploadTimeoutError: 408,
    errors.AlreadyFinishedError: 409,
    errors.JobCancelledError: 409,
    errors.JobInterruptedError: 503,
    errors.UploadTooLargeError: 413,
    errors.BodyTooLargeError: 413,
    errors.AudioTooLongError: 413,
    errors.InvalidAudioError: 415,
    errors.MissingFileError: 422,
    # nginx's "client closed request": nobody reads it, but the access log and metrics do.
    errors.ClientDisconnectedError: 499,
    errors.DocumentUnreadableError: 500,
    errors.QueueFullError: 503,
    errors.TooManyUploadsError: 503,
    errors.SpoolUnavailableError: 503,
    errors.ShuttingDownError: 503,
    errors.SharedStateUnavailableError: 503,
    errors.StorageError: 503,
    errors.UpstreamTimeoutError: 504,
    errors.UpstreamError: 502,
    errors.LiveParameterError: 422,
    errors.LiveBufferFullError: 503,
    errors.LiveTooFastError: 429,
}

# WS /asr/live ends with a close code, not a status (a browser cannot read a refused handshake's
# status, so the socket is accepted, then closed with one of these and the detail as reason).
CLOSE_CODE_BY_ERROR: dict[type[errors.GatewayError], int] = {
    errors.QueueFullError: 1013,  # try again later
    errors.ShuttingDownError: 1013,
    errors.SharedStateUnavailableError: 1013,
    errors.LiveBufferFullError: 1013,
    errors.LiveTooFastError: 1008,  # policy violation
    errors.LiveParameterError: 1008,
    errors.InvalidAudioError: 1007,  # inconsistent data
    errors.UnauthenticatedError: 1008,  # no or unknown API key (keys on)
    errors.ForbiddenError: 1008,
    errors.KeyLimitError: 1013,
}


def close_code_for(exc: errors.GatewayError) -> int:
    for cls in type(exc).__mro__:
        if cls in CLOSE_CODE_BY_ERROR:
            return CLOSE_CODE_BY_ERROR[cls]
    return 1011  # the server failed


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer: a stable `code`, a human `detail`, the request id (and, for 422s, the
    fields at fault)."""

    detail: str
    code: str
    request_id: str
    errors: list[FieldError] | None = None


# Documented on every route (`include_router(responses=…)`): any status not listed by a route is an
# ErrorBody. It also replaces FastAPI's own 422 schema (`detail` as an array), which we never send.
DEFAULT_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    "default": {"model": ErrorBody, "description": "An error; `code` says which (see README)"}
}

# Refusals that are part of normal operation under load: INFO, like client mistakes.
QUIET_ERRORS = (
    errors.QueueFullError,
    errors.TooManyUploadsError,
    errors.ShuttingDownError,
    errors.KeyLimitError,
)
REQUEST_ID_SCOPE_KEY = "aymurai.request_id"

CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "UPLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
}


def status_for(exc: errors.GatewayError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def status_for_code(code: str) -> int:
    """HTTP status for a wire code carried by a failed job (blocking endpoint)."""
    for cls, status in STATUS_BY_ERROR.items():
        if cls.code == code and cls is not errors.UpstreamError:
            return status
    return 502 if code.startswith("UPSTREAM_") else 500


def error_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    request_id = request_id or request_id_var.get()
    body: dict[str, object] = {"detail": detail, "code": code, "request_id": request_id}
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers)


def printable(value: object) -> str:
    """`value` as text that always encodes as UTF-8 (client input may hold lone surrogates)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


async def handle_gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.GatewayError)
    status = status_for(exc)
    headers = None
    if isinstance(
        exc,
        errors.QueueFullError
        | errors.TooManyUploadsError
        | errors.KeyLimitError
        | errors.SharedStateUnavailableError,
    ):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    elif isinstance(exc, errors.UnauthenticatedError):
        headers = {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, errors.ClientDisconnectedError):
        logger.info("client disconnected: %s", exc.detail)
    elif status >= 500 and not isinstance(exc, QUIET_ERRORS):
        logger.error("answered %d %s: %s", status, exc.code, exc.detail)
    else:
        logger.info("answered %d %s: %s", status, exc.code, exc.detail)
    return error_response(status, exc.code, exc.detail, headers=headers)


async def handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    field_errors = [
        {
            "loc": [item if isinstance(item, int) else printable(item) for item in error["loc"]],
            "msg": printable(error.get("msg", "")),
            "type": printable(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in field_errors)
    logger.info("answered 422 VALIDATION_ERROR: %s", summary[:500])
    return error_response(
        422, "VALIDATION_ERROR", summary or "Invalid request.", extra={"errors": field_errors}
    )


def _allowed_methods(request: Request) -> str:
    """Every method the OpenAPI lists for this path. Starlette's 405 names only the first
    route's methods, and GET and POST on one path are two routes here."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = CODE_BY_STATUS.get(exc.status_code, "HTTP_ERROR")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return error_response(exc.status_code, code, printable(exc.detail), headers=headers or None)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Runs in Starlette's ServerErrorMiddleware, outside RequestIdMiddleware: the context
    # variable is already reset, the scope still holds the id. Starlette logs the traceback
    # once when it re-raises, so we log one line here.
    request_id = request.scope.get(REQUEST_ID_SCOPE_KEY, request_id_var.get())
    logger.error("[%s] unhandled %s: %s", request_id, type(exc).__name__, printable(exc))
    return error_response(
        500,
        "INTERNAL_ERROR",
        "The gateway failed unexpectedly.",
        headers={"X-Request-ID": request_id},
        request_id=request_id,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.GatewayError, handle_gateway_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
