"""Job events in Redis Streams: written by the replica that runs a job, mirrored on another.

The owner is a real job recorder writing through `RedisEventLog` on one Redis client; the
mirror is a `TranscriptionJob` fed by `mirror_job` on ANOTHER client (as another replica would),
so what crosses is only what is in Redis. Every mirrored event must be the owner's, byte for byte.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import pytest
import redis.asyncio as redis

from aymurai.distributed.connection import (
    CONNECT_TIMEOUT_SECONDS,
    SOCKET_TIMEOUT_SECONDS,
    SharedRedis,
)
from aymurai.distributed.entries import encode_entry
from aymurai.distributed.event_mirror import mirror_job
from aymurai.distributed.events import (
    RUNNING_TTL_SECONDS,
    RedisEventLog,
    append_terminal_remotely,
    stream_key,
)
from aymurai.transcription.channel import EPOCH_SPAN, JobEvent, MemoryEventLog, event_id
from aymurai.transcription.jobs import (
    Done,
    Failed,
    JobUpdate,
    Keepalive,
    Queued,
    Suspended,
    Transcribing,
    TranscriptionJob,
    Upstream,
)
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.wlk_protocol import StatusSnapshot, TranscriptLine
from test.e2e import seconds
from test.proxy import CuttingProxy, cutting_proxy
from test.redis import require_redis, shared_redis

pytestmark = [pytest.mark.integration, pytest.mark.redis]

DOC_ID = uuid.uuid4()
HISTORY = 2000  # both sides keep every event, so that they can be compared one by one
ENDED_TTL = 30.0


# --- the two replicas --------------------------------------------------------------------------
@asynccontextmanager
async def other_replica(shared: SharedRedis, url: str | None = None) -> AsyncIterator[SharedRedis]:
    """Another client on the same Redis and prefix (or through `url`), as another replica has.

    Its connections are named after it (`CLIENT LIST` shows what it is doing).
    """
    target = url or require_redis()
    client = redis.Redis.from_url(
        target,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        client_name=f"replica-b-{uuid.uuid4().hex[:8]}",
    )
    other = SharedRedis(
        target,
        prefix=shared.prefix,
        replica_id="replica-b",
        lease_ttl_seconds=15,
        client=client,
    )
    try:
        yield other
    finally:
        await other.aclose()


async def wait_until_blocked_in_xread(observer: SharedRedis, replica: SharedRedis) -> None:
    """Until `replica`'s mirror waits in XREAD BLOCK for entries (it read the stream)."""
    name = replica.client.connection_pool.connection_kwargs["client_name"]
    with anyio.fail_after(seconds(5)):
        while True:
            clients = await observer.client.client_list()
            if any(
                c["name"] == name and c["cmd"] == "xread" and "b" in c["flags"] for c in clients
            ):
                return
            await anyio.sleep(0.01)


def owner_job(
    shared: SharedRedis, *, job_id: str | None = None, epoch: int = 0, max_len: int = 256
) -> TranscriptionJob:
    job_id = job_id or uuid.uuid4().hex
    log = RedisEventLog(
        shared, job_id, max_len=max_len, ended_ttl_seconds=ENDED_TTL, history=HISTORY
    )
    return TranscriptionJob(
        document_id=DOC_ID,
        name="hearing.wav",
        total_seconds=600.0,
        job_id=job_id,
        epoch=epoch,
        log=log,
        live=True,
    )


def mirror_of(job: TranscriptionJob, *, epoch: int | None = None) -> TranscriptionJob:
    """The job as another replica builds it from the SQL row."""
    return TranscriptionJob(
        document_id=job.document_id,
        name=job.name,
        total_seconds=job.total_seconds,
        job_id=job.id,
        epoch=job.epoch if epoch is None else epoch,
        log=MemoryEventLog(history=HISTORY),
        live=job.live,
    )


