"""Jobs across replicas: who runs which job, identical uploads sharing one session, cancelling.

    jobs:doc:<document id>   str  the unfinished job transcribing these bytes (lease)
    jobs:owner:<job id>      str  the replica running the job (lease)
    jobs:cancel              pub/sub channel: job ids to cancel, heard by the replica running them
    jobs:handover            pub/sub channel: a replica shutting down released a job: take it now
    jobs:released:<job id>   str  that release (lets the job be taken over at once)
    jobs:boot                str  when this Redis' state began (ms): see `takeover_allowed`

`RedisJobRegistry` is the `JobRegistry` of a replica: its own jobs in memory, plus two leases per
job in Redis, renewed every TTL/3. `claim()` sets the document's lease only if nobody holds it
(SET NX), so identical uploads arriving on different replicas share one WLK session: the loser
gets the winner's job as a mirror (a local `TranscriptionJob` fed from the job's Redis stream,
built by `remote`) and streams it from there.

A replica that dies stops renewing: its jobs' owner leases expire within the TTL, and
`JobJanitor` on the other replicas takes them over (or ends them INTERRUPTED) — see
`TranscriptionService.take_over`. The owner lease is taken with SET NX, so exactly one replica
takes each job over.

After Redis restarts empty, every lease is gone at once while its replica is alive and about to
renew it. `jobs:boot` records when the state began; nothing is taken over until two TTLs after
that, which gives every living replica time to put its leases back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import anyio

from aymurai.distributed.connection import SharedRedis
from aymurai.distributed.event_mirror import newest_document
from aymurai.distributed.events import append_terminal_remotely
from aymurai.errors import SharedStateUnavailableError
from aymurai.transcription.channel import JobEvent
from aymurai.transcription.jobs import Suspended, TranscriptionJob
from aymurai.transcription.registry import MemoryJobRegistry
from aymurai.transcription.schemas import ASRDocument

logger = logging.getLogger(__name__)

# Deletes a lease only if it is still ours (a late delete must not drop a successor's lease).
_DELETE_IF_MINE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Returns how long ago (ms) the shared state began, starting it now if it had not.
_BOOT_AGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], now, 'NX')
return now - tonumber(redis.call('GET', KEYS[1]))
"""

CLAIM_WAIT_SECONDS = 5.0
"""How long an identical upload waits for the row of a job claimed on another replica."""
CLAIM_POLL_SECONDS = 0.05

RemoteJobs = Callable[[str], Awaitable[TranscriptionJob | None]]


