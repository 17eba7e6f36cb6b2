"""A minimal WebDriver BiDi client (asyncio, `websockets`), and a launcher for stock Firefox.

Playwright cannot drive Debian's `firefox-esr`, and geckodriver is not packaged, but Firefox
speaks WebDriver BiDi itself: `--remote-debugging-port` opens a WebSocket server whose `/session`
endpoint accepts BiDi commands directly. The names below follow the WebDriver BiDi specification:
a *command* `{id, method, params}` gets a *response* with the same `id`, either
`{type: "success", result}` or `{type: "error", error, message, stacktrace}`; an *event*
`{type: "event", method, params}` has no `id`. Script results are *remote values*, turned into
Python values by `deserialize()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Preferences for an offline, quiet test profile (the machine has no internet; connections out
# are refused, so anything Firefox fetches in the background only adds noise and delay).
FIREFOX_PREFS: dict[str, bool | int | str] = {
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "app.update.auto": False,
    "app.update.disabledForTesting": True,
    "browser.aboutwelcome.enabled": False,
    "browser.discovery.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.search.update": False,
    "browser.sessionstore.resume_from_crash": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.tabs.warnOnClose": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "extensions.getAddons.cache.enabled": False,
    "extensions.update.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.http.speculative-parallel-limit": 0,
    "network.prefetch-next": False,
    "services.settings.server": "http://127.0.0.1:9/remote-settings",
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.unified": False,
}


class BiDiError(Exception):
    """An error response to a command: `error` is the spec's error code (`no such element`…)."""

    def __init__(self, method: str, error: str, message: str, stacktrace: str = "") -> None:
        super().__init__(f"{method}: {error}: {message}")
        self.method = method
        self.error = error
        self.message = message
        self.stacktrace = stacktrace