# --- a scripted job ----------------------------------------------------------------------------
@dataclass
class Script:
    """Transcription updates with growing, changing and retracted paragraphs (non-ASCII text)."""

    step: int = 0
    paragraphs: list[ASRParagraph] = field(default_factory=list)

    def transcribing(self) -> Transcribing:
        i = self.step
        self.step += 1
        p = self.paragraphs
        if i % 3 == 0 or not p:
            start = p[-1].end if p else 0.0
            p.append(
                ASRParagraph(
                    paragraph_id=f"p{len(p)}",
                    speaker_no=1 + len(p) % 2,
                    speaker_id=f"speaker-{1 + len(p) % 2}",
                    start=start,
                    end=round(start + 0.5, 3),
                    text=f"párrafo {len(p)}: «señor» ñandú — 🎙",
                    language="es",
                )
            )
        else:
            p[-1] = p[-1].model_copy(
                update={"text": f"{p[-1].text} w{i}", "end": round(p[-1].end + 0.25, 3)}
            )
        if i % 7 == 3 and len(p) > 2:
            p.pop()  # the tail retracted: the document gets shorter
        if i % 11 == 5 and len(p) > 2:
            p[-2] = p[-2].model_copy(update={"text": "corrigé"})  # a change before the last one
        # Committed lines: all but the last two paragraphs are final (live `line` events).
        lines = tuple(TranscriptLine(1, "x", 0.0, 1.0) for _ in range(max(0, len(p) - 1)))
        snapshot = StatusSnapshot(status="active_transcription", lines=lines)
        return Transcribing(DOC_ID, snapshot, i * 0.5 + 0.125, 600.0, tuple(p))

    def done(self) -> Done:
        document = ASRDocument(
            document_id=DOC_ID, document=list(self.paragraphs), current_time=600.0, total_time=600.0
        )
        return Done(document)


class Owner:
    """The owner replica: a job whose recorder runs, driven one update at a time."""

    def __init__(self, job: TranscriptionJob, group: anyio.abc.TaskGroup) -> None:
        self.job = job
        self.script = Script()
        group.start_soon(
            lambda: job.record_events(min_interval_seconds=0, progress_interval_seconds=0)
        )

    async def publish(self, update: JobUpdate) -> None:
        """Publish and wait until the recorder took it (it made at least one event)."""
        before = self.job.log.latest.id if self.job.log.latest is not None else -1
        self.job.publish(update)
        with anyio.fail_after(seconds(5)):
            while (latest := self.job.log.latest) is None or latest.id <= before:
                await self.job.log.read_after(before, timeout_seconds=1)

    async def transcribe(self, count: int) -> None:
        for _ in range(count):
            await self.publish(self.script.transcribing())

    async def finish(self, update: JobUpdate | None = None) -> None:
        await self.publish(update or self.script.done())
        with anyio.fail_after(seconds(5)):
            await self.job.recorded.wait()


# --- comparing ---------------------------------------------------------------------------------
def encodings(event: JobEvent) -> tuple[object, ...]:
    """Everything a subscriber can get from an event."""
    if event.kind in ("error", "suspended"):
        return event.id, event.kind, event.error_code, event.error_detail
    return event.id, event.kind, event.document_json, event.delta_json, event.snapshot_json


def assert_same_events(mirrored: Sequence[JobEvent], owned: Sequence[JobEvent]) -> None:
    by_id = {event.id: event for event in owned}
    assert mirrored, "nothing mirrored"
    for event in mirrored:
        assert event.id in by_id, f"event {event.id} was never recorded by the owner"
        assert encodings(event) == encodings(by_id[event.id])


def kept(job: TranscriptionJob) -> list[JobEvent]:
    """Every event the job's log kept (HISTORY: all of them)."""
    log = job.log
    assert isinstance(log, MemoryEventLog | RedisEventLog)
    return log.kept


async def run_mirror(shared: SharedRedis, job: TranscriptionJob, ended: list[JobEvent]) -> None:
    """`mirror_job`, then note the event it ended at: the terminal one."""
    await mirror_job(shared, job)
    latest = job.log.latest
    assert latest is not None and latest.is_terminal
    ended.append(latest)


async def wait_until_mirrored(mirror: TranscriptionJob, event_id_: int) -> None:
    with anyio.fail_after(seconds(10)):
        while (latest := mirror.log.latest) is None or latest.id < event_id_:
            await mirror.log.read_after(latest.id if latest else -1, timeout_seconds=1)


async def stream_ttl_ms(shared: SharedRedis, job_id: str) -> int:
    return int(await shared.client.pttl(stream_key(shared, job_id)))


def redis_port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def redis_url_of(proxy: CuttingProxy) -> str:
    """A Redis URL through `proxy`."""
    return f"redis://127.0.0.1:{redis_port_of(proxy.url)}/0"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- tests ---------------------------------------------------------------------------------------
