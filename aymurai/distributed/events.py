"""A job's events in a Redis stream, so that any replica can serve them (the owner's side).

One stream per job, `<prefix>:events:<job id>` (`stream_key`); entry ids are the events' own
ids (`<id>-0`), which only increase, also across epochs. The replica that runs a job writes its
events there through `RedisEventLog`; every other replica follows them with `mirror_job`
(`event_mirror.py`, re-exported here).

Entries are small: the kind and what the events stream needs to rebuild the event exactly
(`entries.py`). A `transcription` entry carries its delta; the full document only on the first
transcription entry a writer writes, every `FULL_EVERY` after it and the first after a failed
write, so a reader that starts late (or lost its place) finds a full state within the capped
stream. The stream is capped (`MAXLEN ~ max_len`) and expires: `RUNNING_TTL_SECONDS` after the
last event while the job runs, `ended_ttl_seconds` after its terminal event. The SQL database
stays the source of truth for finished jobs; the stream is only how they are watched live.

Redis failing never fails a job: `append()` logs and goes on, local subscribers read the memory
log as in single-process mode, and the job finishes and stores its result. Readers elsewhere see
a gap and catch up with the next full state.

Wiring (distributed mode):

- The replica that runs a job gives it `log=RedisEventLog(shared, job_id, max_len=…,
  ended_ttl_seconds=…)` (`TRANSCRIBE_REDIS_EVENTS_MAX_LEN`, `TRANSCRIBE_REDIS_EVENTS_TTL_SECONDS`);
  the recorder and the local subscribers are unchanged. When the job has ended, a non-None
  `log.unwritten_terminal` means Redis missed its terminal event: write it again later with
  `append_terminal_remotely` (mirrors elsewhere also watch the job's SQL row, see below).
- Another replica asked about an unfinished job it does not run builds a `TranscriptionJob` from
  the SQL row (same id, document_id, epoch, name, total_seconds, created_at, key_name; its own
  `MemoryEventLog`), and runs `mirror_job(shared, job)` in a task, one per job per replica,
  shared by its local subscribers: `follow()`, `wait_for_result()` and `updates()` then work as
  for a local job. It returns once the terminal event is mirrored (mark the job finished; its
  final status is the SQL row's); cancel it when the last local subscriber leaves (such a job's
  `on_unwatched` must stop the mirror, never cancel the job). Since Redis may have missed the
  end, end a mirror whose SQL row says finished as well (poll the row slowly).
- A replica ending a job it does not run (its owner died: `INTERRUPTED`; a `DELETE` of an
  orphaned job) calls `append_terminal_remotely(shared, job_id, event, ...)` with an id above any
  the dead run wrote (`event_id(row.epoch + 1, 1)`), and records the event it returns: its own,
  or the terminal event the stream already had (the owner's `done` just before it died). None:
  a newer run writes the stream, the job is alive.

`suspended` ends a run, not the job: a later epoch may write after it (a job released on SIGTERM
and taken over), whereas `done` and `error` are final. Writes that would break that order (an id
not above the stream's newest, anything after `done`/`error`) are refused by the script
atomically.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript

from aymurai.distributed.connection import SharedRedis
from aymurai.distributed.entries import decode_entry, encode_entry, stream_key
from aymurai.distributed.event_mirror import mirror_job
from aymurai.errors import SharedStateUnavailableError
from aymurai.transcription.channel import (
    DEFAULT_HISTORY,
    EPOCH_SPAN,
    JobEvent,
    MemoryEventLog,
    Read,
)

__all__ = [
    "RedisEventLog",
    "append_terminal_remotely",
    "mirror_job",
    "stream_key",
]

logger = logging.getLogger(__name__)

RUNNING_TTL_SECONDS = 6 * 3600
"""The stream's expiry while its job runs, renewed by every event: a job queued or silent for
this long has no live readers left that need its history (the SQL row has its state)."""
FULL_EVERY = 16
"""A full document at least every this many transcription entries (a late reader's start)."""
RETRY_SECONDS = 1.0
"""After a failed write, the next non-terminal event is written no sooner than this."""
# `append_terminal_remotely`'s defaults: TRANSCRIBE_REDIS_EVENTS_MAX_LEN's and _TTL_SECONDS'.
DEFAULT_MAX_LEN = 256
DEFAULT_ENDED_TTL_SECONDS = 600.0

# Appends one entry unless it would break the stream's order (see the module docstring);
# answers {"written"}, {"refused", <newest id>, <its fields>} or {"failed", <Redis' error>}.
# XADD runs under pcall so that a Redis refusing writes (OOM, MISCONF) is an answer, not an
# exception: redis-py's errors enter our code only as SharedStateUnavailableError.
APPEND_SCRIPT = f"""
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if top then
  local top_id = tonumber(string.match(top[1], '^%d+'))
  local id = tonumber(ARGV[1])
  local kind = top[2][2]
  if kind == 'done' or kind == 'error' or top_id >= id
    or (kind == 'suspended' and math.floor(top_id / {EPOCH_SPAN}) >= math.floor(id / {EPOCH_SPAN}))
  then
    return {{'refused', top[1], top[2]}}
  end
end
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[1] .. '-0',
  unpack(ARGV, 4))
if type(added) == 'table' and added.err then
  return {{'failed', added.err}}
end
redis.pcall('PEXPIRE', KEYS[1], ARGV[3])
return {{'written'}}
"""


@dataclass(frozen=True)
class _Answer:
    outcome: str  # "written" | "refused" | "failed"
    newest: JobEvent | None = None  # refused: the stream's newest entry, when it decodes alone
    problem: str = ""  # failed: what Redis said


async def _append(
    shared: SharedRedis,
    script: AsyncScript,
    job_id: str,
    event: JobEvent,
    fields: dict[bytes, bytes],
    *,
    max_len: int,
    ttl_seconds: float,
) -> _Answer:
    """Run the append script for one entry.

    Raises:
        SharedStateUnavailableError: Redis could not be reached.
    """
    args: list[bytes] = [str(event.id).encode(), str(max_len).encode()]
    args.append(str(max(1, int(ttl_seconds * 1000))).encode())
    for name, value in fields.items():
        args += [name, value]
    reply: list[Any] = await shared.call(
        lambda: script(keys=[stream_key(shared, job_id)], args=args)
    )
    outcome = _text(reply[0])
    if outcome == "refused":
        newest_id = int(_text(reply[1]).split("-", 1)[0])
        raw = reply[2]
        entry = {raw[i]: raw[i + 1] for i in range(0, len(raw), 2)}
        try:
            newest = decode_entry(newest_id, entry, None)
        except (ValueError, KeyError, TypeError):
            newest = None
        return _Answer("refused", newest=newest)
    if outcome == "failed":
        return _Answer("failed", problem=_text(reply[1]))
    return _Answer("written")


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisEventLog:
    """`EventLog` of a job this replica runs: its memory log, written through to Redis.

    Local subscribers read the memory log (as in single-process mode); `append` then writes the
    event to the job's stream for the other replicas, and never raises for Redis' sake.
    """

    def __init__(
        self,
        shared: SharedRedis,
        job_id: str,
        *,
        max_len: int,
        ended_ttl_seconds: float,
        running_ttl_seconds: float = RUNNING_TTL_SECONDS,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        self.job_id = job_id
        self.key = stream_key(shared, job_id)
        self.max_len = max_len
        self.ended_ttl_seconds = ended_ttl_seconds
        self.running_ttl_seconds = running_ttl_seconds
        self.unwritten_terminal: JobEvent | None = None
        """The terminal event when writing it failed (Redis down): see the module docstring."""
        self._shared = shared
        self._script = shared.client.register_script(APPEND_SCRIPT)
        self._memory = MemoryEventLog(history=history)
        self._since_full: int | None = None  # transcription entries since the last full one
        self._retry_at = 0.0
        self._failing = False  # logged once per outage, not per event
        self._refused = False

    @property
    def latest(self) -> JobEvent | None:
        return self._memory.latest

    @property
    def kept(self) -> list[JobEvent]:
        return self._memory.kept

    async def read_after(self, after_id: int, *, timeout_seconds: float | None) -> Read | None:
        return await self._memory.read_after(after_id, timeout_seconds=timeout_seconds)

    async def append(self, event: JobEvent) -> None:
        latest = self._memory.latest
        if latest is not None and latest.is_terminal:
            return  # the first terminal event is final
        await self._memory.append(event)
        if self._refused:
            return
        if not event.is_terminal and time.monotonic() < self._retry_at:
            self._since_full = None  # Redis is down: readers will need a full state again
            return
        full = event.kind == "transcription" and (
            self._since_full is None or self._since_full >= FULL_EVERY - 1
        )
        ttl = self.ended_ttl_seconds if event.is_terminal else self.running_ttl_seconds
        try:
            fields = encode_entry(event, full=full)
            answer = await _append(
                self._shared,
                self._script,
                self.job_id,
                event,
                fields,
                max_len=self.max_len,
                ttl_seconds=ttl,
            )
        except ValueError as exc:  # lone surrogates, pydantic serialisation errors
            logger.warning("job %s: event %d cannot be shared: %s", self.job_id, event.id, exc)
            self._since_full = None
            return
        except SharedStateUnavailableError:
            self._written(False, event, "Redis is unavailable")
            return
        if answer.outcome == "failed":
            self._written(False, event, answer.problem)
        elif answer.outcome == "refused":
            self._refused = True
            logger.warning(
                "job %s: its events stream has ended or moved on elsewhere (newest: %s); "
                "its events are no longer shared",
                self.job_id,
                answer.newest.kind if answer.newest is not None else "unknown",
            )
        else:
            self._written(True, event)
            if event.kind == "transcription":
                self._since_full = 0 if b"f" in fields else (self._since_full or 0) + 1

    def _written(self, ok: bool, event: JobEvent, problem: str = "") -> None:
        if ok:
            if self._failing:
                logger.info("job %s: its events are shared again", self.job_id)
            self._failing = False
            self._retry_at = 0.0
            return
        if not self._failing:
            # SharedRedis logs the outage itself; this says what it costs, once per job.
            logger.warning("job %s: events not shared (%s); the job goes on", self.job_id, problem)
        self._failing = True
        self._retry_at = time.monotonic() + RETRY_SECONDS
        self._since_full = None
        if event.is_terminal:
            self.unwritten_terminal = event


async def append_terminal_remotely(
    shared: SharedRedis,
    job_id: str,
    event: JobEvent,
    *,
    max_len: int = DEFAULT_MAX_LEN,
    ended_ttl_seconds: float = DEFAULT_ENDED_TTL_SECONDS,
) -> JobEvent | None:
    """Write the terminal `event` of a job this replica does not run (see the module docstring).

    Returns the terminal event that ends the stream: `event` once written, or the `done` /
    `error` the stream already ended with. None: the stream holds an event with an id at or
    above `event.id` that is not final (a newer run writes it; nothing was written).

    Raises:
        SharedStateUnavailableError: Redis could not be reached, or refused the write.
        ValueError: `event` is not terminal, or cannot be encoded.
    """
    if not event.is_terminal:
        raise ValueError(f"not a terminal event: {event.kind}")
    script = shared.client.register_script(APPEND_SCRIPT)
    answer = await _append(
        shared,
        script,
        job_id,
        event,
        encode_entry(event, full=True),
        max_len=max_len,
        ttl_seconds=ended_ttl_seconds,
    )
    if answer.outcome == "written":
        return event
    if answer.outcome == "failed":
        logger.error("job %s: Redis refused its terminal event: %s", job_id, answer.problem)
        raise SharedStateUnavailableError()
    newest = answer.newest
    if newest is not None and newest.kind in ("done", "error"):
        return newest
    return None
