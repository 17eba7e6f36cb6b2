"""``WLKSimulator``: a real ``websockets`` server speaking the WhisperLiveKit ``/asr`` protocol.

It listens on 127.0.0.1 (port 0 by default, i.e. ephemeral) and runs one ``session.Session`` per
connection. The HTTP upgrade is checked in ``process_request``: any path ending in ``/asr`` is
served, query-string overrides are validated there (HTTP 400 on a bad value), and
``Fault.HANDSHAKE_REFUSED`` answers 503 as a server that is up but not ready would.

Server limits follow what WLK runs with under uvicorn (16 MiB messages, 32-message queue, pings
every 20 s with a 20 s timeout), not the ``websockets`` defaults, so a gateway meets the same
limits here as in production. ``stop()`` then ``start()`` reuses the same port, so readiness checks
can watch the upstream go away and come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from urllib.parse import parse_qsl, urlencode, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from aymurai.simulator.options import Fault, InvalidOptionError, SessionOptions, parse_fault
from aymurai.simulator.protocol import get_profile
from aymurai.simulator.recognizer import recognize_pcm
from aymurai.simulator.record import SessionRecord
from aymurai.simulator.session import Session

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 2**20  # uvicorn's ws_max_size default
MAX_QUEUE = 32  # uvicorn's ws_max_queue default
PING_INTERVAL_SECONDS = 20.0  # uvicorn's ws_ping_interval / ws_ping_timeout defaults
PING_TIMEOUT_SECONDS = 20.0
# Short, so stop() does not wait long on a client that never answers the closing handshake.
CLOSE_TIMEOUT_SECONDS = 2.0


class WLKSimulator:
    """A WLK ``/asr`` server with synthetic, audio-dependent transcripts.

    Use as ``async with WLKSimulator(...) as sim:``; ``sim.url`` is the endpoint. Constructor
    arguments are the defaults for every session; the query string of each connection may
    override them (see ``options``).

    Args:
        profile: WLK version to imitate, ``"0.2.17"`` (the fork) or ``"0.2.26"``.
        speed: Processing speed as a multiple of real time (audio seconds per wall second).
        fault: A ``Fault`` (or its name) injected into every session, or None.
        fault_after_seconds: Seconds of received audio after which mid-stream faults fire.
        fault_times: Fire the fault in the first N sessions only (0: in every session).
        diarization: Alternate speakers 1/2 at each long pause, fill ``buffer_diarization``.
        use_audio_worklet: The config's ``useAudioWorklet``; False means a container is expected.
        stall_seconds: Length of ``Fault.STALL``.
        snapshot_interval_seconds: Emission tick (50 ms on the real server).
        pause_seconds: Shortest pause shown as a silence line (and a speaker turn).
        host: Interface to listen on.
        port: Port to listen on; 0 picks a free one at the first ``start()``.

    Raises:
        ValueError: an unknown profile or fault, or a non-positive speed or interval.
    """

    def __init__(
        self,
        profile: str = "0.2.26",
        speed: float = 50.0,
        fault: Fault | str | None = None,
        fault_after_seconds: float = 2.0,
        diarization: bool = False,
        use_audio_worklet: bool = True,
        stall_seconds: float = 30.0,
        snapshot_interval_seconds: float = 0.05,
        pause_seconds: float = 2.0,
        *,
        fault_times: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.options = SessionOptions(
            profile=get_profile(profile),
            speed=speed,
            fault=parse_fault(fault) if isinstance(fault, str) else fault,
            fault_after_seconds=fault_after_seconds,
            diarization=diarization,
            use_audio_worklet=use_audio_worklet,
            stall_seconds=stall_seconds,
            snapshot_interval_seconds=snapshot_interval_seconds,
            pause_seconds=pause_seconds,
            fault_times=fault_times,
        )
        self.host = host
        self._port = port
        self.sessions: list[SessionRecord] = []
        self.max_concurrent_sessions = 0
        self.open_sessions = 0
        self.refused_handshakes = 0
        self.faults_fired = 0
        """Faults fired so far, across sessions (what ``fault_times`` counts)."""
        self._server: Server | None = None
        self._stopping = asyncio.Event()
        self._changed: asyncio.Condition | None = None
        self._changed_loop: asyncio.AbstractEventLoop | None = None

    # Lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (on the same port as before after a ``stop()``)."""
        if self._server is not None:
            return
        self._stopping = asyncio.Event()
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=MAX_QUEUE,
            ping_interval=PING_INTERVAL_SECONDS,
            ping_timeout=PING_TIMEOUT_SECONDS,
            close_timeout=CLOSE_TIMEOUT_SECONDS,
        )
        if self._port == 0:
            self._port = int(next(iter(self._server.sockets)).getsockname()[1])
        logger.info("WLK simulator (%s) listening on %s", self.options.profile.name, self.url)

    async def stop(self) -> None:
        """Stop listening and close open sessions with 1001; returns when all handlers are done."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.close(close_connections=True)
        await server.wait_closed()

    async def __aenter__(self) -> WLKSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def is_serving(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the simulator has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/asr"

    def url_for(self, **params: object) -> str:
        """``url`` with a query string, e.g. ``url_for(fault="tcp_drop", profile="0.2.17")``."""
        if not params:
            return self.url
        return f"{self.url}?{urlencode({k: _query_value(v) for k, v in params.items()})}"

    # Test helpers -------------------------------------------------------------------------

    def expected_words(self, pcm: bytes | bytearray) -> list[str]:
        """The words the recognizer yields for 16 kHz s16le mono PCM (what 0.2.26 ends with)."""
        return recognize_pcm(pcm)

    # The test-facing API takes `timeout=` like asyncio.wait_for; hence the ASYNC109 waivers.
    async def wait_for_sessions(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[SessionRecord]:
        """Wait until at least ``n`` sessions have been accepted.

        Raises:
            TimeoutError: fewer than ``n`` after ``timeout`` seconds.
        """
        await self._wait_until(lambda: len(self.sessions) >= n, timeout)
        return self.sessions

    async def wait_for_session_closed(
        self,
        index: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SessionRecord:
        """Wait until session ``index`` (in connection order) exists and its socket is closed.

        Raises:
            TimeoutError: not closed after ``timeout`` seconds.
        """
        await self._wait_until(
            lambda: len(self.sessions) > index and self.sessions[index].is_closed, timeout
        )
        return self.sessions[index]

    async def _wait_until(self, predicate: Callable[[], bool], timeout_seconds: float) -> None:
        changed = self._condition()
        async with asyncio.timeout(timeout_seconds), changed:
            await changed.wait_for(predicate)

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()

    def _condition(self) -> asyncio.Condition:
        # A Condition binds to the loop that first uses it; a simulator kept across tests may be
        # driven by a new loop each time, so make one per loop.
        loop = asyncio.get_running_loop()
        if self._changed is None or self._changed_loop is not loop:
            self._changed = asyncio.Condition()
            self._changed_loop = loop
        return self._changed

    # Connections --------------------------------------------------------------------------

    def _session_options(self, query: str) -> SessionOptions:
        return self.options.with_query(dict(parse_qsl(query, keep_blank_values=True)))

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if not url.path.endswith("/asr"):
            # uvicorn answers a WebSocket to an unknown route with 403.
            return connection.respond(HTTPStatus.FORBIDDEN, "No such WebSocket endpoint\n")
        try:
            options = self._session_options(url.query)
        except InvalidOptionError as exc:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"{exc}\n")
        if options.fault is Fault.HANDSHAKE_REFUSED and self._claim_fault(options):
            self.refused_handshakes += 1
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, "Simulated: server not ready\n"
            )
        return None

    def _claim_fault(self, options: SessionOptions) -> bool:
        if options.fault_times and self.faults_fired >= options.fault_times:
            return False
        self.faults_fired += 1
        return True

    async def _handle(self, connection: ServerConnection) -> None:
        url = urlsplit(connection.request.path if connection.request else "")
        options = self._session_options(url.query)  # already validated by _process_request
        record = SessionRecord(
            path=url.path,
            query=url.query,
            profile=options.profile.name,
            fault=options.fault,
            opened_at=time.monotonic(),
        )
        self.sessions.append(record)
        self.open_sessions += 1
        self.max_concurrent_sessions = max(self.max_concurrent_sessions, self.open_sessions)
        index = len(self.sessions) - 1
        # The open count is logged so a per-server session cap can be checked from the log.
        logger.info(
            "session %d opened (%d open): %s",
            index,
            self.open_sessions,
            connection.request.path if connection.request else "",
        )
        await self._notify()
        try:
            await Session(
                connection,
                options,
                record,
                self._stopping,
                claim_fault=lambda: self._claim_fault(options),
            ).run()
            await connection.wait_closed()
        finally:
            record.closed_at = time.monotonic()
            close_rcvd = connection.protocol.close_rcvd
            record.close_code = close_rcvd.code if close_rcvd is not None else None
            self.open_sessions -= 1
            logger.info(
                "session %d closed (client close code %s, %.2f s of audio)",
                index,
                record.close_code,
                record.audio_seconds,
            )
            await self._notify()


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Fault):
        return value.value
    return str(value)
