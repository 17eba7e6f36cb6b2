"""Start the drain on SIGTERM/SIGINT, whatever ASGI server runs the app.

uvicorn (`aymurai-api`, `uvicorn aymurai.api.main:app`) and gunicorn's UvicornWorker react to
SIGTERM by closing the listening socket and then *waiting for open connections* before they run
the lifespan's shutdown. An SSE stream is an open connection that lasts as long as its audio, so
a drain started from the lifespan's shutdown would never start: the process hung until killed
and the client was never told (issue 12). The drain must start at the signal itself.

We do it from the lifespan rather than by subclassing the server, so it holds under any server:
on startup we chain our handler in front of the one the server installed (`signal.signal`, which
uvicorn also uses so that handlers can be restored), and restore it on shutdown. Our handler
only schedules `begin_drain` on the event loop and then calls the server's handler, so the server
still does everything it normally does on that signal.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def drain_on_signals(begin_drain: Callable[[], None]) -> Iterator[None]:
    """Call `begin_drain` on the running loop at SIGTERM/SIGINT while the block runs.

    Outside the main thread (no signals can be handled there) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    drains: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def drain() -> None:
        # In a task, not a bare loop callback: anyio (which the drain uses to start its timer)
        # only knows which event loop runs when called from a task.
        begin_drain()

    def start_drain() -> None:
        task = loop.create_task(drain())
        drains.add(task)
        task.add_done_callback(drains.discard)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # This interrupts arbitrary code, maybe a request with its request id in context: hand
        # the drain to the loop (which also wakes it) in a clean context.
        loop.call_soon_threadsafe(start_drain, context=contextvars.Context())
        handler = previous.get(signum)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            # Nobody else handles it: behave as the default would, after scheduling the drain.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    for drain_signal in DRAIN_SIGNALS:
        previous[drain_signal] = signal.signal(drain_signal, on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is on_signal:
                signal.signal(signum, handler)
