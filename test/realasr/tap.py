"""A recording WebSocket proxy between the gateway and WLK: what did WLK actually send?

`WlkTap(upstream)` listens on 127.0.0.1:0 in its own thread and event loop (so it outlives any
test's loop and can be shared by a session-scoped fixture). Each client connection opens one
upstream connection to the same path and becomes a `TapSession`: every text message WLK sent
(parsed JSON, in order, with its arrival time), the PCM bytes the client sent and when each side
closed. Frames are forwarded unchanged, in both directions, as they come.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

START_TIMEOUT_S = 10.0


@dataclass
class TapSession:
    """One proxied `/asr` connection."""

    opened_at: float
    messages: list[dict[str, Any]] = field(default_factory=list)  # WLK → client, parsed
    message_times: list[float] = field(default_factory=list)
    client_bytes: int = 0
    client_frames: int = 0
    client_closed_at: float | None = None  # the gateway side ended
    upstream_closed_at: float | None = None  # the WLK side ended
    done: threading.Event = field(default_factory=threading.Event)

    def snapshots(self) -> list[dict[str, Any]]:
        """WLK's status snapshots (messages with `lines`), in order."""
        return [m for m in self.messages if "lines" in m]

    def dump(self, path: Path) -> Path:
        """Write the session (messages with their times from the open, byte counts) as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "client_bytes": self.client_bytes,
            "client_frames": self.client_frames,
            "messages": [
                {"t": round(t - self.opened_at, 3), "message": m}
                for t, m in zip(self.message_times, self.messages, strict=False)
            ],
        }
        path.write_text(json.dumps(record, indent=1))
        return path

    def final_snapshot(self) -> dict[str, Any] | None:
        snapshots = self.snapshots()
        return snapshots[-1] if snapshots else None


class WlkTap:
    """Proxy ws://127.0.0.1:PORT/<path> → `upstream_base`/<path>, recording every session."""

    def __init__(self, upstream_base: str) -> None:
        self._upstream_base = upstream_base.rstrip("/")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="wlk-tap", daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._sessions: list[TapSession] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/asr"

    @property
    def sessions(self) -> list[TapSession]:
        with self._lock:
            return list(self._sessions)

    def start(self) -> WlkTap:
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError("the WLK tap did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=START_TIMEOUT_S)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, max_size=None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._started.set()
            await self._stop.wait()

    async def _handle(self, client: ServerConnection) -> None:
        session = TapSession(opened_at=time.monotonic())
        with self._lock:
            self._sessions.append(session)
        path = client.request.path if client.request is not None else "/asr"
        try:
            async with connect(self._upstream_base + path, max_size=None) as upstream:

                async def client_to_upstream() -> None:
                    try:
                        async for frame in client:
                            if isinstance(frame, bytes):
                                session.client_bytes += len(frame)
                                session.client_frames += 1
                            await upstream.send(frame)
                    except websockets.ConnectionClosed:
                        pass
                    finally:
                        session.client_closed_at = time.monotonic()
                        await upstream.close()

                async def upstream_to_client() -> None:
                    try:
                        async for frame in upstream:
                            if isinstance(frame, str):
                                session.messages.append(json.loads(frame))
                                session.message_times.append(time.monotonic())
                            await client.send(frame)
                    except websockets.ConnectionClosed:
                        pass
                    finally:
                        session.upstream_closed_at = time.monotonic()
                        await client.close()

                await asyncio.gather(client_to_upstream(), upstream_to_client())
        finally:
            session.done.set()