async def test_mirror_on_another_client_rebuilds_every_event_byte_for_byte() -> None:
    """Queued, many deltas with retractions, upstream notices, live lines, done: all identical."""
    async with shared_redis() as redis_a, other_replica(redis_a) as redis_b:
        job = owner_job(redis_a)
        mirror = mirror_of(job)
        followed: list[tuple[int, bool]] = []
        updates: list[JobUpdate] = []

        async def follow() -> None:
            with mirror.watch():
                async for item in mirror.follow(keepalive_seconds=None):
                    assert not isinstance(item, Keepalive)
                    followed.append((item[0].id, item[1]))

        async def watch_updates() -> None:
            async for update in mirror.updates():
                assert not isinstance(update, Keepalive)
                updates.append(update)

        with anyio.fail_after(seconds(60)):
            async with anyio.create_task_group() as group:
                group.start_soon(follow)
                group.start_soon(watch_updates)
                ended: list[JobEvent] = []
                group.start_soon(run_mirror, redis_b, mirror, ended)
                await wait_until_blocked_in_xread(redis_a, redis_b)  # before the stream exists
                owner = Owner(job, group)
                for position in (3, 2, 1):
                    await owner.publish(Queued(DOC_ID, position))
                await owner.transcribe(30)
                await owner.publish(Upstream(DOC_ID, "reconnecting", 1, 14.125))
                await owner.publish(Upstream(DOC_ID, "resumed", 1, 14.125))
                await owner.transcribe(30)
                await owner.finish()
                result = await mirror.wait_for_result()

        owned = kept(job)
        mirrored = kept(mirror)
        kinds = {event.kind for event in owned}
        assert kinds == {"queued", "transcription", "upstream", "line", "done"}
        assert any(
            e.delta is not None and 0 < e.delta.from_index < e.delta.length - 1 for e in owned
        ), "the script has changes before the last paragraph"
        assert [event.id for event in mirrored] == [event.id for event in owned]
        assert_same_events(mirrored, owned)
        assert ended[0].id == owned[-1].id and ended[0].kind == "done"
        # Subscribers of the mirror: follow() from the start, ending at done.
        assert [event_id_ for event_id_, _ in followed] == [event.id for event in owned]
        assert followed[0][1] is True and not any(snapshot for _, snapshot in followed[1:])
        assert isinstance(result, Done)
        assert result.document.model_dump_json() == owned[-1].document_json
        # The watch: coalesced, but every notice, and the end.
        assert [u for u in updates if isinstance(u, Upstream)] == [
            Upstream(DOC_ID, "reconnecting", 1, 14.125),
            Upstream(DOC_ID, "resumed", 1, 14.125),
        ]
        assert isinstance(updates[-1], Done) and updates[-1].document == result.document
        assert mirror.current_time == job.current_time == 600.0
        assert mirror.lines_emitted == job.lines_emitted > 0
        # Ended: the stream expires soon.
        assert 0 < await stream_ttl_ms(redis_a, job.id) <= ENDED_TTL * 1000


async def test_late_mirror_starts_from_a_full_state_of_a_trimmed_stream() -> None:
    """A mirror started after hundreds of events and trimming starts from the newest full state."""
    async with shared_redis() as redis_a, other_replica(redis_a) as redis_b:
        job = owner_job(redis_a, max_len=16)
        mirror = mirror_of(job)
        with anyio.fail_after(seconds(60)):
            async with anyio.create_task_group() as group:
                owner = Owner(job, group)
                await owner.publish(Queued(DOC_ID, 1))
                await owner.transcribe(250)
                key = stream_key(redis_a, job.id)
                length = await redis_a.client.xlen(key)
                oldest = await redis_a.client.xrange(key, count=1)
                assert length < 100 and int(oldest[0][0].split(b"-")[0]) > 100, "trimmed"
                assert 0 < await stream_ttl_ms(redis_a, job.id) <= RUNNING_TTL_SECONDS * 1000
                assert await stream_ttl_ms(redis_a, job.id) > 3600 * 1000

                ended: list[JobEvent] = []
                group.start_soon(run_mirror, redis_b, mirror, ended)
                newest = job.log.latest
                assert newest is not None
                await wait_until_mirrored(mirror, newest.id)
                first = kept(mirror)[0]
                assert first.kind == "transcription" and newest.id - first.id < 16
                entry = (await redis_a.client.xrange(key, f"{first.id}-0", f"{first.id}-0"))[0]
                assert b"f" in entry[1], "started from an entry carrying the full document"
                await owner.transcribe(20)
                await owner.finish()
                result = await mirror.wait_for_result()

        owned = kept(job)
        mirrored = kept(mirror)
        assert [e.id for e in mirrored] == [e.id for e in owned if e.id >= first.id]
        assert_same_events(mirrored, owned)
        assert isinstance(result, Done) and ended[0].kind == "done"
        assert mirror.current_time == job.current_time


