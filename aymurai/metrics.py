"""Prometheus metrics of one gateway process, exposed at `GET /metrics`.

`GatewayMetrics` owns its own `CollectorRegistry`: `create_app()` builds one and hands it to the
transcription service, so several apps in one process (tests) never share or clash over series. We
do not use prometheus-client's global default registry, because a module-level registry is import-
time state (see STYLE §3) and would merge every app's numbers.

Who records what (the layers only call methods here; nothing else imports prometheus-client):

    api/routes/transcription.py   requests by endpoint and outcome, SSE streams active,
                                  time to the first transcript event
    api/routes/openai.py          the same for /v1 (endpoint label "openai"; first transcript =
                                  first delta)
    transcription/service.py      cache lookups, queue wait, processing time, audio seconds,
                                  real-time factor, upstream closes by code
    transcription/pool.py         per WLK server (`backend` label): sessions in use, state,
                                  failures by code; transcription/pipeline.py: resumes
    api/routes/live.py            live sessions opened, active, errors, lag reported
    (gauges read live)            requests queued, upstream sessions in use (admission queue),
                                  jobs held per API key name
    api/auth.py                   requests per API key name and outcome, 401s
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # only for annotations: metrics imports nothing from the domain at run time
    from aymurai.transcription.backends import Backend
    from aymurai.transcription.pool import BackendStatus

# What `generate_latest` writes. We name the version ourselves: recent prometheus-client releases
# label CONTENT_TYPE_LATEST "version=1.0.0", which older Prometheus servers do not know.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
PROCESSING_BUCKETS_SECONDS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
REAL_TIME_FACTOR_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)

# Outcomes besides the stable error codes of `aymurai.errors`.
OUTCOME_DONE = "done"
OUTCOME_CACHE_HIT = "cache_hit"
OUTCOME_CLIENT_GONE = "client_gone"


class _HeldByKey(Collector):
    """`aymurai_api_key_jobs{key}`: one series per key name holding jobs now."""

    def __init__(self, held: Callable[[], dict[str, int]]) -> None:
        self._held = held

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "aymurai_api_key_jobs",
            "Transcriptions queued or running per API key name (TRANSCRIBE_API_KEY_MAX_JOBS).",
            labels=["key"],
        )

    def collect(self) -> list[GaugeMetricFamily]:
        family = self._family()
        for key, count in sorted(self._held().items()):
            family.add_metric([key], count)
        return [family]


class GatewayMetrics:
    """The gateway's metric families, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.streams_active = Gauge(
            "aymurai_sse_streams_active",
            "SSE transcription streams currently open to clients.",
            registry=registry,
        )
        self.event_streams_active = Gauge(
            "aymurai_sse_event_streams_active",
            "GET /asr/transcriptions/{id}/events streams currently open to clients.",
            registry=registry,
        )
        self.requests_queued = Gauge(
            "aymurai_requests_queued",
            "Transcriptions waiting in the admission queue for an upstream session.",
            registry=registry,
        )
        self.upstream_sessions_in_use = Gauge(
            "aymurai_upstream_sessions_in_use",
            "Admitted transcriptions, each holding one WhisperLiveKit session (open or opening); "
            "at most the sum of the session caps of the servers that are up.",
            registry=registry,
        )
        self.requests = Counter(
            "aymurai_transcription_requests",
            "Transcription requests by endpoint (stream, blocking, resource, openai) and outcome "
            "(done, cache_hit, accepted, client_gone, or the error code).",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.time_to_first_transcript = Histogram(
            "aymurai_time_to_first_transcript_seconds",
            "From the upload being received to the first SSE transcription event with text "
            "(queue wait included).",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "aymurai_queue_wait_seconds",
            "Time an admitted transcription waited for an upstream session.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.processing = Histogram(
            "aymurai_transcription_processing_seconds",
            "Time from admission to the stored result of successful transcriptions.",
            buckets=PROCESSING_BUCKETS_SECONDS,
            registry=registry,
        )
        self.audio_transcribed = Counter(
            "aymurai_audio_transcribed_seconds",
            "Seconds of audio in successful transcriptions.",
            registry=registry,
        )
        self.real_time_factor = Histogram(
            "aymurai_transcription_real_time_factor",
            "Processing time divided by audio duration, per successful transcription.",
            buckets=REAL_TIME_FACTOR_BUCKETS,
            registry=registry,
        )
        self.upstream_closes = Counter(
            "aymurai_upstream_closes",
            "WhisperLiveKit sessions ended, by WebSocket close code (1000: closed by us after "
            "the result, a client leaving or shutdown; 1006: lost without a close frame).",
            ["code"],
            registry=registry,
        )
        self.live_sessions = Counter(
            "aymurai_live_sessions",
            "Live sessions (WS /asr/live) opened, queued or admitted.",
            registry=registry,
        )
        self.live_sessions_active = Gauge(
            "aymurai_live_sessions_active",
            "Live sessions (WS /asr/live) open now, queued or streaming.",
            registry=registry,
        )
        self.live_errors = Counter(
            "aymurai_live_errors",
            "Live sessions that ended without a stored transcript (refused, upstream or storage "
            "errors, cancelled).",
            registry=registry,
        )
        self.live_lag = Histogram(
            "aymurai_live_lag_seconds",
            "How far WhisperLiveKit was behind a live session's audio, each time it was reported "
            "to the client (more than 3 s).",
            buckets=(3.0, 5.0, 10.0, 20.0, 30.0, 60.0),
            registry=registry,
        )
        self.cache_lookups = Counter(
            "aymurai_cache_lookups",
            "Lookups of a stored transcript for an upload, by result (hit, miss).",
            ["result"],
            registry=registry,
        )
        # By key *name* (never the key): who uses the gateway, who hits its limits.
        self.key_requests = Counter(
            "aymurai_api_key_requests",
            "Requests that presented a known API key, by key name and outcome (allowed, "
            "FORBIDDEN, KEY_LIMIT).",
            ["key", "outcome"],
            registry=registry,
        )
        self.key_unauthenticated = Counter(
            "aymurai_api_key_unauthenticated",
            "Requests refused with 401 UNAUTHENTICATED (no key, an unknown key, a bad token).",
            registry=registry,
        )

        self.backend_sessions_in_use = Gauge(
            "aymurai_upstream_backend_sessions_in_use",
            "WhisperLiveKit sessions open or opening on each server (at most its max_sessions).",
            ["backend"],
            registry=registry,
        )
        self.backend_max_sessions = Gauge(
            "aymurai_upstream_backend_max_sessions",
            "Session cap of each WhisperLiveKit server.",
            ["backend"],
            registry=registry,
        )
        self.backend_up = Gauge(
            "aymurai_upstream_backend_up",
            "1 while a WhisperLiveKit server is up, 0 while the circuit breaker holds it down.",
            ["backend"],
            registry=registry,
        )
        self.backend_failures = Counter(
            "aymurai_upstream_backend_failures",
            "Failures counted against each WhisperLiveKit server (refused or failed handshake, "
            "no config message, session lost mid-file, failed probe), by error code.",
            ["backend", "code"],
            registry=registry,
        )
        self.resumes = Counter(
            "aymurai_upstream_resumes",
            "Transcriptions resumed after losing their session mid-file, by the server lost.",
            ["backend"],
            registry=registry,
        )

    def watch_shared_state(self, available: Callable[[], bool]) -> None:
        """Distributed mode: whether this replica reaches its Redis, read at every scrape."""
        gauge = Gauge(
            "aymurai_redis_up",
            "1 while this replica reaches the Redis replicas share (distributed mode), else 0.",
            registry=self.registry,
        )
        gauge.set_function(lambda: 1.0 if available() else 0.0)

    def count_unauthenticated(self) -> None:
        self.key_unauthenticated.inc()

    def count_key_request(self, key_name: str, outcome: str) -> None:
        self.key_requests.labels(key=key_name, outcome=outcome).inc()

    def watch_keys(self, held: Callable[[], dict[str, int]]) -> None:
        """Jobs queued or running per key name, read at every scrape."""
        self.registry.register(_HeldByKey(held))

    def watch_backends(self, backends: list[Backend]) -> None:
        """Create every server's series at startup, so dashboards see zeros, not gaps."""
        for backend in backends:
            self.backend_sessions_in_use.labels(backend=backend.name).set(0)
            self.backend_max_sessions.labels(backend=backend.name).set(backend.max_sessions)
            self.backend_up.labels(backend=backend.name).set(1)
            self.resumes.labels(backend=backend.name)

    def on_backend_status(self, status: BackendStatus) -> None:
        name = status.backend.name
        self.backend_sessions_in_use.labels(backend=name).set(status.in_use)
        self.backend_up.labels(backend=name).set(1 if status.is_up else 0)

    def on_backend_failure(self, name: str, code: str) -> None:
        self.backend_failures.labels(backend=name, code=code).inc()

    def count_resume(self, backend: Backend) -> None:
        self.resumes.labels(backend=backend.name).inc()

    def watch_admission(self, *, queued: Callable[[], int], active: Callable[[], int]) -> None:
        """Read the admission queue's counts at every scrape (no bookkeeping to drift)."""
        self.requests_queued.set_function(queued)
        self.upstream_sessions_in_use.set_function(active)

    def count_request(self, endpoint: str, outcome: str) -> None:
        self.requests.labels(endpoint=endpoint, outcome=outcome).inc()

    def observe_success(self, *, processing_seconds: float, audio_seconds: float) -> None:
        self.processing.observe(processing_seconds)
        self.audio_transcribed.inc(audio_seconds)
        if audio_seconds > 0:
            self.real_time_factor.observe(processing_seconds / audio_seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE
