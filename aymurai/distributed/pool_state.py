"""`PoolState` on Redis: the WLK servers' session slots and health, shared by every replica.

    pool:leases:<server>   zset  lease id → expiry (ms, Redis' clock)
    pool:health:<server>   hash  state, consecutive failures, problem
    pool:failures:<server> zset  failure id → when (ms): the recent failures that break ties

A slot is a lease with a TTL, renewed by the replica holding it every TTL/3 (`renew()`): the cap of
each server holds across replicas, and the slots of a replica that dies free themselves within
the TTL. The lease id is chosen here before the script runs, so a request cancelled while the
script is in flight still gives back what it may have taken (a cancelled request leaks nothing).

Health is shared too: a server marked down by one replica is down for all (each replica still
probes it back on its own schedule). When Redis cannot be reached, reads answer the last
statuses seen and health changes are kept for later; taking a new slot needs Redis.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from dataclasses import replace

import anyio

from aymurai.distributed.connection import SharedRedis
from aymurai.errors import SharedStateUnavailableError
from aymurai.transcription.backends import Backend
from aymurai.transcription.pool import (
    FAILURES_TO_MARK_DOWN,
    RECENT_FAILURES_WINDOW_SECONDS,
    BackendState,
    BackendStatus,
)

logger = logging.getLogger(__name__)

_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: per server (leases, health, failures). ARGV: ttl_ms, window_ms, then per server
# (cap, allowed 0/1). Returns one row per server: {in_use, state, consecutive, problem, recent}.
_STATUSES = (
    _NOW
    + """
local now = now_ms()
local window = tonumber(ARGV[2])
local rows = {}
for i = 1, #KEYS, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. now)
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 2], '-inf', '(' .. (now - window))
  local health = redis.call('HMGET', KEYS[i + 1], 'state', 'consecutive', 'problem')
  rows[#rows + 1] = {
    redis.call('ZCARD', KEYS[i]), health[1] or 'up', health[2] or '0', health[3] or '',
    redis.call('ZCARD', KEYS[i + 2])
  }
end
return rows
"""
)

# KEYS as above. ARGV: lease id, ttl_ms, window_ms, allow_down 0/1, then per server (cap,
# avoided 0/1). Returns the index (1-based) of the server leased, or 0.
_LEASE = (
    _NOW
    + """
local now = now_ms()
local lease, ttl, window, allow_down = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local best, best_rank = 0, nil
for i = 1, #KEYS, 3 do
  local n = (i - 1) / 3
  local cap, avoided = tonumber(ARGV[5 + 2 * n]), ARGV[6 + 2 * n] == '1'
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. now)
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 2], '-inf', '(' .. (now - window))
  local free = cap - redis.call('ZCARD', KEYS[i])
  local up = (redis.call('HGET', KEYS[i + 1], 'state') or 'up') == 'up'
  if free > 0 and not avoided and (up or allow_down) then
    -- Best: up, most free slots, fewest recent failures, listed first.
    local rank = {up and 0 or 1, -free, redis.call('ZCARD', KEYS[i + 2]), n}
    local better = best_rank == nil
    if not better then
      for k = 1, 4 do
        if rank[k] ~= best_rank[k] then better = rank[k] < best_rank[k]; break end
      end
    end
    if better then best, best_rank = n + 1, rank end
  end
end
if best > 0 then redis.call('ZADD', KEYS[(best - 1) * 3 + 1], now + ttl, lease) end
return best
"""
)

# KEYS: leases of one server. ARGV: ttl_ms, lease ids. Renews (or puts back) each lease.
_RENEW = (
    _NOW
    + """
local now = now_ms()
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
return 1
"""
)

# KEYS: health, failures. ARGV: problem, mark_down 0/1, failure id, window_ms, threshold.
_FAILURE = (
    _NOW
    + """
local now = now_ms()
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[4])))
local consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
local up = (redis.call('HGET', KEYS[1], 'state') or 'up') == 'up'
if ARGV[2] == '1' or consecutive >= tonumber(ARGV[5]) or not up then
  redis.call('HSET', KEYS[1], 'state', 'down', 'problem', ARGV[1])
