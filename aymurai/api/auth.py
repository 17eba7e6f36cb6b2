"""API keys at the HTTP edge: who is calling (`Caller`), scope checks, and signed events tokens.

Keys are off unless TRANSCRIBE_API_KEYS_FILE is set (the app then holds a `KeyRing` in
`app.state.key_ring`; otherwise None and every caller is `OPEN_CALLER`, with every scope). A key
comes as `Authorization: Bearer <key>` (what OpenAI's SDKs send) or `X-API-Key: <key>`; a missing
or unknown key is 401 UNAUTHENTICATED with `WWW-Authenticate: Bearer`, a known key without the
scope a route needs is 403 FORBIDDEN.

A browser's EventSource cannot send headers, so a job's `events_url` carries a token for that job
alone: `<issued unix seconds>.<HMAC-SHA256(secret, "events", job id, issued)>`. It only opens the
events stream of that job (it is not a key: it cannot cancel or read anything else), while the job
runs and for TRANSCRIBE_EVENTS_TOKEN_TTL_SECONDS after it ends or after the token was issued,
whichever is later, so EventSource's automatic reconnects keep working through a long hearing. The
token carries no end time of its own because the job's end is not known when it is issued; the
route passes the job's end (None while it runs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, Request, WebSocket
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from aymurai.errors import ForbiddenError, UnauthenticatedError
from aymurai.keys import SCOPE_ADMIN, SCOPE_TRANSCRIBE, SCOPE_VALIDATE, SCOPES, KeyRing
from aymurai.metrics import GatewayMetrics

MAX_TOKEN_CHARS: Final = 96
FUTURE_SKEW_SECONDS: Final = 300  # replicas' clocks may differ a little


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a key's name and scopes, or anybody when keys are off (None)."""

    key_name: str | None
    scopes: frozenset[str]

    @property
    def owner(self) -> str:
        """What jobs record as their key ("" when keys are off)."""
        return self.key_name or ""

    @property
    def is_admin(self) -> bool:
        return SCOPE_ADMIN in self.scopes

    def may_see(self, owners: set[str]) -> bool:
        """Whether a job created or joined by `owners` is this caller's to read or cancel."""
        return self.key_name is None or self.is_admin or self.key_name in owners


OPEN_CALLER: Final = Caller(None, frozenset(SCOPES))

_bearer = HTTPBearer(auto_error=False, description="An API key as `Authorization: Bearer <key>`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key as `X-API-Key: <key>`"
)


def _metrics(request: Request) -> GatewayMetrics | None:
    service = getattr(request.app.state, "service", None)
    return service.metrics if service is not None else None


def presented_key(request: HTTPConnection) -> str | None:
    """The key a request carries (`X-API-Key` first, else `Authorization: Bearer`), if any."""
    header = request.headers.get("x-api-key", "").strip()
    if header:
        return header
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


# A browser's WebSocket cannot send headers either; it can offer subprotocols. WS /asr/live takes a
# key as the offered subprotocol `aymurai.key.<key>` (beside `aymurai.live`, which the server
# selects), so the key never goes into a URL (Kubernetes' API server does the same for tokens).
LIVE_SUBPROTOCOL: Final = "aymurai.live"
KEY_SUBPROTOCOL_PREFIX: Final = "aymurai.key."


def authenticate_websocket(websocket: WebSocket, *scopes: str) -> Caller:
    """The caller of a WebSocket: a key from `X-API-Key`, `Authorization: Bearer` or the offered
    subprotocol `aymurai.key.<key>`, holding one of `scopes`; anybody when keys are off.

    Raises:
        UnauthenticatedError: keys are on and no known key came.
        ForbiddenError: the key lacks every one of `scopes`.
    """
    ring: KeyRing | None = websocket.app.state.key_ring
    if ring is None:
        return OPEN_CALLER
    key_text = presented_key(websocket)
    if key_text is None:
        offered = websocket.scope.get("subprotocols") or []
        key_text = next(
            (
                p[len(KEY_SUBPROTOCOL_PREFIX) :]
                for p in offered
                if p.startswith(KEY_SUBPROTOCOL_PREFIX)
            ),
            None,
        )
    key = ring.match(key_text) if key_text else None
    service = getattr(websocket.app.state, "service", None)
    if key is None:
        if service is not None:
            service.metrics.count_unauthenticated()
        raise UnauthenticatedError(None if key_text is None else "The API key is not valid.")
    allowed = any(scope in key.scopes for scope in scopes)
    if service is not None:
        service.metrics.count_key_request(key.name, "allowed" if allowed else "FORBIDDEN")
    if not allowed:
        raise ForbiddenError(
            f"This API key lacks the scope this needs: {' or '.join(scopes)}.", scope=scopes[0]
        )
    return Caller(key.name, key.scopes)


