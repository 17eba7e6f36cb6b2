"""`Admission` on Redis: one global fair queue and global session slots for every replica.

State (keys under the prefix), changed only by the Lua scripts below, atomically:

    adm:queue    zset  waiting ticket → order score (round × 2^24 + arrival number)
    adm:alive    zset  waiting ticket → heartbeat expiry (ms, Redis' clock)
    adm:active   zset  granted ticket → lease expiry (ms, Redis' clock)
    adm:key      hash  ticket → API key name
    adm:held     hash  API key name → tickets held (granted or waiting)
    adm:rounds   hash  API key name → the round of its newest ticket
    adm:round    str   the round of the newest granted ticket
    adm:seq      str   arrival counter

Order is Redis' (an arrival counter, never a replica's clock), and fairness is the memory queue's
round-robin across keys: a ticket's round is one past its key's previous ticket, but never before
the round being served, so a key that queued fifty files waits behind one file of the next key.
Without keys (one key, "") rounds simply count arrivals: FIFO.

Every ticket is a lease: its replica renews it every TTL/3 (`renew()`, from
`setup.Distributed.keep_leases`); a replica that dies stops renewing, so its granted slots free
themselves when the lease expires (TTL). A waiting ticket of
a dead replica stops counting in line at once at expiry but keeps its place for `ORPHAN_TTLS`
more TTLs, so a replica taking the job over (same ticket id: the job id) keeps its place.
A renewal that finds a ticket gone (Redis restarted empty) puts it back.

A waiting ticket polls its turn (a short script) every `POLL_SECONDS` × its position (at most
`POLL_MAX_SECONDS`), and at once when a ticket of its replica is released; a granted ticket's job
runs even while Redis is down, and its release is retried until Redis answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from aymurai.distributed.connection import SharedRedis
from aymurai.errors import (
    KeyLimitError,
    QueueFullError,
    SharedStateUnavailableError,
    ShuttingDownError,
)

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
POLL_MAX_SECONDS = 2.0
ORPHAN_TTLS = 3
RETRY_AFTER_SECONDS = 30

# Shared by every script: drop expired slots and long-orphaned waiting tickets.
_PURGE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function forget(ticket)
  local key = redis.call('HGET', K_KEY, ticket)
  if key then
    redis.call('HDEL', K_KEY, ticket)
    local held = redis.call('HINCRBY', K_HELD, key, -1)
    if held <= 0 then redis.call('HDEL', K_HELD, key) end
  end
end
local function purge(now, orphan_ms)
  for _, t in ipairs(redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', '(' .. now)) do
    redis.call('ZREM', K_ACTIVE, t)
    forget(t)
  end
  for _, t in ipairs(redis.call('ZRANGEBYSCORE', K_ALIVE, '-inf', '(' .. (now - orphan_ms))) do
    redis.call('ZREM', K_ALIVE, t)
    redis.call('ZREM', K_QUEUE, t)
    forget(t)
  end
end
-- Live waiting tickets ahead of `ticket` (all of them when ticket is false).
local function live_ahead(now, ticket)
  local members
  if ticket then
    local rank = redis.call('ZRANK', K_QUEUE, ticket)
    if not rank or rank == 0 then return 0 end
    members = redis.call('ZRANGE', K_QUEUE, 0, rank - 1)
  else
    members = redis.call('ZRANGE', K_QUEUE, 0, -1)
  end
  local count = 0
  for _, t in ipairs(members) do
    local alive = redis.call('ZSCORE', K_ALIVE, t)
    if alive and tonumber(alive) >= now then count = count + 1 end
  end
  return count
end
local function grant(ticket, now, ttl)
  local score = redis.call('ZSCORE', K_QUEUE, ticket)
  if score then
    local round = math.floor(tonumber(score) / 16777216)
    local current = tonumber(redis.call('GET', K_ROUND) or '0')
    if round > current then redis.call('SET', K_ROUND, round) end
  end
  redis.call('ZREM', K_QUEUE, ticket)
  redis.call('ZREM', K_ALIVE, ticket)
  redis.call('ZADD', K_ACTIVE, now + ttl, ticket)
end
local function enqueue(ticket, key, now, ttl)
  local current = tonumber(redis.call('GET', K_ROUND) or '0')
  local last = tonumber(redis.call('HGET', K_ROUNDS, key) or '0')
  local round = math.max(current, last + 1)
  redis.call('HSET', K_ROUNDS, key, round)
  local seq = redis.call('INCR', K_SEQ) % 16777216
  redis.call('ZADD', K_QUEUE, round * 16777216 + seq, ticket)
  redis.call('ZADD', K_ALIVE, now + ttl, ticket)
  return round
end
"""