async def test_an_error_ends_a_mirror() -> None:
    """The end is mirrored (a Failed update too) and starts the ended TTL."""
    async with shared_redis() as redis_a, other_replica(redis_a) as redis_b:
        job = owner_job(redis_a)
        mirror = mirror_of(job)
        updates: list[JobUpdate] = []

        async def watch_updates() -> None:
            async for update in mirror.updates():
                assert not isinstance(update, Keepalive)
                updates.append(update)

        with anyio.fail_after(seconds(30)):
            async with anyio.create_task_group() as group:
                group.start_soon(watch_updates)
                ended: list[JobEvent] = []
                group.start_soon(run_mirror, redis_b, mirror, ended)
                owner = Owner(job, group)
                await owner.transcribe(5)
                assert await stream_ttl_ms(redis_a, job.id) > 3600 * 1000
                terminal = Failed("UPSTREAM_LOST", "perdió la sesión «WLK»")
                await owner.finish(terminal)
                result = await mirror.wait_for_result()

        assert ended[0].kind == "error"
        assert_same_events(kept(mirror), kept(job))
        assert result == terminal and updates[-1] == terminal
        assert 0 < await stream_ttl_ms(redis_a, job.id) <= ENDED_TTL * 1000


async def test_a_suspended_run_does_not_end_a_mirror_it_goes_on_with_the_next_run() -> None:
    """Released at its replica's shutdown (`suspended`), the job is taken over in a new epoch:
    a mirror following it skips the `suspended` and goes on to the next run's `done`."""
    async with shared_redis() as redis_a, other_replica(redis_a) as redis_b:
        first_run = owner_job(redis_a)
        mirror = mirror_of(first_run)
        with anyio.fail_after(seconds(30)):
            async with anyio.create_task_group() as group:
                ended: list[JobEvent] = []
                group.start_soon(run_mirror, redis_b, mirror, ended)
                first = Owner(first_run, group)
                await first.transcribe(5)
                await first.finish(Suspended())
                second_run = owner_job(redis_a, job_id=first_run.id, epoch=1)
                second = Owner(second_run, group)
                second.script = first.script
                await second.transcribe(5)
                await second.finish()
                result = await mirror.wait_for_result()

        assert isinstance(result, Done) and ended[0].kind == "done"
        assert "suspended" not in [event.kind for event in kept(mirror)]
        assert mirror.epoch == 1


async def test_append_with_redis_unreachable_does_not_fail_the_job() -> None:
    """Redis down: appends do not raise, local subscribers get every event, the end is kept."""
    down = SharedRedis(
        f"redis://127.0.0.1:{closed_port()}/0",
        prefix="aymurai-test-down",
        replica_id="owner",
        lease_ttl_seconds=15,
    )
    try:
        job = owner_job(down)
        local: list[int] = []
        with anyio.fail_after(seconds(30)):
            async with anyio.create_task_group() as group:

                async def follow() -> None:
                    async for item in job.follow(keepalive_seconds=None):
                        assert not isinstance(item, Keepalive)
                        local.append(item[0].id)

                group.start_soon(follow)
                owner = Owner(job, group)
                await owner.publish(Queued(DOC_ID, 1))
                await owner.transcribe(10)
                await owner.finish()
        log = job.log
        assert isinstance(log, RedisEventLog)
        assert local == [event.id for event in log.kept]
        assert log.kept[-1].kind == "done" and log.unwritten_terminal is log.kept[-1]
        assert not down.available
    finally:
        await down.aclose()