def check_key_before_body(request: Request) -> None:
    """401 before a JSON body is read, unless keys are off or a known key came.

    FastAPI reads and parses a JSON body before it solves dependencies, so without this an
    anonymous client could still make us read TRANSCRIBE_MAX_JSON_BODY_BYTES; the scope is
    checked by the route's dependency as usual.

    Raises:
        UnauthenticatedError: keys are on and no known key came.
    """
    ring: KeyRing | None = request.app.state.key_ring
    if ring is None:
        return
    key = presented_key(request)
    if key is None or ring.match(key) is None:
        metrics = _metrics(request)
        if metrics is not None:
            metrics.count_unauthenticated()
        raise UnauthenticatedError(None if key is None else "The API key is not valid.")


async def get_optional_caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> Caller | None:
    """The caller; None when keys are on and no key was sent (a route may accept a token).

    Raises:
        UnauthenticatedError: a key was sent that we do not know.
    """
    ring: KeyRing | None = request.app.state.key_ring
    if ring is None:
        return OPEN_CALLER
    presented = header_key or (bearer.credentials if bearer is not None else None)
    if not presented:
        return None
    key = ring.match(presented)
    if key is None:
        metrics = _metrics(request)
        if metrics is not None:
            metrics.count_unauthenticated()
        raise UnauthenticatedError("The API key is not valid.")
    return Caller(key.name, key.scopes)


async def get_caller(
    request: Request, caller: Annotated[Caller | None, Depends(get_optional_caller)]
) -> Caller:
    """The caller; a key is required when keys are on."""
    if caller is None:
        metrics = _metrics(request)
        if metrics is not None:
            metrics.count_unauthenticated()
        raise UnauthenticatedError()
    return caller


def require_scope(*scopes: str) -> Any:
    """A dependency: the caller, who must hold one of `scopes` (403 FORBIDDEN otherwise)."""

    async def check(request: Request, caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        allowed = any(scope in caller.scopes for scope in scopes)
        metrics = _metrics(request)
        if metrics is not None and caller.key_name is not None:
            metrics.count_key_request(caller.key_name, "allowed" if allowed else "FORBIDDEN")
        if not allowed:
            raise ForbiddenError(
                f"This API key lacks the scope this needs: {' or '.join(scopes)}.", scope=scopes[0]
            )
        return caller

    return Depends(check)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class EventTokens:
    """Signs and checks the token of a job's `events_url` (see the module docstring)."""

    def __init__(self, secret: bytes | None, *, ttl_seconds: float) -> None:
        # A random secret per process unless configured: tokens then work on this replica only.
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_seconds = ttl_seconds

    def _mac(self, job_id: str, issued: int) -> str:
        message = f"events\x00{job_id}\x00{issued}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def sign(self, job_id: str, *, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        return f"{issued}.{self._mac(job_id, issued)}"

    def verify(
        self, job_id: str, token: str, *, ended_at: float | None, now: float | None = None
    ) -> bool:
        """Is `token` this job's, and still valid? `ended_at` (unix seconds) is None while the
        job runs."""
        if len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return False
        issued_text, _, mac = token.partition(".")
        if not issued_text.isdigit() or len(issued_text) > 12:
            return False
        issued = int(issued_text)
        if not hmac.compare_digest(mac, self._mac(job_id, issued)):
            return False
        now = time.time() if now is None else now
        if issued > now + FUTURE_SKEW_SECONDS:
            return False
        if ended_at is None:
            return True
        return now <= max(ended_at, issued) + self.ttl_seconds


CallerDep = Annotated[Caller, Depends(get_caller)]
OptionalCallerDep = Annotated[Caller | None, Depends(get_optional_caller)]
# What each route needs (README "API keys"). Admin reads and cancels any job; reading a document
# needs `transcribe` (its client made it) or `validate` (its reviewer reads it).
TranscribeDep = Annotated[Caller, require_scope(SCOPE_TRANSCRIBE)]
JobReaderDep = Annotated[Caller, require_scope(SCOPE_TRANSCRIBE, SCOPE_ADMIN)]
DocumentReaderDep = Annotated[Caller, require_scope(SCOPE_TRANSCRIBE, SCOPE_VALIDATE)]
ValidateDep = Annotated[Caller, require_scope(SCOPE_VALIDATE)]
AdminDep = Annotated[Caller, require_scope(SCOPE_ADMIN)]