_KEYS = """
local K_QUEUE, K_ALIVE, K_ACTIVE, K_KEY, K_HELD, K_ROUNDS, K_ROUND, K_SEQ =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
"""

# ARGV: ticket, key, limited (0/1), max_per_key (0 = none), max_active, max_queued, ttl_ms,
# orphan_ms. Returns {state, position}: state 'granted' | 'queued' | 'key_limit' | 'queue_full'.
_RESERVE = (
    _KEYS
    + _PURGE
    + """
local ticket, key = ARGV[1], ARGV[2]
local limited, max_per_key = ARGV[3] == '1', tonumber(ARGV[4])
local max_active, max_queued = tonumber(ARGV[5]), tonumber(ARGV[6])
local ttl, orphan_ms = tonumber(ARGV[7]), tonumber(ARGV[8])
local now = now_ms()
purge(now, orphan_ms)
if redis.call('ZSCORE', K_ACTIVE, ticket) then
  redis.call('ZADD', K_ACTIVE, now + ttl, ticket)
  return {'granted', 0}
end
if redis.call('ZSCORE', K_QUEUE, ticket) then
  -- Taken over from a dead replica: the same place in line.
  redis.call('ZADD', K_ALIVE, now + ttl, ticket)
  return {'queued', live_ahead(now, ticket) + 1}
end
local held = tonumber(redis.call('HGET', K_HELD, key) or '0')
if limited and max_per_key > 0 and held >= max_per_key then
  return {'key_limit', 0}
end
local waiting = live_ahead(now, false)
local free = max_active - redis.call('ZCARD', K_ACTIVE)
if waiting == 0 and free > 0 then
  local round = enqueue(ticket, key, now, ttl)
  grant(ticket, now, ttl)
  redis.call('HSET', K_KEY, ticket, key)
  redis.call('HINCRBY', K_HELD, key, 1)
  return {'granted', 0}
end
if waiting >= max_queued then
  return {'queue_full', 0}
end
enqueue(ticket, key, now, ttl)
redis.call('HSET', K_KEY, ticket, key)
redis.call('HINCRBY', K_HELD, key, 1)
return {'queued', live_ahead(now, ticket) + 1}
"""
)

# ARGV: ticket, max_active, ttl_ms, orphan_ms. Returns {state, position}: 'granted' | 'queued' |
# 'gone' (not in line any more: Redis lost it).
_POLL = (
    _KEYS
    + _PURGE
    + """
local ticket = ARGV[1]
local max_active, ttl, orphan_ms = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
purge(now, orphan_ms)
if redis.call('ZSCORE', K_ACTIVE, ticket) then return {'granted', 0} end
if not redis.call('ZSCORE', K_QUEUE, ticket) then return {'gone', 0} end
redis.call('ZADD', K_ALIVE, now + ttl, ticket)
local ahead = live_ahead(now, ticket)
local free = max_active - redis.call('ZCARD', K_ACTIVE)
if ahead < free then
  grant(ticket, now, ttl)
  return {'granted', 0}
end
return {'queued', ahead + 1}
"""
)