async def test_a_remote_terminal_event_ends_a_running_mirror() -> None:
    """A replica that does not run the job ends it in the stream: the mirror sees it; first wins."""
    async with (
        shared_redis() as redis_a,
        other_replica(redis_a) as redis_b,
        other_replica(redis_a) as redis_c,
    ):
        job = owner_job(redis_a)
        mirror = mirror_of(job)
        interrupted = JobEvent(
            event_id(1, 1), "error", error_code="INTERRUPTED", error_detail="replica gone"
        )
        with anyio.fail_after(seconds(30)):
            async with anyio.create_task_group() as group:
                ended: list[JobEvent] = []
                group.start_soon(run_mirror, redis_b, mirror, ended)
                owner = Owner(job, group)
                await owner.transcribe(5)
                newest = job.log.latest
                assert newest is not None
                await wait_until_mirrored(mirror, newest.id)
                assert newest.id < interrupted.id
                stale = JobEvent(newest.id, "error", error_code="CANCELLED", error_detail="")
                kwargs = {"max_len": 256, "ended_ttl_seconds": ENDED_TTL}
                assert await append_terminal_remotely(redis_c, job.id, stale, **kwargs) is None
                written = await append_terminal_remotely(redis_c, job.id, interrupted, **kwargs)
                assert written is interrupted
                result = await mirror.wait_for_result()
                # The owner was not dead after all: its events are refused, its job goes on.
                await owner.transcribe(2)
                await owner.finish()

        assert ended[0].id == interrupted.id
        assert result == Failed("INTERRUPTED", "replica gone")
        later = JobEvent(event_id(2, 1), "error", error_code="CANCELLED", error_detail="")
        first = await append_terminal_remotely(redis_c, job.id, later)  # the settings' defaults
        assert first is not None and encodings(first) == encodings(interrupted)
        entries = await redis_a.client.xrange(stream_key(redis_a, job.id))
        assert int(entries[-1][0].split(b"-")[0]) == interrupted.id
        assert job.log.latest is not None and job.log.latest.kind == "done"  # locally
        assert 0 < await stream_ttl_ms(redis_a, job.id) <= ENDED_TTL * 1000


async def test_a_mirror_follows_a_takeover_into_the_next_epoch() -> None:
    """The owner dies; another replica runs the job on (epoch 1): the mirror goes on across."""
    async with shared_redis() as redis_a, other_replica(redis_a) as redis_b:
        first_run = owner_job(redis_a)
        second_run = owner_job(redis_a, job_id=first_run.id, epoch=1)
        mirror = mirror_of(first_run)
        with anyio.fail_after(seconds(30)):
            async with anyio.create_task_group() as group:
                group.start_soon(mirror_job, redis_b, mirror)
                first = Owner(first_run, group)
                await first.transcribe(20)
                second = Owner(second_run, group)
                second.script = first.script  # it resumes from the last committed point
                await second.transcribe(20)
                await second.finish()
                await mirror.wait_for_result()
                group.cancel_scope.cancel()  # the first run's recorder, never ended

        mirrored = kept(mirror)
        owned = [*kept(first_run), *kept(second_run)]
        assert [e.id for e in mirrored] == [e.id for e in owned]
        assert_same_events(mirrored, owned)
        assert mirror.epoch == 1 and mirrored[-1].id == EPOCH_SPAN + len(kept(second_run))


async def test_after_suspended_a_later_epoch_writes_on_and_a_new_mirror_skips_the_old_run() -> None:
    """`suspended` ends a run, not the job: the next run's events are accepted after it."""
    async with shared_redis() as redis_a, other_replica(redis_a) as redis_b:
        first_run = owner_job(redis_a)
        with anyio.fail_after(seconds(30)):
            async with anyio.create_task_group() as group:
                first = Owner(first_run, group)
                await first.transcribe(5)
                await first.finish(Suspended())
                mirror = mirror_of(first_run, epoch=1)  # built from the row of the next run
                group.start_soon(mirror_job, redis_b, mirror)
                second_run = owner_job(redis_a, job_id=first_run.id, epoch=1)
                second = Owner(second_run, group)
                await second.publish(Queued(DOC_ID, 2))
                await second.transcribe(5)
                await second.finish()
                result = await mirror.wait_for_result()

        assert isinstance(result, Done)
        assert_same_events(kept(mirror), kept(second_run))
        # Nothing of the first run (the mirror may have started at the second one's newest state).
        ids = [e.id for e in kept(mirror)]
        assert ids == [e.id for e in kept(second_run) if e.id >= ids[0]] and ids[0] > EPOCH_SPAN


