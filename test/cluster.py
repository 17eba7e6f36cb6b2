"""Several gateway replicas as real processes, behind a round-robin balancer, in front of several
WLK simulators (also processes): the harness of the distributed-mode tests (issue 12).

`run_cluster()` starts, in a test's `tmp_path`:

- K simulators (`aymurai-wlk-simulator`), each logging to `sim-<k>.log`; `session_stats()`
  reads the `session N opened (M open)` lines back, so a test proves a per-server session cap
  from the servers' own point of view, whichever replica opened the sessions;
- N `aymurai-api` replicas (`replica-<i>.log`, then `replica-<i>.<n>.log` after each restart),
  all with the same database, spool folder, events token secret and `TRANSCRIBE_WS_URI` (every
  simulator, `#max_sessions=<cap>` each), a distinct `TRANSCRIBE_REPLICA_ID`, and, when a Redis
  URL is given, the same `TRANSCRIBE_REDIS_URL` under a fresh key prefix (deleted afterwards);
- a `RoundRobinBalancer` (test/balancer.py) in front of the replicas.

A replica can run under libfaketime with its wall clock shifted (`faketime={1: "+45s"}`) while
its monotonic clock stays true (`FAKETIME_DONT_FAKE_MONOTONIC=1`: asyncio's timers and anyio's
clock are untouched, only `time.time()`, `datetime.now()`, the `Date` header… move). Tests that
use it need the library: `require_faketime()` skips locally and fails in CI (`make
install-faketime` installs it).

The database is the caller's: a fresh PostgreSQL database (`test.postgres.
fresh_postgres_database()`, the `postgres_database` fixture of test/distributed) for several
replicas; without one, the replicas share a SQLite file (fine for one replica).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from aymurai.distributed.connection import SharedRedis
from test.audio_fixtures import make_audio_file
from test.balancer import RoundRobinBalancer, round_robin_balancer
from test.e2e import require, seconds
from test.processes import GatewayProcess, free_port, free_ports, run_gateway_process
from test.redis import delete_prefix, fresh_prefix

# --- libfaketime ------------------------------------------------------------------------------

FAKETIME_LIBRARY_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",  # Debian/Ubuntu (multiarch)
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def faketime_library() -> Path | None:
    """The preloadable libfaketime (AYMURAI_TEST_FAKETIME_LIB overrides the search), or None."""
    override = os.environ.get("AYMURAI_TEST_FAKETIME_LIB")
    if override:
        return Path(override) if Path(override).is_file() else None
    for pattern in FAKETIME_LIBRARY_GLOBS:
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[0]
    return None


def require_faketime() -> Path:
    """libfaketime's path; skips locally and fails in CI when it is not installed."""
    library = faketime_library()
    require(library is not None, "libfaketime is not installed (make install-faketime)")
    assert library is not None
    return library


