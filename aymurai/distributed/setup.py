"""Distributed mode assembled: the Redis-backed parts of one replica, and their background tasks.

`start_distributed()` is what the app's lifespan calls when TRANSCRIBE_REDIS_URL is set: it checks
Redis answers (the process must not start otherwise), then builds the shared admission, pool
state, job registry, event logs and mirrors that `TranscriptionService` takes in place of its
in-memory ones. `run()` starts what keeps a replica's leases alive, hears cancel requests and
takes over the jobs of replicas that died.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup

from aymurai.db.store import TranscriptStore
from aymurai.distributed.admission import RedisAdmission
from aymurai.distributed.connection import SharedRedis, default_replica_id, redact
from aymurai.distributed.events import RedisEventLog, mirror_job
from aymurai.distributed.jobs import RedisJobRegistry
from aymurai.distributed.mirrors import RemoteJobs
from aymurai.distributed.pool_state import RedisPoolState
from aymurai.errors import SharedStateUnavailableError
from aymurai.settings import Settings
from aymurai.transcription.channel import EventLog
from aymurai.transcription.service import TranscriptionService

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


class RedisUnreachableError(RuntimeError):
    """At startup: Redis does not answer; the process must exit (one line names it)."""


@dataclass
class Distributed:
    shared: SharedRedis
    admission: RedisAdmission
    pool_state: RedisPoolState
    registry: RedisJobRegistry
    remote_jobs: RemoteJobs
    settings: Settings

    def service_parts(self) -> dict[str, Any]:
        """`TranscriptionService`'s keyword arguments for its shared parts."""
        return {
            "registry": self.registry,
            "admission": self.admission,
            "pool_state": self.pool_state,
            "event_logs": self.event_log,
            "shared": self.registry,
        }

    def event_log(self, job_id: str) -> EventLog:
        return RedisEventLog(
            self.shared,
            job_id,
            max_len=self.settings.transcribe_redis_events_max_len,
            ended_ttl_seconds=self.settings.transcribe_redis_events_ttl_seconds,
        )

    def run(self, task_group: TaskGroup, service: TranscriptionService) -> None:
        """Start the replica's background tasks (they end with `task_group`)."""
        service.metrics.watch_shared_state(lambda: self.shared.available)
        task_group.start_soon(self.shared.watch)
        task_group.start_soon(self.keep_leases)
        task_group.start_soon(
            partial(
                self.registry.listen,
                cancel=service.cancel_by_request,
                handed_over=service.recovery.look_for_orphans_now,
            )
        )
        # Orphans are looked for a few times per TTL: a dead replica's job moves within ~TTL.
        task_group.start_soon(service.recovery.run_takeovers, self.shared.lease_ttl_seconds / 3)

    async def keep_leases(self) -> None:
        """Forever: every TTL/3, renew this replica's leases (queue places and slots, WLK
        sessions, jobs), putting back any a restarted Redis lost."""
        while True:
            await anyio.sleep(self.shared.lease_ttl_seconds / 3)
            for renew in (self.admission.renew, self.pool_state.renew, self.registry.renew):
                try:
                    await renew()
                except SharedStateUnavailableError:
                    pass  # logged by SharedRedis; the next round retries

    async def problem(self) -> str | None:
        """For `/readyz`: None when Redis answers now, else `"REDIS_UNAVAILABLE: …"`."""
        try:
            with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
                await self.shared.ping()
        except (SharedStateUnavailableError, TimeoutError):
            return (
                f"{SharedStateUnavailableError.code}: cannot reach Redis at "
                f"{redact(self.shared.url)}: {self.shared.problem or 'no answer in time'}"
            )
        return None

    async def aclose(self) -> None:
        await self.shared.aclose()


async def start_distributed(
    settings: Settings, store: TranscriptStore, task_group: TaskGroup
) -> Distributed:
    """Connect to Redis and build this replica's shared parts.

    Raises:
        RedisUnreachableError: Redis does not answer.
    """
    assert settings.transcribe_redis_url is not None
    url = settings.transcribe_redis_url.get_secret_value()
    shared = SharedRedis(
        url,
        prefix=settings.transcribe_redis_prefix,
        replica_id=settings.transcribe_replica_id or default_replica_id(),
        lease_ttl_seconds=settings.transcribe_redis_lease_ttl_seconds,
    )
    try:
        await shared.ping()
    except SharedStateUnavailableError as exc:
        await shared.aclose()
        raise RedisUnreachableError(
            f"cannot reach Redis at {redact(url)} (TRANSCRIBE_REDIS_URL): {exc.__cause__}"
        ) from exc
    backends = settings.ws_backends
    per_key = settings.transcribe_api_key_max_jobs
    remote_jobs = RemoteJobs(shared, store, task_group, mirror=mirror_job)
    if settings.keys_enabled and settings.transcribe_events_token_secret is None:
        logger.warning(
            "TRANSCRIBE_EVENTS_TOKEN_SECRET is unset: each replica signs events_url tokens with "
            "its own random secret, so a browser's EventSource reconnecting to another replica "
            "is refused; set the same secret on every replica"
        )
    logger.info(
        "distributed mode: replica %s, Redis at %s (prefix %s), lease TTL %.0f s",
        shared.replica_id,
        redact(url),
        shared.prefix,
        shared.lease_ttl_seconds,
    )
    return Distributed(
        shared=shared,
        admission=RedisAdmission(
            shared,
            max_active=sum(b.max_sessions for b in backends),
            max_queued=settings.transcribe_max_queued,
            max_per_key=per_key if settings.keys_enabled and per_key > 0 else None,
        ),
        pool_state=RedisPoolState(shared, backends),
        registry=RedisJobRegistry(shared, remote=remote_jobs),
        remote_jobs=remote_jobs,
        settings=settings,
    )
