"""Running the real `aymurai-asr` console script in tests: with pipes, or on a pseudo-terminal.

The gateway runs in the test's event loop (test/e2e.py), so the client runs through asyncio's
subprocess API and never blocks the loop. On a terminal, `render_screen` replays the bytes the CLI
wrote through a tiny terminal model, to check what a user would see.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import sys
import termios
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from test.e2e import seconds

CLI = Path(sys.executable).with_name("aymurai-asr")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"AYMURAI_URL", "COLUMNS", "LINES"}}
    env.update(extra)
    return env


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    """Start `aymurai-asr` with pipes (not a terminal); `finish()` it."""
    return await asyncio.create_subprocess_exec(
        str(CLI),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )


async def finish(
    process: asyncio.subprocess.Process, timeout_seconds: float = 60
) -> tuple[str, str]:
    """Wait for a started CLI, bounded in time (killed past it); its stdout and stderr."""
    try:
        async with asyncio.timeout(seconds(timeout_seconds)):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return stdout.decode(), stderr.decode()


async def run_cli(*args: str, timeout_seconds: float = 60.0) -> CliResult:
    """Run `aymurai-asr` with pipes and wait for it, bounded in time."""
    process = await start_cli(*args)
    stdout, stderr = await finish(process, timeout_seconds)
    assert process.returncode is not None
    return CliResult(process.returncode, stdout, stderr)


@dataclass
class TerminalRun:
    process: asyncio.subprocess.Process
    _output: asyncio.Task[bytes]

    async def wait(self, timeout_seconds: float = 60.0) -> str:
        """Everything the CLI wrote to the terminal, once it has exited."""
        async with asyncio.timeout(seconds(timeout_seconds)):
            raw = await self._output
            await self.process.wait()
        return raw.decode("utf-8", errors="replace")


@asynccontextmanager
async def run_cli_on_terminal(*args: str, columns: int) -> AsyncIterator[TerminalRun]:
    """Run `aymurai-asr` on a pseudo-terminal of 40 x `columns`; killed on exit if still up."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        *args,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=cli_env(TERM="xterm-256color"),
    )
    os.close(terminal)

    async def read_terminal() -> bytes:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = await asyncio.to_thread(os.read, controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    output = asyncio.create_task(read_terminal())
    try:
        yield TerminalRun(process, output)
    finally:
        os.close(controller)
        if process.returncode is None:
            process.kill()
            await process.wait()
        await asyncio.gather(output, return_exceptions=True)


CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def render_screen(output: str) -> list[str]:
    """Replay what rich writes (text, CR, LF, cursor up, erase line) onto a screen of lines."""
    lines = [""]
    row = col = 0
    index = 0
    while index < len(output):
        char = output[index]
        match = CSI.match(output, index)
        if match:
            params, command = match.groups()
            if command == "A":
                row = max(row - int(params or 1), 0)
            elif command == "K":
                lines[row] = "" if params == "2" else lines[row][:col]
            index = match.end()
            continue
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append("")
        elif char >= " ":
            line = lines[row].ljust(col)
            lines[row] = line[:col] + char + line[col + 1 :]
            col += 1
        index += 1
    return lines


def shown_paragraphs(screen: list[str]) -> list[str]:
    """The settled paragraphs on a rendered screen, without their `[mm:ss]` stamps."""
    return [line.split("] ", 1)[1].rstrip() for line in screen if line.startswith("[00:")]
