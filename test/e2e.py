"""End-to-end test helpers: a real gateway on a free port, and an incremental SSE reader.

The gateway runs as `uvicorn.Server(create_app(settings))` in a task of the test's event loop, on
127.0.0.1 with port 0; the client is httpx over a real TCP connection, reading the body as it
arrives (in-process test clients buffer the whole body and cannot see streaming or disconnects).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from aymurai.api.main import create_app
from aymurai.api.server import make_config
from aymurai.settings import Settings

T = TypeVar("T")

# Scale every test timeout on slow machines: AYMURAI_TEST_TIME_UNIT=2 doubles them.
TIME_UNIT = float(os.environ.get("AYMURAI_TEST_TIME_UNIT", "1"))


def seconds(value: float) -> float:
    return value * TIME_UNIT


def require(condition: bool, reason: str) -> None:
    """Skip locally when a dependency is missing, but fail in CI (CI=true), never skip there."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this tier)")
    pytest.skip(reason)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "sqlalchemy_database_uri": f"sqlite:///{tmp_path / 'gateway.db'}",
        "transcribe_spool_dir": str(_spool_dir(tmp_path)),
        "transcribe_sse_keepalive_seconds": 15.0,
        "transcribe_sse_min_event_interval_seconds": 0.05,
        "transcribe_ws_lead_budget_seconds": 20.0,
        "transcribe_ws_idle_timeout_seconds": 10.0,
        "transcribe_ws_ready_timeout_seconds": 10.0,
        "transcribe_shutdown_grace_seconds": 2.0,
        "transcribe_max_concurrent_sessions": 8,
        # Today's behaviour unless a test is about the grace: a client leaving cancels at once.
        "transcribe_detached_grace_seconds": 0.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _spool_dir(tmp_path: Path) -> Path:
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    return spool


def spooled_files(settings: Settings) -> list[Path]:
    """Uploads in the spool folder (the gateway's lock file is not one)."""
    assert settings.transcribe_spool_dir is not None
    return sorted(Path(settings.transcribe_spool_dir).glob("aymurai-upload-*"))


@dataclass
class RunningGateway:
    base_url: str
    settings: Settings
    server: uvicorn.Server
    app: Any

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", httpx.Timeout(seconds(30)))
        return httpx.AsyncClient(base_url=self.base_url, **kwargs)


@asynccontextmanager
async def run_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    """Serve `create_app(settings)` with uvicorn on a free port until the block exits."""
    app = create_app(settings)
    config = make_config(
        app,
        settings,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.transcribe_shutdown_grace_seconds) + 2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=None))
    try:
        async with asyncio.timeout(seconds(20)):
            while not server.started:
                if task.done():
                    # uvicorn exits (SystemExit) when the lifespan fails; its log says why.
                    raise RuntimeError("the gateway failed to start; see the captured log")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningGateway(f"http://127.0.0.1:{port}", settings, server, app)
    finally:
        server.should_exit = True
        async with asyncio.timeout(seconds(20)):
            try:
                await task
            except SystemExit:
                pass


@dataclass
class SSEFrame:
    event: str | None = None
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


async def iter_sse(response: httpx.Response) -> AsyncIterator[SSEFrame]:
    """Parse `text/event-stream` incrementally; a frame made only of comments is yielded too."""
    frame = SSEFrame()
    data_lines: list[str] = []
    seen_field = False
    async for line in response.aiter_lines():
        if line == "":
            if seen_field:
                frame.data = "\n".join(data_lines)
                yield frame
            frame, data_lines, seen_field = SSEFrame(), [], False
            continue
        seen_field = True
        if line.startswith(":"):
            frame.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            frame.event = value
        elif name == "data":
            data_lines.append(value)
        elif name == "id":
            frame.id = value


def upload_files(path: Path, filename: str | None = None) -> dict[str, Any]:
    return {"file": (filename or path.name, path.read_bytes(), "application/octet-stream")}