async def test_mirror_rides_out_a_redis_outage_and_catches_up_past_trimmed_entries() -> None:
    """The mirror's Redis goes away while the stream moves on and is trimmed; it recovers."""
    redis_port = redis_port_of(require_redis())
    async with shared_redis() as redis_a, cutting_proxy(redis_port) as proxy:
        async with other_replica(redis_a, redis_url_of(proxy)) as redis_b:
            job = owner_job(redis_a, max_len=16)
            mirror = mirror_of(job)
            with anyio.fail_after(seconds(60)):
                async with anyio.create_task_group() as group:
                    lost = anyio.Event()
                    redis_b.on_availability(lambda available: None if available else lost.set())
                    group.start_soon(mirror_job, redis_b, mirror)
                    owner = Owner(job, group)
                    await owner.transcribe(10)
                    newest = job.log.latest
                    assert newest is not None
                    await wait_until_mirrored(mirror, newest.id)
                    # The outage: connections cut, new ones refused.
                    proxy.target_port = closed_port()
                    proxy.cut()
                    await lost.wait()
                    assert mirror.log.latest is not None
                    stuck = mirror.log.latest.id
                    await owner.transcribe(200)
                    assert mirror.log.latest.id == stuck, "nothing came through"
                    proxy.target_port = redis_port
                    await owner.transcribe(5)
                    await owner.finish()
                    result = await mirror.wait_for_result()

        mirrored = kept(mirror)
        assert_same_events(mirrored, kept(job))
        ids = [event.id for event in mirrored]
        before = ids[: ids.index(stuck) + 1]
        assert before == list(range(before[0], stuck + 1)) and ids[len(before)] > 100, "a gap"
        assert isinstance(result, Done) and redis_b.available


async def test_owner_outage_leaves_a_hole_that_the_next_full_state_closes() -> None:
    """The owner's Redis goes away for a while: the mirror skips the hole, then matches again."""
    redis_port = redis_port_of(require_redis())
    async with shared_redis() as redis_b, cutting_proxy(redis_port) as proxy:
        async with other_replica(redis_b, redis_url_of(proxy)) as redis_a:
            job = owner_job(redis_a)
            mirror = mirror_of(job)
            with anyio.fail_after(seconds(60)):
                async with anyio.create_task_group() as group:
                    group.start_soon(mirror_job, redis_b, mirror)
                    owner = Owner(job, group)
                    await owner.transcribe(20)
                    proxy.target_port = closed_port()
                    proxy.cut()
                    await owner.transcribe(5)  # not shared
                    assert not redis_a.available
                    proxy.target_port = redis_port
                    # Until the owner writes again (it retries after a pause), and past it.
                    while (latest := mirror.log.latest) is None or latest.id <= 25:
                        await owner.transcribe(1)
                        await anyio.sleep(0.01)  # a pace, as WLK's; bounded by fail_after
                    await owner.finish()
                    await mirror.wait_for_result()

        mirrored = kept(mirror)
        assert_same_events(mirrored, kept(job))
        after_hole = next(event for event in mirrored if event.id > 20)
        assert after_hole.id > 25 and after_hole.kind == "transcription"
        entry = await redis_b.client.xrange(
            stream_key(redis_b, job.id), f"{after_hole.id}-0", f"{after_hole.id}-0"
        )
        assert b"f" in entry[0][1] or b'"from_index":0' in entry[0][1][b"d"]


async def test_deltas_after_a_lost_entry_are_never_applied_to_the_wrong_paragraphs() -> None:
    """An entry missing (a failover lost it): the deltas after it wait for the next full state."""
    recorded = TranscriptionJob(
        document_id=DOC_ID, name="a.wav", total_seconds=600.0, log=MemoryEventLog(history=HISTORY)
    )
    with anyio.fail_after(seconds(30)):
        async with anyio.create_task_group() as group:
            owner = Owner(recorded, group)
            await owner.transcribe(20)
            await owner.finish()
    events = kept(recorded)
    assert all(e.delta is not None and e.delta.from_index > 0 for e in events[11:15])

    async with shared_redis() as redis_a, other_replica(redis_a) as redis_b:
        key = stream_key(redis_a, recorded.id)

        async def write(*selected: JobEvent) -> None:
            for event in selected:
                fields = encode_entry(event, full=event.id in (1, 16))
                await redis_a.client.xadd(key, fields, id=f"{event.id}-0")  # type: ignore[arg-type]

        mirror = mirror_of(recorded)
        with anyio.fail_after(seconds(30)):
            async with anyio.create_task_group() as group:
                group.start_soon(mirror_job, redis_b, mirror)
                await wait_until_blocked_in_xread(redis_a, redis_b)
                await write(*events[:11])
                await wait_until_mirrored(mirror, 11)
                await write(*events[12:15])  # 12 is lost: 13-15 cannot be applied
                await write(*events[15:])  # 16 carries the full document
                await mirror.wait_for_result()

    ids = [event.id for event in kept(mirror)]
    assert ids[:11] == list(range(1, 12)) and not set(ids) & {12, 13, 14, 15}
    assert ids[-1] == events[-1].id
    assert_same_events(kept(mirror), events)
