"""The real `aymurai-api` console script as a subprocess, configured only through its environment.

`gateway_process(directory, ...)` starts it on a free port with its database and spool directory
in `directory` and waits until /healthz answers; starting it again on the same directory is a
restart. `kill()` is `kill -9`. The process's output goes to a log file (read after it exits).
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    base_url: str
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as after a crash or an OOM kill."""
        self.process.kill()
        await self.process.wait()


@asynccontextmanager
async def gateway_process(
    directory: Path, *, ws_uri: str, name: str = "gateway", **env_overrides: str
) -> AsyncIterator[GatewayProcess]:
    """Start `aymurai-api` on `directory`'s database and spool; kill it on exit if still running."""
    script = Path(sys.executable).parent / "aymurai-api"
    require(script.exists(), f"{script} is not installed (pip install -e .)")
    port = free_port()
    spool = directory / "spool"
    spool.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENV_PREFIXES)}
    env.update(
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{directory / 'gateway.db'}",
        TRANSCRIBE_WS_URI=ws_uri,
        TRANSCRIBE_SPOOL_DIR=str(spool),
        TRANSCRIBE_SSE_MIN_EVENT_INTERVAL_SECONDS="0.05",
        LOG_LEVEL="INFO",
    )
    env.update(env_overrides)
    log_path = directory / f"{name}.log"
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(script),
            cwd=directory,  # no stray .env from the repository
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
                    raise AssertionError("aymurai-api exited:\n" + "\n".join(gateway.log_lines()))
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