@dataclass
class StreamResult:
    status: int
    headers: httpx.Headers
    frames: list[SSEFrame]
    body: Any = None

    @property
    def events(self) -> list[SSEFrame]:
        return [frame for frame in self.frames if frame.event is not None]

    @property
    def last(self) -> SSEFrame:
        return self.events[-1]

    def of(self, event: str) -> list[SSEFrame]:
        return [frame for frame in self.events if frame.event == event]


async def stream_transcription(
    client: httpx.AsyncClient,
    path: Path,
    *,
    use_cache: bool = True,
    timeout_seconds: float = 30.0,
    headers: dict[str, str] | None = None,
) -> StreamResult:
    """Upload `path` to the SSE endpoint and read the whole stream (bounded in time)."""
    async with asyncio.timeout(seconds(timeout_seconds)):
        async with client.stream(
            "POST",
            "/asr/transcribe/stream",
            params={"use_cache": str(use_cache).lower()},
            files=upload_files(path),
            headers=headers,
        ) as response:
            if response.status_code != 200:
                await response.aread()
                return StreamResult(response.status_code, response.headers, [], response.json())
            frames = [frame async for frame in iter_sse(response)]
            return StreamResult(response.status_code, response.headers, frames)


def document_text(document: dict[str, Any]) -> str:
    return " ".join(paragraph["text"] for paragraph in document["document"])


def document_words(document: dict[str, Any]) -> list[str]:
    return document_text(document).split()


async def eventually(predicate: Any, *, timeout_seconds: float = 5.0, what: str = "") -> None:
    """Poll `predicate()` until true; fail after the (scaled) timeout."""
    deadline = asyncio.get_running_loop().time() + seconds(timeout_seconds)
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


async def poll_until(
    fetch: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout_seconds: float = 5.0,
    interval_seconds: float = 0.05,
    what: str = "",
) -> T:
    """`await fetch()` again until `accept(result)`; returns that result. Fails after the (scaled)
    timeout. For state that can only be asked for (an HTTP resource, Redis), not awaited."""
    deadline = asyncio.get_running_loop().time() + seconds(timeout_seconds)
    while not accept(result := await fetch()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or accept}; last: {result!r}")
        await asyncio.sleep(interval_seconds)
    return result


async def raw_http_request(
    base_url: str, head: bytes, body_chunks: Any, *, timeout_seconds: float = 10.0
) -> tuple[bytes, int]:
    """Send a hand-made HTTP request over a raw socket while reading the answer concurrently.

    Returns the response status line and how many body bytes were written before the server
    answered (so a test can tell the server stopped reading early).
    """
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    sent = 0
    try:
        async with asyncio.timeout(seconds(timeout_seconds)):
            writer.write(head)
            status_task = asyncio.create_task(reader.readline())
            for chunk in body_chunks:
                if status_task.done():
                    break
                writer.write(chunk)
                try:
                    await writer.drain()
                except ConnectionError:
                    break
                sent += len(chunk)
            status_line = await status_task
            return status_line, sent
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def assert_wire_times(documents: list[dict[str, Any]]) -> None:
    """Issue 10's time rules over a stream's documents in order (transcription events, then done).

    Every start, end, current_time and total_time is whole milliseconds; within the stream a
    paragraph's start and end (by paragraph_id) and current_time never decrease; end >= start.
    """
    bounds: dict[str, tuple[float, float]] = {}
    current = 0.0
    for index, document in enumerate(documents):
        for key in ("current_time", "total_time"):
            value = document.get(key)
            if value is not None:
                assert round(value, 3) == value, f"event {index}: {key} {value!r} is not whole ms"
        if document.get("current_time") is not None:
            assert document["current_time"] >= current, f"event {index}: current_time went back"
            current = document["current_time"]
        for paragraph in document["document"]:
            start, end, pid = paragraph["start"], paragraph["end"], paragraph["paragraph_id"]
            for value in (start, end):
                assert round(value, 3) == value, f"event {index} {pid}: {value!r} is not whole ms"
            assert end >= start, f"event {index} {pid}: end {end} < start {start}"
            if pid in bounds:
                before = bounds[pid]
                assert start >= before[0], f"event {index} {pid}: start {before[0]} -> {start}"
                assert end >= before[1], f"event {index} {pid}: end {before[1]} -> {end}"
            bounds[pid] = (start, end)
