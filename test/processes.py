"""Running the gateway as operators do: a real process, configured only by its environment.

`run_gateway_process` starts it under `aymurai-api`, `uvicorn` or gunicorn on a free port, with
our settings from the parent's environment removed so they cannot leak in, and its log in a file.
Several can share one folder (replicas, see test/cluster.py): each then gets its own `name` (log
file), and they may share a spool folder and a database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from test.e2e import require, seconds

# Our environment variables; the parent's values must not leak into the subprocess.
OWN_ENV_PREFIXES = ("API_", "TRANSCRIBE_", "SQLALCHEMY_", "DB_", "LOG_", "CORS_")


def gateway_env(**values: str) -> dict[str, str]:
    """The test process's environment without any of our settings, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENV_PREFIXES)}
    env.update(values)
    return env


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports. Asked one at a time (each probe closed before the next),
    the system may hand out the same port twice: two processes then race for it."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    base_url: str
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()

    async def wait_exit(self, timeout_seconds: float) -> int:
        async with asyncio.timeout(timeout_seconds):
            return await self.process.wait()

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as after a crash or an OOM kill."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def terminate(self, timeout_seconds: float) -> int:
        """SIGTERM (what a process manager sends), then its exit code once it has drained."""
        if self.process.returncode is None:
            self.process.terminate()
        return await self.wait_exit(timeout_seconds)


SERVERS = ("aymurai-api", "uvicorn", "gunicorn")


def server_command(server: str, port: int, *, bin_dir: Path | None = None) -> list[str]:
    """How operators start the gateway under `server`, listening on 127.0.0.1:`port`.

    `bin_dir` is the virtualenv's bin folder (default: the one running the tests).
    """
    script = (bin_dir or Path(sys.executable).parent) / server
    require(script.exists(), f"{script} is not installed (make install)")
    if server == "aymurai-api":
        return [str(script)]  # host and port come from API_HOST / API_PORT
    if server == "uvicorn":
        return [str(script), "aymurai.api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    return [
        str(script),
        "--worker-class",
        "uvicorn.workers.UvicornWorker",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "aymurai.api.main:app",
    ]


@asynccontextmanager
async def run_gateway_process(
    tmp_path: Path,
    *,
    ws_uri: str,
    grace_seconds: float,
    log_format: str = "text",
    server: str = "aymurai-api",
    bin_dir: Path | None = None,
    name: str = "gateway",
    port: int | None = None,
    database_uri: str | None = None,
    spool_dir: Path | None = None,
    **env_overrides: str,
) -> AsyncIterator[GatewayProcess]:
    """Start the gateway under `server` and wait until /healthz answers; kill it on exit.

    Its log is `tmp_path/<name>.log` (overwritten). Defaults: a free port, the SQLite file
    `tmp_path/gateway.db`, the spool folder `tmp_path/spool`; `env_overrides` win over every
    variable set here.
    """
    port = port or free_port()
    command = server_command(server, port, bin_dir=bin_dir)
    spool = spool_dir or tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    defaults = {
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "SQLALCHEMY_DATABASE_URI": database_uri or f"sqlite:///{tmp_path / 'gateway.db'}",
        "TRANSCRIBE_WS_URI": ws_uri,
        "TRANSCRIBE_SPOOL_DIR": str(spool),
        "TRANSCRIBE_SHUTDOWN_GRACE_SECONDS": str(grace_seconds),
        "TRANSCRIBE_SSE_MIN_EVENT_INTERVAL_SECONDS": "0.05",
        "LOG_FORMAT": log_format,
        "LOG_LEVEL": "INFO",
    }
    env = gateway_env(**{**defaults, **env_overrides})
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=tmp_path,  # no stray .env from the repository
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    running = GatewayProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        await _wait_until_serving(running)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _wait_until_serving(gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        async with asyncio.timeout(seconds(30)):
            while True:
                if gateway.process.returncode is not None:
                    raise AssertionError(
                        f"{gateway.log_path.stem} exited:\n" + "\n".join(gateway.log_lines())
                    )
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