# ARGV: ttl_ms, then (ticket, key, granted 0/1) triples. Renews; puts back what Redis lost.
_RENEW = (
    _KEYS
    + _PURGE
    + """
local ttl = tonumber(ARGV[1])
local now = now_ms()
local restored = 0
for i = 2, #ARGV, 3 do
  local ticket, key, granted = ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1'
  if granted then
    if not redis.call('ZSCORE', K_ACTIVE, ticket) then restored = restored + 1 end
    redis.call('ZADD', K_ACTIVE, now + ttl, ticket)
  elseif redis.call('ZSCORE', K_QUEUE, ticket) then
    redis.call('ZADD', K_ALIVE, now + ttl, ticket)
  else
    enqueue(ticket, key, now, ttl)
    restored = restored + 1
  end
  if not redis.call('HGET', K_KEY, ticket) then
    redis.call('HSET', K_KEY, ticket, key)
    redis.call('HINCRBY', K_HELD, key, 1)
  end
end
return restored
"""
)

# ARGV: ticket. Frees its slot or its place in line; idempotent.
_RELEASE = (
    _KEYS
    + _PURGE
    + """
local ticket = ARGV[1]
redis.call('ZREM', K_ACTIVE, ticket)
redis.call('ZREM', K_QUEUE, ticket)
redis.call('ZREM', K_ALIVE, ticket)
forget(ticket)
return 1
"""
)

# Returns {active, live waiting}: for metrics and the README's operations notes.
_COUNTS = (
    _KEYS
    + _PURGE
    + """
local now = now_ms()
return {redis.call('ZCOUNT', K_ACTIVE, now, '+inf'), live_ahead(now, false)}
"""
)


class RedisTicket:
    """`AdmissionTicket` in the shared queue; its id is the job's id."""

    def __init__(self, admission: RedisAdmission, ticket_id: str, key: str) -> None:
        self._admission = admission
        self.id = ticket_id
        self.key = key
        self._granted = False
        self._refused = False
        self._released = False
        self._position: int | None = None
        self._on_position: Callable[[int], None] | None = None

    @property
    def is_granted(self) -> bool:
        return self._granted

    @property
    def position(self) -> int | None:
        return None if self._granted else self._position

    def _set_position(self, position: int) -> None:
        if position != self._position:
            self._position = position
            if self._on_position is not None:
                self._on_position(position)

    def _grant(self) -> None:
        self._granted = True
        self._position = None

    def refuse(self) -> None:
        self._refused = True

    async def wait(self, on_position: Callable[[int], None]) -> None:
        if self._granted:
            return
        self._on_position = on_position
        if self._position is not None:
            on_position(self._position)
        while not self._granted:
            if self._refused:
                raise ShuttingDownError()
            await self._admission.poll(self)
            if not self._granted:
                # The head of the line asks often; a ticket far behind, less (its turn is not
                # near, and every poll costs Redis a look at the line ahead of it).
                await self._admission.wait_for_change(
                    min(POLL_MAX_SECONDS, POLL_SECONDS * (self._position or 1))
                )
        self._on_position = None

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self._admission.release(self)


