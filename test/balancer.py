"""A small round-robin TCP load balancer for tests, in front of several gateway replicas.

What an operator's balancer does at layer 4, and nothing more: each accepted connection goes to
the next backend in turn and its bytes are piped both ways as they arrive (never buffered, so a
Server-Sent Events stream flows through as it is written). A backend that refuses the connection
(a replica that died) is skipped and the next one tried, so a test can kill a replica and keep
using the balancer's URL; `disable(i)` takes a backend out of the rotation on purpose (a drain).

Routing is per connection, not per request: an HTTP client that keeps its connection alive stays
on one replica. Use a client without keep-alive (test/cluster.py: `Cluster.client()`) to spread
consecutive requests over the replicas.

Closing: when the backend closes (or dies), the client's side is closed after the last byte, so
the client sees the stream end where the backend's did; when the client half-closes, the backend
gets the EOF and the response still flows back; an error on either side (a reset) aborts both at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

CHUNK_BYTES = 65536


class RoundRobinBalancer:
    def __init__(self, backend_ports: Sequence[int], *, host: str = "127.0.0.1") -> None:
        if not backend_ports:
            raise ValueError("a balancer needs at least one backend")
        self.host = host
        self.backend_ports = list(backend_ports)
        self.disabled: set[int] = set()
        self.routed: list[int] = []
        """The backend index of every connection forwarded, in order of arrival."""
        self.connect_failures = [0] * len(self.backend_ports)
        self.open_connections = [0] * len(self.backend_ports)
        self._next = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None, "the balancer is not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def disable(self, index: int) -> None:
        """Send no new connection to backend `index` (open ones are left alone)."""
        self.disabled.add(index)

    def enable(self, index: int) -> None:
        self.disabled.discard(index)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)

    async def stop(self) -> None:
        """Stop accepting, abort every open connection and wait for the pipes to end."""
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def _rotation(self) -> list[int]:
        """The enabled backends, starting with the next one in turn (and advancing the turn)."""
        count = len(self.backend_ports)
        order = [(self._next + offset) % count for offset in range(count)]
        self._next = (self._next + 1) % count
        return [index for index in order if index not in self.disabled]

    async def _connect(
        self,
    ) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for index in self._rotation():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.backend_ports[index])
            except OSError:
                self.connect_failures[index] += 1  # refused: dead or restarting; try the next
                continue
            return index, reader, writer
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._transports.add(writer.transport)
        try:
            upstream = await self._connect()
            if upstream is None:
                writer.transport.abort()  # no backend alive: the client sees a reset
                return
            index, up_reader, up_writer = upstream
            self.routed.append(index)
            self.open_connections[index] += 1
            self._transports.add(up_writer.transport)
            try:
                await self._pipe_both_ways(reader, writer, up_reader, up_writer)
            finally:
                self.open_connections[index] -= 1
                self._transports.discard(up_writer.transport)
        finally:
            self._transports.discard(writer.transport)
            self._tasks.discard(task)

    async def _pipe_both_ways(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        request = asyncio.create_task(_pipe(reader, up_writer))
        response = asyncio.create_task(_pipe(up_reader, writer))
        clean = False
        try:
            done, _ = await asyncio.wait({request, response}, return_when=asyncio.FIRST_COMPLETED)
            if response not in done and request.exception() is None:
                # The client half-closed (EOF passed on): the response still flows to the end.
                await asyncio.wait({response})
            clean = response.done() and response.exception() is None
        finally:
            for task in (request, response):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                    await task
            for side in (writer, up_writer):
                if clean:
                    side.close()  # FIN after the last byte: the backend ended the exchange
                else:
                    side.transport.abort()  # a reset on one side resets the other


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes as they arrive until EOF, then pass the EOF on; errors propagate."""
    while chunk := await reader.read(CHUNK_BYTES):
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof() and not writer.transport.is_closing():
        writer.write_eof()


@asynccontextmanager
async def round_robin_balancer(
    backend_ports: Sequence[int], *, host: str = "127.0.0.1"
) -> AsyncIterator[RoundRobinBalancer]:
    balancer = RoundRobinBalancer(backend_ports, host=host)
    await balancer.start()
    try:
        yield balancer
    finally:
        await balancer.stop()