def faketime_env(offset: str, library: Path) -> dict[str, str]:
    """The environment that shifts a process's wall clock by `offset` (e.g. "+45s", "-45s")."""
    preload = [str(library), *filter(None, os.environ.get("LD_PRELOAD", "").split(":"))]
    return {
        "LD_PRELOAD": ":".join(preload),
        "FAKETIME": offset,
        # asyncio (and anyio) time everything on the monotonic clock: keep it true, or every
        # timeout of the replica would move with the offset.
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


# --- simulators -------------------------------------------------------------------------------

_SESSION_OPENED = re.compile(r"session (\d+) opened \((\d+) open\)")
_SESSION_CLOSED = re.compile(r"session (\d+) closed \(.*?([\d.]+) s of audio\)")
_LOG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"  # logging's asctime: local time, milliseconds


@dataclass
class SessionStats:
    """What one simulator's log says about its sessions."""

    opened: int = 0
    closed: int = 0
    max_open: int = 0
    """The most sessions open at once, as the simulator counted them."""
    opened_at: list[datetime] = field(default_factory=list)
    """Wall-clock (local, naive) time of each session's opening, in order."""
    audio_seconds: dict[int, float] = field(default_factory=dict)
    """Audio each closed session received, by session number."""


def parse_session_log(lines: Sequence[str]) -> SessionStats:
    stats = SessionStats()
    for line in lines:
        if match := _SESSION_OPENED.search(line):
            stats.opened += 1
            stats.max_open = max(stats.max_open, int(match.group(2)))
            stats.opened_at.append(datetime.strptime(line[:23], _LOG_TIME_FORMAT))
        elif match := _SESSION_CLOSED.search(line):
            stats.closed += 1
            stats.audio_seconds[int(match.group(1))] = float(match.group(2))
    return stats


@dataclass
class SimulatorProcess:
    process: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/asr"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()

    def session_stats(self) -> SessionStats:
        return parse_session_log(self.log_lines())


@asynccontextmanager
async def run_simulator_process(
    log_path: Path, *, speed: float, port: int | None = None, extra_args: Sequence[str] = ()
) -> AsyncIterator[SimulatorProcess]:
    """`aymurai-wlk-simulator` on 127.0.0.1, logging to `log_path`; stopped with SIGTERM."""
    port = port or free_port()
    script = Path(sys.executable).parent / "aymurai-wlk-simulator"
    require(script.exists(), f"{script} is not installed (make install)")
    command = [str(script), "--host", "127.0.0.1", "--port", str(port), "--speed", str(speed)]
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *command,
            *extra_args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    simulator = SimulatorProcess(process, port, log_path)
    try:
        async with asyncio.timeout(seconds(20)):
            while not any("serving " in line for line in simulator.log_lines()):
                if process.returncode is not None:
                    raise AssertionError(
                        "the simulator exited:\n" + "\n".join(simulator.log_lines())
                    )
                await asyncio.sleep(0.05)
        yield simulator
    finally:
        if process.returncode is None:
            process.terminate()  # closes its open sessions (1001), then exits
            try:
                async with asyncio.timeout(seconds(5)):
                    await process.wait()
            except TimeoutError:
                process.kill()
        await process.wait()


# --- audio ------------------------------------------------------------------------------------


def tone_file(directory: Path, hz: int, audio_seconds: float = 2.0) -> Path:
    """A WAV of one tone: the simulator transcribes it as `tone_words(hz, audio_seconds)`.
    Different tones are different documents (never coalesced). The simulator names a word after
    the peak frequency rounded to 10 Hz: use multiples of 10 (495 Hz may read as "f500")."""
    return make_audio_file(
        directory,
        fmt="wav_s16",
        seconds=audio_seconds,
        tone_hz=hz,
        name=f"tone-{hz}-{audio_seconds:g}s",
    )


def tone_words(hz: int, audio_seconds: float = 2.0) -> list[str]:
    """The simulator's transcript of `tone_file(…, hz, audio_seconds)`: one word per 0.5 s."""
    return [f"f{hz}"] * int(audio_seconds / 0.5)


# --- the cluster ------------------------------------------------------------------------------


def no_keepalive_client(base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that opens a new connection per request (so a round-robin balancer
    sends consecutive requests to consecutive replicas)."""
    kwargs.setdefault("timeout", httpx.Timeout(seconds(30)))
    return httpx.AsyncClient(
        base_url=base_url, limits=httpx.Limits(max_keepalive_connections=0), **kwargs
    )


@dataclass
class Replica:
    index: int
    replica_id: str
    port: int
    env: dict[str, str]
    incarnations: list[GatewayProcess] = field(default_factory=list)
    """Every process started for this replica, the current one last."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> GatewayProcess:
        return self.incarnations[-1]

    @property
    def alive(self) -> bool:
        return bool(self.incarnations) and self.process.running

    def log_lines(self) -> list[str]:
        """The log of every incarnation, oldest first."""
        return [line for process in self.incarnations for line in process.log_lines()]


@dataclass
class Cluster:
    workdir: Path
    ws_uri: str
    database_uri: str
    spool_dir: Path
    """The spool every replica mounts; with `shared_spool=False`, each has `<it>-<index>`."""
    shared_spool: bool
    grace_seconds: float
    simulators: list[SimulatorProcess]
    replicas: list[Replica]
    balancer: RoundRobinBalancer
    redis: SharedRedis | None
    """A client on the replicas' Redis and key prefix (None when they run without Redis)."""
    _stack: AsyncExitStack

    @property
    def url(self) -> str:
        """The balancer's base URL: what a client of the service uses."""
        return self.balancer.url

    def replica_url(self, index: int) -> str:
        return self.replicas[index].url

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A client of the balancer, one connection (so one replica in turn) per request."""
        return no_keepalive_client(self.url, **kwargs)

    def replica_client(self, index: int, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", httpx.Timeout(seconds(30)))
        return httpx.AsyncClient(base_url=self.replica_url(index), **kwargs)

    def session_stats(self) -> list[SessionStats]:
        """Per simulator, in `TRANSCRIBE_WS_URI` order."""
        return [simulator.session_stats() for simulator in self.simulators]

    def log_lines(self, index: int) -> list[str]:
        return self.replicas[index].log_lines()

    async def kill(self, index: int) -> None:
        """SIGKILL replica `index`: no shutdown code runs (a crash, an OOM kill)."""
        await self.replicas[index].process.kill()

    async def terminate(self, index: int, *, timeout_seconds: float | None = None) -> int:
        """SIGTERM replica `index` and wait for it to drain and exit; its exit code."""
        timeout = timeout_seconds or seconds(self.grace_seconds + 10)
        return await self.replicas[index].process.terminate(timeout)

    async def restart(self, index: int) -> GatewayProcess:
        """Start replica `index` again on the same port (SIGTERM first if it still runs)."""
        replica = self.replicas[index]
        if replica.alive:
            await self.terminate(index)
        await self._start(replica)
        return replica.process

    def spool_of(self, index: int) -> Path:
        if self.shared_spool:
            return self.spool_dir
        own = self.spool_dir.with_name(f"{self.spool_dir.name}-{index}")
        own.mkdir(exist_ok=True)
        return own

    async def _start(self, replica: Replica) -> None:
        restarts = len(replica.incarnations)
        name = f"replica-{replica.index}" + (f".{restarts}" if restarts else "")
        process = await self._stack.enter_async_context(
            run_gateway_process(
                self.workdir,
                ws_uri=self.ws_uri,
                grace_seconds=self.grace_seconds,
                name=name,
                port=replica.port,
                database_uri=self.database_uri,
                spool_dir=self.spool_of(replica.index),
                **replica.env,
            )
        )
        replica.incarnations.append(process)


@asynccontextmanager
async def run_cluster(
    tmp_path: Path,
    *,
    replicas: int = 3,
    simulators: int = 2,
    max_sessions: int = 1,
    speed: float = 4.0,
    database_uri: str | None = None,
    redis_url: str | None = None,
    lease_ttl_seconds: float | None = None,
    faketime: Mapping[int, str] | None = None,
    grace_seconds: float = 2.0,
    shared_spool: bool = True,
    **env: str,
) -> AsyncIterator[Cluster]:
    """Simulators, replicas and a balancer as described in the module docstring.

    `max_sessions` is each simulator's cap in `TRANSCRIBE_WS_URI`; `speed` the simulators'
    processing speed (× real time); `shared_spool` False gives each replica its own spool
    folder (storage the others cannot read); `faketime` maps a replica index to its clock offset;
    `env` is added to every replica's environment. Replicas start at once (as a deploy does)
    and the block runs once every /healthz answers; on exit the replicas are killed, the
    simulators stopped and the Redis prefix deleted.
    """
    library = require_faketime() if faketime else None
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(exist_ok=True)
    async with AsyncExitStack() as stack:
        sims = [
            await stack.enter_async_context(
                run_simulator_process(tmp_path / f"sim-{k}.log", speed=speed)
            )
            for k in range(simulators)
        ]
        ws_uri = ",".join(f"{sim.url}#max_sessions={max_sessions}" for sim in sims)
        shared_env = {"TRANSCRIBE_EVENTS_TOKEN_SECRET": secrets.token_hex(16), **env}
        shared: SharedRedis | None = None
        if redis_url is not None:
            prefix = fresh_prefix()
            shared = SharedRedis(
                redis_url,
                prefix=prefix,
                replica_id="test-cluster",
                lease_ttl_seconds=lease_ttl_seconds or 15.0,
            )
            stack.push_async_callback(shared.aclose)
            stack.push_async_callback(delete_prefix, shared)
            shared_env |= {"TRANSCRIBE_REDIS_URL": redis_url, "TRANSCRIBE_REDIS_PREFIX": prefix}
            if lease_ttl_seconds is not None:
                shared_env["TRANSCRIBE_REDIS_LEASE_TTL_SECONDS"] = str(lease_ttl_seconds)
        members = []
        # Distinct ports, all chosen before any replica binds: replicas start at once.
        ports = free_ports(replicas)
        for index in range(replicas):
            replica_env = {**shared_env, "TRANSCRIBE_REPLICA_ID": f"replica-{index}"}
            if faketime and index in faketime:
                assert library is not None
                replica_env |= faketime_env(faketime[index], library)
            members.append(Replica(index, f"replica-{index}", ports[index], replica_env))
        balancer = await stack.enter_async_context(
            round_robin_balancer([member.port for member in members])
        )
        cluster = Cluster(
            workdir=tmp_path,
            ws_uri=ws_uri,
            database_uri=database_uri or f"sqlite:///{tmp_path / 'gateway.db'}",
            spool_dir=spool_dir,
            shared_spool=shared_spool,
            grace_seconds=grace_seconds,
            simulators=sims,
            replicas=members,
            balancer=balancer,
            redis=shared,
            _stack=stack,
        )
        try:
            async with asyncio.TaskGroup() as group:
                for member in members:
                    group.create_task(cluster._start(member))
        except BaseExceptionGroup as failed:
            # The first failure as itself ("replica-1 exited: <its log>", a skip), not a group.
            raise failed.exceptions[0] from None
        yield cluster