class RedisAdmission:
    """`Admission` shared by every replica through Redis (see the module docstring)."""

    def __init__(
        self,
        shared: SharedRedis,
        *,
        max_active: int,
        max_queued: int,
        max_per_key: int | None = None,
    ) -> None:
        self._shared = shared
        self.max_active = max_active
        self.max_queued = max_queued
        self.max_per_key = max_per_key
        self.closed = False
        self._tickets: dict[str, RedisTicket] = {}
        self._unreleased: set[str] = set()  # releases Redis did not get (down): retried
        self._changed = anyio.Event()
        self._keys = [
            shared.key("adm", name)
            for name in ("queue", "alive", "active", "key", "held", "rounds", "round", "seq")
        ]
        client = shared.client
        self._reserve = client.register_script(_RESERVE)
        self._poll = client.register_script(_POLL)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._counts = client.register_script(_COUNTS)

    # --- the Admission interface ------------------------------------------------------------
    @property
    def active(self) -> int:
        return sum(1 for t in self._tickets.values() if t.is_granted)

    @property
    def queued(self) -> int:
        return sum(1 for t in self._tickets.values() if not t.is_granted)

    def held_by_key(self) -> dict[str, int]:
        held: dict[str, int] = {}
        for ticket in self._tickets.values():
            held[ticket.key] = held.get(ticket.key, 0) + 1
        return held

    @property
    def _ttl_ms(self) -> int:
        return self._shared.lease_ttl_ms

    @property
    def _orphan_ms(self) -> int:
        return self._ttl_ms * ORPHAN_TTLS

    async def reserve(
        self, key: str = "", *, limited: bool = True, ticket_id: str | None = None
    ) -> RedisTicket:
        if self.closed:
            raise ShuttingDownError()
        assert ticket_id is not None, "shared tickets are named after their job"
        ticket = RedisTicket(self, ticket_id, key)
        self._tickets[ticket_id] = ticket
        try:
            state, position = await self._shared.call(
                lambda: self._reserve(
                    keys=self._keys,
                    args=[
                        ticket_id,
                        key,
                        "1" if limited else "0",
                        self.max_per_key or 0,
                        self.max_active,
                        self.max_queued,
                        self._ttl_ms,
                        self._orphan_ms,
                    ],
                )
            )
        except BaseException:
            # Cancelled or failed mid-call: the script may have run; give back what it took.
            del self._tickets[ticket_id]
            with anyio.CancelScope(shield=True):
                await self._release_in_redis(ticket_id)
            raise
        state = _text(state)
        if state in ("key_limit", "queue_full"):
            del self._tickets[ticket_id]
            if state == "key_limit":
                assert self.max_per_key is not None
                raise KeyLimitError(self.max_per_key, RETRY_AFTER_SECONDS)
            raise QueueFullError(RETRY_AFTER_SECONDS)
        if state == "granted":
            ticket._grant()
        else:
            ticket._set_position(int(position))
        return ticket

    def set_max_active(self, max_active: int) -> None:
        self.max_active = max_active
        self._wake()

    def close(self) -> None:
        self.closed = True
        for ticket in self._tickets.values():
            if not ticket.is_granted:
                ticket.refuse()
        self._wake()

    # --- tickets ------------------------------------------------------------------------------
    async def poll(self, ticket: RedisTicket) -> None:
        """Ask Redis whether `ticket`'s turn has come; a Redis outage just means "not yet"."""
        try:
            state, position = await self._shared.call(
                lambda: self._poll(
                    keys=self._keys,
                    args=[ticket.id, self.max_active, self._ttl_ms, self._orphan_ms],
                )
            )
        except SharedStateUnavailableError:
            return
        state = _text(state)
        if state == "granted":
            ticket._grant()
        elif state == "queued":
            ticket._set_position(int(position))
        # "gone": Redis lost it (restarted); the next renewal puts it back in line.

    async def wait_for_change(self, timeout_seconds: float) -> None:
        """Until a ticket of this replica is released, or `timeout_seconds` pass."""
        changed = self._changed
        with anyio.move_on_after(timeout_seconds):
            await changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def release(self, ticket: RedisTicket) -> None:
        self._tickets.pop(ticket.id, None)
        with anyio.CancelScope(shield=True):
            await self._release_in_redis(ticket.id)
        self._wake()

    async def _release_in_redis(self, ticket_id: str) -> None:
        try:
            with anyio.fail_after(5):
                await self._shared.call(lambda: self._release(keys=self._keys, args=[ticket_id]))
        except (SharedStateUnavailableError, TimeoutError):
            self._unreleased.add(ticket_id)  # retried by `renew()`; the lease expires anyway
        else:
            self._unreleased.discard(ticket_id)

    async def counts(self) -> tuple[int, int]:
        """Global (granted, waiting) tickets, as Redis has them now."""
        active, waiting = await self._shared.call(lambda: self._counts(keys=self._keys, args=[]))
        return int(active), int(waiting)

    # --- leases -------------------------------------------------------------------------------
    async def renew(self) -> None:
        """Renew every ticket of this replica (and put back what Redis lost); retry releases."""
        for ticket_id in list(self._unreleased):
            await self._release_in_redis(ticket_id)
        args: list[str | int] = [self._ttl_ms]
        for ticket in self._tickets.values():
            args += [ticket.id, ticket.key, "1" if ticket.is_granted else "0"]
        if len(args) == 1:
            return
        restored = await self._shared.call(lambda: self._renew(keys=self._keys, args=args))
        if int(restored):
            logger.warning("Redis had lost %d admission tickets of this replica", int(restored))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
