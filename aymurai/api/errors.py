"""Exception handlers: every 4xx/5xx body is `{"detail", "code", "request_id"}`.

Only errors raised before a stream starts come through here; once the first SSE byte is sent the
status is fixed and failures travel as `event: error` frames instead.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aymurai import errors
from aymurai.logs import request_id_var

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.GatewayError], int] = {
    errors.EmptyUploadError: 400,
    errors.InvalidRequestError: 400,
    errors.NotFoundError: 404,
    errors.UploadTooLargeError: 413,
    errors.InvalidAudioError: 415,
    errors.MissingFileError: 422,
    errors.QueueFullError: 503,
    errors.ShuttingDownError: 503,
    errors.StorageError: 503,
    errors.UpstreamTimeoutError: 504,
    errors.UpstreamError: 502,
}

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
) -> JSONResponse:
    body: dict[str, object] = {"detail": detail, "code": code, "request_id": request_id_var.get()}
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers)


async def handle_gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.GatewayError)
    status = status_for(exc)
    headers = None
    if isinstance(exc, errors.QueueFullError):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    log = logger.error if status >= 500 else logger.info
    log("answered %d %s: %s", status, exc.code, exc.detail)
    return error_response(status, exc.code, exc.detail, headers=headers)


async def handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    field_errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in field_errors)
    return error_response(
        422, "VALIDATION_ERROR", summary or "Invalid request.", extra={"errors": field_errors}
    )


async def handle_http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = CODE_BY_STATUS.get(exc.status_code, "HTTP_ERROR")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def handle_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "The gateway failed unexpectedly.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.GatewayError, handle_gateway_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
