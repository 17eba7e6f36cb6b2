"""The gateway's exception tree; every failure we report is one of these.

    GatewayError                      code              meaning
    ├── EmptyUploadError              EMPTY_UPLOAD      the uploaded file has no bytes
    ├── MalformedRequestError         MALFORMED_REQUEST bad multipart (no colon, bad boundary, …)
    ├── UploadTooLargeError           UPLOAD_TOO_LARGE  over TRANSCRIBE_MAX_UPLOAD_BYTES
    ├── BodyTooLargeError             BODY_TOO_LARGE    JSON over TRANSCRIBE_MAX_JSON_BODY_BYTES
    ├── AudioTooLongError             AUDIO_TOO_LONG    over TRANSCRIBE_MAX_AUDIO_SECONDS
    ├── UploadTimeoutError            UPLOAD_TIMEOUT    the body came too slowly
    ├── ClientDisconnectedError       CLIENT_DISCONNECTED the client left mid-request
    ├── InvalidAudioError             INVALID_AUDIO     not an allowed container, not decodable
    ├── MissingFileError              VALIDATION_ERROR  the multipart body has no `file` field
    ├── InvalidRequestError           INVALID_REQUEST   a form field we cannot honour (`param`)
    ├── NotFoundError                 NOT_FOUND         unknown document or transcription id
    ├── AlreadyFinishedError          ALREADY_FINISHED  cancelling a transcription that has ended
    ├── JobCancelledError             CANCELLED         the transcription was cancelled (DELETE)
    ├── JobInterruptedError           INTERRUPTED       a restart found the job's audio gone
    ├── UnauthenticatedError          UNAUTHENTICATED   no API key, or not one we know
    ├── ForbiddenError                FORBIDDEN         the API key lacks the scope
    ├── KeyLimitError                 KEY_LIMIT         the key holds its queued + running limit
    ├── QueueFullError                QUEUE_FULL        admission queue is full
    ├── ShuttingDownError             SHUTTING_DOWN     the process is draining
    ├── TooManyUploadsError           TOO_MANY_UPLOADS  too many uploads in progress
    ├── SpoolUnavailableError         SPOOL_UNAVAILABLE spool folder missing, full or unwritable
    ├── SharedStateUnavailableError   REDIS_UNAVAILABLE Redis (distributed mode) cannot be reached
    ├── LiveParameterError            VALIDATION_ERROR  a bad query parameter of WS /asr/live
    ├── LiveBufferFullError           LIVE_BUFFER_FULL  live audio waited past the buffer limit
    ├── LiveTooFastError              AUDIO_TOO_FAST    live audio faster than 2x real time
    ├── UpstreamError                 (abstract)        anything WhisperLiveKit did or did not do
    │   ├── UpstreamUnavailableError  UPSTREAM_UNAVAILABLE   connect or handshake failed
    │   ├── UpstreamServiceError      UPSTREAM_SERVICE_ERROR error status, lost connection
    │   ├── UpstreamProtocolError     UPSTREAM_PROTOCOL_ERROR server not in --pcm-input mode, …
    │   └── UpstreamTimeoutError      UPSTREAM_TIMEOUT  idle too long, or no ready_to_stop in time
    ├── StorageError                  STORAGE_ERROR     the database failed; nothing was stored
    ├── DocumentUnreadableError       DOCUMENT_UNREADABLE a stored document cannot be served
    └── InternalError                 INTERNAL_ERROR    a bug; the detail never carries a traceback

Third-party exceptions are translated where they enter our code (one place per adapter) and chained
with ``from exc``. The ``code`` is the stable wire code; the HTTP status lives in ``api/errors.py``.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    code: str = "INTERNAL_ERROR"
    default_detail: str = "The transcription failed because of an internal error."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class EmptyUploadError(GatewayError):
    code = "EMPTY_UPLOAD"
    default_detail = "The uploaded file is empty."


class UploadTooLargeError(GatewayError):
    code = "UPLOAD_TOO_LARGE"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        super().__init__(f"The upload is larger than the limit of {max_bytes} bytes.")


class MalformedRequestError(GatewayError):
    code = "MALFORMED_REQUEST"
    default_detail = "The request body is not valid multipart/form-data."


class BodyTooLargeError(GatewayError):
    code = "BODY_TOO_LARGE"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        super().__init__(f"The request body is larger than the limit of {max_bytes} bytes.")


class AudioTooLongError(GatewayError):
    code = "AUDIO_TOO_LONG"

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        super().__init__(f"The audio is longer than the limit of {max_seconds:g} seconds.")


class UploadTimeoutError(GatewayError):
    code = "UPLOAD_TIMEOUT"
    default_detail = "The upload took too long; send it faster or in a smaller file."


class ClientDisconnectedError(GatewayError):
    """The client went away mid-request; nobody reads the answer, it is only logged (INFO)."""

    code = "CLIENT_DISCONNECTED"
    default_detail = "The client disconnected before its request was read."


class InvalidAudioError(GatewayError):
    code = "INVALID_AUDIO"
    default_detail = "The uploaded file is not an audio file."


class MissingFileError(GatewayError):
    code = "VALIDATION_ERROR"
    default_detail = "The multipart form field 'file' is required."


class InvalidRequestError(GatewayError):
    """A request parameter is malformed, or asks for something the gateway cannot honour."""

    code = "INVALID_REQUEST"

    def __init__(self, detail: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(detail)


class NotFoundError(GatewayError):
    code = "NOT_FOUND"
    default_detail = "No document with that id."


class AlreadyFinishedError(GatewayError):
    code = "ALREADY_FINISHED"
    default_detail = "The transcription has already finished."


class JobCancelledError(GatewayError):
    code = "CANCELLED"
    default_detail = "The transcription was cancelled."


class JobInterruptedError(GatewayError):
    code = "INTERRUPTED"
    default_detail = "The gateway restarted and the uploaded audio of this transcription is gone."


class UnauthenticatedError(GatewayError):
    code = "UNAUTHENTICATED"
    default_detail = (
        "An API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`."
    )


class ForbiddenError(GatewayError):
    code = "FORBIDDEN"

    def __init__(self, detail: str | None = None, *, scope: str | None = None) -> None:
        self.scope = scope
        super().__init__(
            detail or (f"This API key lacks the `{scope}` scope." if scope else "Not allowed.")
        )


class KeyLimitError(GatewayError):
    """One key holds its share of the queue already (issue 8: one client must not fill it)."""

    code = "KEY_LIMIT"

    def __init__(self, max_jobs: int, retry_after_seconds: int) -> None:
        self.max_jobs = max_jobs
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"This API key has {max_jobs} transcriptions queued or running, its limit; "
            "retry when one ends."
        )


class QueueFullError(GatewayError):
    code = "QUEUE_FULL"

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__("Too many transcriptions are waiting; retry later.")


class SharedStateUnavailableError(GatewayError):
    """Distributed mode: the Redis the replicas share does not answer; new work waits for it."""

    code = "REDIS_UNAVAILABLE"
    default_detail = "The gateway cannot reach its Redis; retry in a few seconds."
    retry_after_seconds = 5


class ShuttingDownError(GatewayError):
    code = "SHUTTING_DOWN"
    default_detail = "The gateway is shutting down; retry on another instance or later."


class TooManyUploadsError(GatewayError):
    code = "TOO_MANY_UPLOADS"

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__("Too many uploads are in progress; retry later.")


class SpoolUnavailableError(GatewayError):
    code = "SPOOL_UNAVAILABLE"
    default_detail = "The gateway cannot store uploads right now (spool folder missing or full)."


class LiveParameterError(GatewayError):
    code = "VALIDATION_ERROR"
    default_detail = "A query parameter of the live session is invalid."


class LiveBufferFullError(GatewayError):
    code = "LIVE_BUFFER_FULL"
    default_detail = (
        "Too much audio is waiting (queued for a session, or the speech recognition server is "
        "behind); retry later."
    )


class LiveTooFastError(GatewayError):
    code = "AUDIO_TOO_FAST"
    default_detail = "Live audio arrives faster than twice real time; send it as it is recorded."


class UpstreamError(GatewayError):
    """Something went wrong between us and WhisperLiveKit."""

    code = "UPSTREAM_SERVICE_ERROR"


class UpstreamUnavailableError(UpstreamError):
    code = "UPSTREAM_UNAVAILABLE"
    default_detail = "The speech recognition server cannot be reached."


class UpstreamServiceError(UpstreamError):
    code = "UPSTREAM_SERVICE_ERROR"
    default_detail = "The speech recognition server failed during the transcription."


class UpstreamProtocolError(UpstreamError):
    code = "UPSTREAM_PROTOCOL_ERROR"
    default_detail = "The speech recognition server speaks a protocol the gateway cannot use."


class UpstreamTimeoutError(UpstreamError):
    code = "UPSTREAM_TIMEOUT"
    default_detail = "The speech recognition server did not answer in time."


class StorageError(GatewayError):
    code = "STORAGE_ERROR"
    default_detail = "The transcript database is not available."


class DocumentUnreadableError(GatewayError):
    code = "DOCUMENT_UNREADABLE"
    default_detail = "The stored document is damaged and cannot be served; store a new validation."


class InternalError(GatewayError):
    code = "INTERNAL_ERROR"