class ScriptException(Exception):
    """`script.evaluate`/`script.callFunction` ended with a thrown exception in the page."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(details.get("text", "exception in the page"))
        self.details = details


class BiDiClient:
    """One WebSocket connection to a BiDi remote end; `send()` a command and await its result."""

    def __init__(self, websocket: ClientConnection) -> None:
        self._websocket = websocket
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self._closed: BaseException | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, *, timeout_seconds: float = 10.0) -> AsyncIterator[BiDiClient]:
        """Open `url` (`ws://host:port/session`); close the connection when the block exits."""
        # Screenshots arrive as one base64 message of several megabytes.
        async with connect(
            url, open_timeout=timeout_seconds, max_size=64 * 2**20, proxy=None
        ) as ws:
            client = cls(ws)
            try:
                yield client
            finally:
                await client._stop()

    def on(self, method: str, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener(params)` for each event `method` (subscribe with `session.subscribe`)."""
        self._listeners.setdefault(method, []).append(listener)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, timeout_seconds: float = 10.0
    ) -> dict[str, Any]:
        """Send a command and return its `result`; raise BiDiError on an error response."""
        if self._closed is not None:
            raise ConnectionError(f"{method}: the BiDi connection is closed") from self._closed
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = (method, future)
        try:
            message = {"id": command_id, "method": method, "params": params or {}}
            await self._websocket.send(json.dumps(message))
            async with asyncio.timeout(timeout_seconds):
                return await future
        except TimeoutError:
            raise TimeoutError(f"{method}: no response within {timeout_seconds:g} s") from None
        finally:
            self._pending.pop(command_id, None)

    async def _read(self) -> None:
        try:
            async for raw in self._websocket:
                self._dispatch(json.loads(raw))
        except ConnectionClosed as error:
            self._fail_pending(error)
        except Exception as error:  # a malformed message: nothing more can be trusted
            self._fail_pending(error)
            raise
        else:
            self._fail_pending(ConnectionError("the BiDi connection was closed"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "event":
            for listener in self._listeners.get(message["method"], []):
                listener(message["params"])
            return
        command_id = message.get("id")
        if command_id is None:
            # An error that cannot be tied to a command (e.g. unparsable JSON): fail them all.
            self._fail_pending(
                BiDiError("?", message.get("error", "?"), message.get("message", ""))
            )
            return
        method, future = self._pending.get(command_id, ("?", None))
        if future is None or future.done():
            return
        if kind == "success":
            future.set_result(message["result"])
        else:
            future.set_exception(
                BiDiError(
                    method,
                    message.get("error", "unknown error"),
                    message.get("message", ""),
                    message.get("stacktrace", ""),
                )
            )

    def _fail_pending(self, error: BaseException) -> None:
        self._closed = error
        for method, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(ConnectionError(f"{method}: connection lost ({error})"))

    async def _stop(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    # Conveniences over `script.callFunction`; `context` is a browsing context id.

    async def call(
        self, context: str, function: str, *args: Any, timeout_seconds: float = 10.0
    ) -> dict[str, Any]:
        """Call `function` (JS source) in `context` with JSON-like `args`; return the remote value.

        The result is a remote value (use `deserialize()`); a node keeps its `sharedId`, which
        commands such as `input.setFiles` accept as an element reference.
        """
        result = await self.send(
            "script.callFunction",
            {
                "functionDeclaration": function,
                "arguments": [serialize(arg) for arg in args],
                "target": {"context": context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
            timeout_seconds=timeout_seconds,
        )
        if result["type"] == "exception":
            raise ScriptException(result["exceptionDetails"])
        return result["result"]  # type: ignore[no-any-return]

    async def evaluate(
        self, context: str, expression: str, *, timeout_seconds: float = 10.0
    ) -> Any:
        """Evaluate `expression` in `context` (promises awaited); return it as a Python value."""
        result = await self.send(
            "script.evaluate",
            {
                "expression": expression,
                "target": {"context": context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
            timeout_seconds=timeout_seconds,
        )
        if result["type"] == "exception":
            raise ScriptException(result["exceptionDetails"])
        return deserialize(result["result"])

    async def element(self, context: str, selector: str) -> dict[str, str]:
        """A shared reference `{sharedId}` to the first element matching `selector`."""
        node = await self.call(context, "(s) => document.querySelector(s)", selector)
        if node["type"] != "node":
            raise LookupError(f"no element matches {selector!r}")
        return {"sharedId": node["sharedId"]}

    async def click(self, context: str, selector: str) -> None:
        """A real mouse click in the middle of the element (`input.performActions`).

        BiDi does not scroll the element into view first: it must be inside the viewport.
        """
        element = await self.element(context, selector)
        await self.send(
            "input.performActions",
            {
                "context": context,
                "actions": [
                    {
                        "type": "pointer",
                        "id": "mouse",
                        "parameters": {"pointerType": "mouse"},
                        "actions": [
                            {
                                "type": "pointerMove",
                                "x": 0,
                                "y": 0,
                                "origin": {"type": "element", "element": element},
                            },
                            {"type": "pointerDown", "button": 0},
                            {"type": "pointerUp", "button": 0},
                        ],
                    }
                ],
            },
        )
        await self.send("input.releaseActions", {"context": context})


def serialize(value: Any) -> dict[str, Any]:
    """A Python value as a BiDi *local value* (primitives, lists and str-keyed dicts)."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, int | float):
        return {"type": "number", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, list | tuple):
        return {"type": "array", "value": [serialize(item) for item in value]}
    if isinstance(value, dict):
        return {"type": "object", "value": [[str(k), serialize(v)] for k, v in value.items()]}
    raise TypeError(f"cannot send {type(value).__name__} to the page")


_SPECIAL_NUMBERS = {"NaN": float("nan"), "-0": -0.0, "Infinity": float("inf")}


def deserialize(remote: dict[str, Any]) -> Any:
    """A BiDi *remote value* as a Python value; nodes, windows and the like stay as they are."""
    kind = remote["type"]
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return remote["value"]
    if kind == "number":
        value = remote["value"]
        if isinstance(value, str):
            return _SPECIAL_NUMBERS.get(value, float("-inf"))
        return value
    if kind == "bigint":
        return int(remote["value"])
    if kind in ("array", "set") and "value" in remote:
        return [deserialize(item) for item in remote["value"]]
    if kind in ("object", "map") and "value" in remote:
        return {
            key if isinstance(key, str) else deserialize(key): deserialize(value)
            for key, value in remote["value"]
        }
    return remote


# Stock Firefox with its BiDi server on a port of its own choosing.


@dataclass
class Firefox:
    process: asyncio.subprocess.Process
    profile: Path
    log: Path
    websocket_url: str  # ws://127.0.0.1:<port>, without the /session path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.asynccontextmanager
async def launch_firefox(
    executable: Path, *, timeout_seconds: float = 30.0, shutdown_timeout_seconds: float = 10.0
) -> AsyncIterator[Firefox]:
    """Start headless Firefox on a fresh profile; stop it and delete the profile on exit.

    `--remote-debugging-port=0` lets Firefox pick a free port (no race with other processes); it
    announces the port in `WebDriverBiDiServer.json` in the profile. On exit the process (in its
    own process group, with its content processes) gets SIGTERM, then SIGKILL after
    `shutdown_timeout_seconds`.
    """
    workdir = Path(tempfile.mkdtemp(prefix="aymurai-firefox-"))
    profile = workdir / "profile"
    profile.mkdir()
    (profile / "user.js").write_text(
        "".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in FIREFOX_PREFS.items()
        ),
        encoding="utf-8",
    )
    log = workdir / "firefox.log"
    process: asyncio.subprocess.Process | None = None
    try:
        with log.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                str(executable),
                "--headless",
                "--no-remote",
                "--remote-debugging-port=0",
                "--profile",
                str(profile),
                "about:blank",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1", "MOZ_HEADLESS": "1"},
            )
        firefox = Firefox(process, profile, log, websocket_url="")
        announced = profile / "WebDriverBiDiServer.json"
        try:
            async with asyncio.timeout(timeout_seconds):
                while True:
                    if process.returncode is not None:
                        raise RuntimeError(
                            f"Firefox exited with {process.returncode}:\n{firefox.log_tail()}"
                        )
                    with contextlib.suppress(OSError, ValueError):
                        server = json.loads(announced.read_text(encoding="utf-8"))
                        firefox.websocket_url = f"ws://{server['ws_host']}:{server['ws_port']}"
                        break
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise TimeoutError(
                f"Firefox did not open its BiDi port within {timeout_seconds:g} s:\n"
                + firefox.log_tail()
            ) from None
        yield firefox
    finally:
        if process is not None:
            await _stop_process_group(process, shutdown_timeout_seconds)
        shutil.rmtree(workdir, ignore_errors=True)


async def _stop_process_group(process: asyncio.subprocess.Process, timeout_seconds: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        try:
            async with asyncio.timeout(timeout_seconds):
                await process.wait()
        except TimeoutError:
            continue
        # The parent is gone; content processes still in its group are stopped too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return