end
return 1
"""
)


class RedisPoolState:
    """`PoolState` shared by every replica through Redis (see the module docstring)."""

    def __init__(self, shared: SharedRedis, backends: list[Backend]) -> None:
        self._shared = shared
        self._backends = list(backends)
        self._keys: list[str] = []
        for backend in self._backends:
            self._keys += [
                shared.key("pool", "leases", backend.name),
                shared.key("pool", "health", backend.name),
                shared.key("pool", "failures", backend.name),
            ]
        self._held: dict[str, list[str]] = defaultdict(list)  # server → this replica's leases
        self._unreleased: dict[str, set[str]] = defaultdict(set)
        self._last: list[BackendStatus] = [BackendStatus(backend=b) for b in self._backends]
        self._checked_at: dict[str, float] = {b.name: -math.inf for b in self._backends}
        client = shared.client
        self._statuses = client.register_script(_STATUSES)
        self._lease = client.register_script(_LEASE)
        self._renew = client.register_script(_RENEW)
        self._failure = client.register_script(_FAILURE)

    @property
    def _window_ms(self) -> int:
        return int(RECENT_FAILURES_WINDOW_SECONDS * 1000)

    def _index(self, name: str) -> int:
        return next(i for i, b in enumerate(self._backends) if b.name == name)

    async def lease(self, *, avoid: frozenset[str], allow_down: bool) -> Backend | None:
        lease_id = uuid.uuid4().hex
        args: list[str | int] = [
            lease_id,
            self._shared.lease_ttl_ms,
            self._window_ms,
            "1" if allow_down else "0",
        ]
        for backend in self._backends:
            args += [backend.max_sessions, "1" if backend.name in avoid else "0"]
        try:
            chosen = int(await self._shared.call(lambda: self._lease(keys=self._keys, args=args)))
        except BaseException:
            # Cancelled (or failed) while the script ran: it may have taken a slot; give it back.
            with anyio.CancelScope(shield=True):
                for backend in self._backends:
                    self._unreleased[backend.name].add(lease_id)
                    await self._release_in_redis(backend.name, lease_id)
            raise
        if chosen == 0:
            return None
        backend = self._backends[chosen - 1]
        self._held[backend.name].append(lease_id)
        return backend

    async def release(self, name: str) -> None:
        held = self._held.get(name)
        if not held:
            return
        lease_id = held.pop()
        self._unreleased[name].add(lease_id)
        with anyio.CancelScope(shield=True):
            await self._release_in_redis(name, lease_id)

    async def _release_in_redis(self, name: str, lease_id: str) -> None:
        key = self._keys[self._index(name) * 3]
        try:
            with anyio.fail_after(5):
                await self._shared.call(lambda: self._shared.client.zrem(key, lease_id))
        except (SharedStateUnavailableError, TimeoutError):
            return  # retried by `renew()`; the lease expires anyway
        self._unreleased[name].discard(lease_id)

    async def record_success(self, name: str) -> BackendStatus:
        key = self._keys[self._index(name) * 3 + 1]
        self._checked_at[name] = anyio.current_time()
        try:
            await self._shared.call(
                lambda: self._shared.client.hset(
                    key, mapping={"state": "up", "consecutive": 0, "problem": ""}
                )
            )
        except SharedStateUnavailableError:
            pass
        return await self._status(name)

    async def record_failure(self, name: str, problem: str, *, mark_down: bool) -> BackendStatus:
        index = self._index(name)
        keys = [self._keys[index * 3 + 1], self._keys[index * 3 + 2]]
        args: list[str | int] = [
            problem,
            "1" if mark_down else "0",
            uuid.uuid4().hex,
            self._window_ms,
            FAILURES_TO_MARK_DOWN,
        ]
        try:
            await self._shared.call(lambda: self._failure(keys=keys, args=args))
        except SharedStateUnavailableError:
            pass
        return await self._status(name)

    async def _status(self, name: str) -> BackendStatus:
        return next(s for s in await self.statuses() if s.backend.name == name)

    async def statuses(self) -> list[BackendStatus]:
        args: list[str | int] = [self._shared.lease_ttl_ms, self._window_ms]
        try:
            rows = await self._shared.call(lambda: self._statuses(keys=self._keys, args=args))
        except SharedStateUnavailableError:
            return list(self._last)  # the last known: readiness says Redis is down anyway
        statuses = []
        for backend, row in zip(self._backends, rows, strict=True):
            in_use, state, consecutive, problem, recent = row
            state_text = _text(state)
            statuses.append(
                BackendStatus(
                    backend=backend,
                    state=BackendState.UP if state_text == "up" else BackendState.DOWN,
                    in_use=int(in_use),
                    consecutive_failures=int(consecutive),
                    recent_failures=int(recent),
                    problem=(_text(problem) or None) if state_text != "up" else None,
                    checked_at=self._checked_at[backend.name],
                )
            )
        self._last = statuses
        return [replace(s) for s in statuses]

    async def renew(self) -> None:
        """Renew this replica's leases (putting back any Redis lost); retry failed releases."""
        for name, lease_ids in list(self._unreleased.items()):
            for lease_id in list(lease_ids):
                await self._release_in_redis(name, lease_id)
        for name, held in self._held.items():
            if held:
                key = self._keys[self._index(name) * 3]
                args: list[str | int] = [self._shared.lease_ttl_ms, *held]
                await self._shared.call(lambda k=key, a=args: self._renew(keys=[k], args=a))  # type: ignore[misc]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
