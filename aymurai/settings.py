"""Gateway settings, read from the environment and `.env` (pydantic-settings).

Field names are the environment names operators already use (matched case-insensitively), so
`TRANSCRIBE_WS_URI=...` sets `transcribe_ws_uri`. Durations are floats in seconds and carry the unit
in their name. Nothing is built at import time: `create_app(settings)` receives an instance, and
`get_settings()` caches the one read from the environment.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from aymurai.transcription.backends import Backend, parse_backend_uris

MIB = 1024**2
GIB = 1024**3
HOUR_SECONDS = 3600.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # --- HTTP server -------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8899, ge=0, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # A client must send its request line and headers within this time (slowloris), and an idle
    # keep-alive connection is closed after it.
    api_header_timeout_seconds: float = Field(default=10.0, gt=0)

    # --- Database ----------------------------------------------------------------------------
    sqlalchemy_database_uri: str = "sqlite:///./data/aymurai.db"
    db_max_threads: int = Field(default=4, ge=1, le=64)
    # Off when a deploy step runs `aymurai-api migrate`; /readyz then says 503 until it has.
    transcribe_migrate_on_start: bool = True

    # --- Upload and decode -------------------------------------------------------------------
    transcribe_max_upload_bytes: int = Field(default=2 * GIB, gt=0)
    transcribe_max_audio_seconds: float = Field(default=6 * HOUR_SECONDS, gt=0)
    # Uploads wait here until their transcription ends; a restart re-runs them from here.
    transcribe_spool_dir: str = "./data/spool"
    transcribe_spool_min_free_bytes: int = Field(default=256 * MIB, ge=0)
    transcribe_max_concurrent_uploads: int = Field(default=64, ge=1)
    transcribe_upload_min_bytes_per_second: float = Field(default=16 * 1024, gt=0)
    transcribe_upload_grace_seconds: float = Field(default=30.0, ge=0)
    transcribe_max_concurrent_decodes: int = Field(default=2, ge=1, le=64)

    # --- Validation (JSON) bodies ------------------------------------------------------------
    transcribe_max_json_body_bytes: int = Field(default=8 * MIB, gt=0)

    # --- SSE ---------------------------------------------------------------------------------
    transcribe_sse_keepalive_seconds: float = 15.0
    transcribe_sse_min_event_interval_seconds: float = Field(default=0.25, ge=0.0, le=10.0)
    # A `current_time` change without new text makes an event at most this often.
    transcribe_sse_progress_interval_seconds: float = Field(default=2.0, ge=0.0, le=60.0)
    # `retry:` sent to EventSource clients: how long they wait before reconnecting.
    transcribe_sse_retry_ms: int = Field(default=2000, ge=0, le=600_000)
    # How long a job of the POST stream (or the blocking endpoint) outlives its last subscriber.
    transcribe_detached_grace_seconds: float = Field(default=30.0, ge=0.0)

    # --- WhisperLiveKit upstream -------------------------------------------------------------
    # One or more `/asr` URIs, comma-separated, each with an optional `#max_sessions=N` fragment
    # (see `transcription/backends.py`).
    transcribe_keep_punctuation_only: bool = False
    transcribe_ws_uri: str = "ws://127.0.0.1:8000/asr"
    transcribe_ws_open_timeout_seconds: float = Field(default=10.0, gt=0)
    transcribe_ws_close_timeout_seconds: float = Field(default=1.0, gt=0, le=10)
    transcribe_ws_ping_interval_seconds: float = Field(default=20.0, ge=0)
    transcribe_ws_ping_timeout_seconds: float = Field(default=60.0, ge=0)
    transcribe_ws_chunk_seconds: float = Field(default=1.0, ge=0.02, le=1.0)
    transcribe_ws_lead_budget_seconds: float = Field(default=20.0, gt=0)
    transcribe_ws_lead_initial_grace_seconds: float = Field(default=20.0, ge=0)
    transcribe_ws_idle_timeout_seconds: float = Field(default=60.0, gt=0)
    transcribe_ws_ready_timeout_seconds: float = Field(default=120.0, gt=0)
    transcribe_ws_max_message_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    # Resume after a mid-file failure (see `transcription/seam.py`): how many per job (0 = off),
    # how much audio before the end of WLK's last line is sent again, and how long one resume may
    # wait for a server with room (reconnect attempts included).
    transcribe_ws_max_resumes: int = Field(default=3, ge=0, le=100)
    transcribe_ws_resume_overlap_seconds: float = Field(default=2.0, ge=0, le=30)
    transcribe_ws_resume_timeout_seconds: float = Field(default=60.0, gt=0)

    # --- Admission control and shutdown ------------------------------------------------------
    # The default session cap of each WLK server (a URI's `#max_sessions=N` overrides it).
    transcribe_max_concurrent_sessions: int = Field(default=2, ge=1, le=1024)
    transcribe_max_queued: int = Field(default=100, ge=0)
    transcribe_shutdown_grace_seconds: float = Field(default=30.0, ge=0)

    # --- Live audio (WS /asr/live) ---------------------------------------------------------------
    # Audio a live client sends while queued (or while WLK lags) is kept up to this many seconds.
    transcribe_live_max_buffer_seconds: float = Field(default=30.0, gt=0, le=600)
    # Pings to live clients (uvicorn's WebSocket pings): a client that vanished without a close is
    # detected after interval + timeout at most. 0 disables.
    transcribe_live_ping_interval_seconds: float = Field(default=10.0, ge=0)
    transcribe_live_ping_timeout_seconds: float = Field(default=10.0, ge=0)
    # Live audio is not kept unless asked: then as `<dir>/<document_id>.wav` (16 kHz mono s16le).
    transcribe_live_keep_audio: bool = False
    transcribe_live_audio_dir: str = "./data/live-audio"

    # --- API keys (off unless a keys file is set; see README "API keys") ---------------------
    transcribe_api_keys_file: str | None = None
    # Queued + running transcriptions one key may hold; past it, 429 KEY_LIMIT. 0 = no limit.
    transcribe_api_key_max_jobs: int = Field(default=4, ge=0)
    # Signs the token in a job's `events_url` (EventSource cannot send headers). Replicas behind
    # one load balancer must share it; unset = a random secret per process.
    transcribe_events_token_secret: SecretStr | None = None
    # An events token works while its job runs and this long after it ends (or is issued).
    transcribe_events_token_ttl_seconds: float = Field(default=3600.0, gt=0)

    # --- OpenAI-compatible API (/v1) -----------------------------------------------------------
    # Model names accepted in `model` (comma-separated); empty accepts any name.
    transcribe_openai_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The language WLK transcribes (its `--lan`, an ISO 639-1 code), if fixed; a request's
    # `language` must name it, since WLK sessions cannot choose their own (see README).
    transcribe_wlk_language: str | None = None

    # --- Distributed mode (several replicas; see README "Production") -------------------------
    # Unset: one process, everything in memory. Set: replicas sharing this Redis and one SQL
    # database act as one gateway (global session caps and queue, shared job events).
    transcribe_redis_url: SecretStr | None = None
    # Every key this gateway writes starts with this (several gateways may share one Redis).
    transcribe_redis_prefix: str = Field(default="aymurai", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Leases (sessions, queue places, running jobs) live this long unless their replica renews
    # them: a replica that dies frees its sessions, and its jobs are taken over, within it.
    transcribe_redis_lease_ttl_seconds: float = Field(default=15.0, ge=1.0, le=600.0)
    # A job's event stream is kept this long after the job ends (the database keeps the result).
    transcribe_redis_events_ttl_seconds: float = Field(default=600.0, ge=1.0)
    # Events kept per job in its stream (older ones are trimmed; readers then get a snapshot).
    transcribe_redis_events_max_len: int = Field(default=256, ge=16, le=100_000)
    # This replica's name in logs and leases; default: host name, process id and a random tag.
    transcribe_replica_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    # --- Readiness (GET /readyz) -------------------------------------------------------------
    # A probe opens a WLK session and closes it at once; its result is reused for the TTL.
    transcribe_ws_probe_ttl_seconds: float = Field(default=10.0, ge=0)
    transcribe_ws_probe_timeout_seconds: float = Field(default=2.0, gt=0)

    @field_validator("cors_origins", "transcribe_openai_models", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("transcribe_wlk_language")
    @classmethod
    def _normalise_language(cls, value: str | None) -> str | None:
        value = (value or "").strip().lower()
        return None if value in ("", "auto") else value

    @field_validator("transcribe_spool_dir")
    @classmethod
    def _absolute_spool_dir(cls, value: str) -> str:
        # Job rows name their spooled file; the name must hold after a restart from elsewhere.
        return os.path.abspath(value)

    @field_validator("transcribe_ws_uri")
    @classmethod
    def _check_ws_uri(cls, value: str) -> str:
        parse_backend_uris(value, default_max_sessions=1)  # raises ValueError with the reason
        return value

    @field_validator("transcribe_api_keys_file")
    @classmethod
    def _absolute_keys_file(cls, value: str | None) -> str | None:
        return os.path.abspath(value) if value else None

    @property
    def keys_enabled(self) -> bool:
        return self.transcribe_api_keys_file is not None

    @property
    def ws_backends(self) -> list[Backend]:
        """The WLK servers of TRANSCRIBE_WS_URI, with their session caps."""
        return parse_backend_uris(
            self.transcribe_ws_uri, default_max_sessions=self.transcribe_max_concurrent_sessions
        )

    @property
    def distributed(self) -> bool:
        """Replicas share state through Redis (TRANSCRIBE_REDIS_URL is set)."""
        return self.transcribe_redis_url is not None

    @property
    def ws_ping_interval(self) -> float | None:
        """`websockets` takes None to disable pings; operators write 0."""
        return self.transcribe_ws_ping_interval_seconds or None

    @property
    def ws_ping_timeout(self) -> float | None:
        return self.transcribe_ws_ping_timeout_seconds or None

    @property
    def sse_keepalive(self) -> float | None:
        """Seconds between `: keepalive` comments while idle; None when disabled (<= 0)."""
        value = self.transcribe_sse_keepalive_seconds
        return value if value > 0 else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