class RedisJobRegistry:
    """`JobRegistry` and `SharedJobs` of one replica in distributed mode (see the module
    docstring)."""

    def __init__(self, shared: SharedRedis, *, remote: RemoteJobs) -> None:
        self._shared = shared
        self._local = MemoryJobRegistry()
        self._remote = remote
        client = shared.client
        self._delete_if_mine = client.register_script(_DELETE_IF_MINE)
        self._boot_age = client.register_script(_BOOT_AGE)

    def _doc_key(self, document_id: uuid.UUID) -> str:
        return self._shared.key("jobs", "doc", str(document_id))

    def owner_key(self, job_id: str) -> str:
        return self._shared.key("jobs", "owner", job_id)

    @property
    def cancel_channel(self) -> str:
        return self._shared.key("jobs", "cancel")

    @property
    def handover_channel(self) -> str:
        return self._shared.key("jobs", "handover")

    async def claim(self, job: TranscriptionJob) -> TranscriptionJob:
        existing = await self._local.active_for(job.document_id)
        if existing is not None:
            return existing
        ttl = self._shared.lease_ttl_ms
        me = self._shared.replica_id
        deadline = anyio.current_time() + CLAIM_WAIT_SECONDS
        while True:
            doc_key = self._doc_key(job.document_id)
            async with self._shared.client.pipeline(transaction=True) as pipe:
                pipe.set(doc_key, job.id, nx=True, px=ttl)
                pipe.set(self.owner_key(job.id), me, px=ttl)
                pipe.get(doc_key)
                won, _, holder = await self._shared.call(pipe.execute)
            if won:
                return await self._local.claim(job)
            # Not ours: the owner lease we set for a job that will not run goes at once.
            await self._delete_lease(self.owner_key(job.id), me)
            other = holder.decode() if isinstance(holder, bytes) else holder
            if other is None:
                continue  # the holder finished between our SET and GET: try again
            remote = await self._remote(other)
            if remote is not None and not remote.is_terminal:
                logger.info("identical upload: joining %s, running on another replica", other)
                return remote
            if remote is None and await self.owner_alive(other):
                # Claimed a moment ago: its row is not written yet. Wait for it.
                if anyio.current_time() < deadline:
                    await anyio.sleep(CLAIM_POLL_SECONDS)
                    continue
            # A claim left by a job that has ended (or whose row is gone): take its place.
            await self._delete_lease(doc_key, other)

    async def claim_owner(self, job_id: str) -> bool:
        """Take the owner lease of a job nobody renews (a takeover); True if this replica won."""
        won = await self._shared.call(
            lambda: self._shared.client.set(
                self.owner_key(job_id),
                self._shared.replica_id,
                nx=True,
                px=self._shared.lease_ttl_ms,
            )
        )
        return bool(won)

    async def owner_alive(self, job_id: str) -> bool:
        return bool(
            await self._shared.call(lambda: self._shared.client.exists(self.owner_key(job_id)))
        )

    async def takeover_allowed(self, job_id: str) -> bool:
        """False for two TTLs after Redis' state began (its replicas are putting leases back),
        unless the job's replica released it on purpose (at its shutdown)."""
        if await self._shared.call(lambda: self._shared.client.exists(self._released_key(job_id))):
            return True
        age = await self._shared.call(
            lambda: self._boot_age(keys=[self._shared.key("jobs", "boot")], args=[])
        )
        return int(age) >= 2 * self._shared.lease_ttl_ms

    async def get(self, job_id: str) -> TranscriptionJob | None:
        return await self._local.get(job_id) or await self._remote(job_id)

    async def active_for(self, document_id: uuid.UUID) -> TranscriptionJob | None:
        local = await self._local.active_for(document_id)
        if local is not None:
            return local
        holder = await self._shared.call(
            lambda: self._shared.client.get(self._doc_key(document_id))
        )
        if holder is None:
            return None
        remote = await self._remote(holder.decode() if isinstance(holder, bytes) else holder)
        return remote if remote is not None and not remote.is_terminal else None

    async def remove(self, job: TranscriptionJob) -> None:
        await self._local.remove(job)
        with anyio.CancelScope(shield=True):
            await self.release_leases(job.id, job.document_id)
            if isinstance(job.latest, Suspended):
                # Released at shutdown: the other replicas take it over now, not at their next
                # look for orphans (and not held back by `takeover_allowed`'s wait).
                try:
                    await self._shared.call(lambda: self._hand_over(job.id))
                except SharedStateUnavailableError:
                    pass  # they find it at their next look

    async def _hand_over(self, job_id: str) -> None:
        async with self._shared.client.pipeline(transaction=True) as pipe:
            pipe.set(self._released_key(job_id), 1, px=self._shared.lease_ttl_ms)
            pipe.publish(self.handover_channel, job_id)
            await pipe.execute()

    def _released_key(self, job_id: str) -> str:
        return self._shared.key("jobs", "released", job_id)

    async def release_leases(self, job_id: str, document_id: uuid.UUID) -> None:
        """Drop this replica's leases of a job that ended here (a failure is left to expire)."""
        try:
            await self._delete_lease(self._doc_key(document_id), job_id)
            await self._delete_lease(self.owner_key(job_id), self._shared.replica_id)
        except SharedStateUnavailableError:
            pass  # they expire within the TTL

    async def _delete_lease(self, key: str, value: str) -> None:
        await self._shared.call(lambda: self._delete_if_mine(keys=[key], args=[value]))

    def running(self) -> list[TranscriptionJob]:
        return self._local.running()

    async def adopt(self, job: TranscriptionJob) -> None:
        """Register a job taken over (its owner lease is ours already) and claim its document."""
        await self._local.claim(job)
        await self._shared.call(
            lambda: self._shared.client.set(
                self._doc_key(job.document_id), job.id, px=self._shared.lease_ttl_ms
            )
        )

    async def renew(self) -> None:
        """Renew (or put back) the leases of this replica's jobs."""
        jobs = [job for job in self._local.running() if not job.is_terminal]
        if not jobs:
            return
        ttl = self._shared.lease_ttl_ms
        async with self._shared.client.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.set(self._doc_key(job.document_id), job.id, px=ttl)
                pipe.set(self.owner_key(job.id), self._shared.replica_id, px=ttl)
            await self._shared.call(pipe.execute)

    async def end_remotely(self, job_id: str, event: JobEvent) -> JobEvent | None:
        return await append_terminal_remotely(self._shared, job_id, event)

    async def last_document(self, job_id: str) -> ASRDocument | None:
        return await newest_document(self._shared, job_id)

    async def request_cancel(self, job_id: str) -> None:
        """Ask the replica running `job_id` to cancel it."""
        await self._shared.call(lambda: self._shared.client.publish(self.cancel_channel, job_id))

    async def listen(
        self, *, cancel: Callable[[str], Awaitable[None]], handed_over: Callable[[], None]
    ) -> None:
        """Forever: cancel this replica's jobs other replicas ask to, and hear of jobs released
        by a replica shutting down (run in a task group).

        Reconnects by itself after a Redis outage (a request made meanwhile is lost; the
        requester then sees no end within its wait and the job runs on).
        """
        while True:
            try:
                await self._listen_once(cancel, handed_over)
            except SharedStateUnavailableError:
                await anyio.sleep(1.0)

    async def _listen_once(
        self, cancel: Callable[[str], Awaitable[None]], handed_over: Callable[[], None]
    ) -> None:
        pubsub = self._shared.client.pubsub(ignore_subscribe_messages=True)
        channels = {self.cancel_channel.encode(), self.handover_channel.encode()}
        try:
            await self._shared.call(lambda: pubsub.subscribe(*channels))
            while True:
                message = await self._shared.call(lambda: pubsub.get_message(timeout=1.0))
                if message is None or message.get("type") != "message":
                    continue
                channel, data = message["channel"], message["data"]
                if channel == self.handover_channel.encode():
                    handed_over()
                    continue
                job_id = data.decode() if isinstance(data, bytes) else str(data)
                if await self._local.get(job_id) is not None:
                    await cancel(job_id)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception:  # a broken connection: nothing left to close
                    logger.debug("closing the subscription failed", exc_info=True)
