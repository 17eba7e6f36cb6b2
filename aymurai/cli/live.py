"""What the user sees while a transcription runs.

Two views share one small interface (`show(event)`, `close()`):

- `LiveView`, for a terminal: settled paragraphs are printed once, above a rich `Live` region that
  holds the changing tail (the last paragraph), a progress bar with elapsed time and ETA, and the
  queue position. Only that region is redrawn, in place, like a live caption.
- `SilentView`, for everything else (pipes, files, CI logs, `--quiet`): draws nothing, so the only
  output is the final result and, on failure, one error line.

A paragraph counts as settled once a later one exists. The gateway may still revise it (speaker
diarization); a terminal cannot un-print, so the revision shows only in the final result.
"""

from __future__ import annotations

import time
from typing import Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from aymurai.cli.stream import Done, Queued, StreamEvent, Upstream
from aymurai.transcription.formats import format_clock, speaker_label
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

REFRESH_PER_SECOND = 4


class View(Protocol):
    def show(self, event: StreamEvent) -> None: ...

    def close(self) -> None: ...


class SilentView:
    def show(self, event: StreamEvent) -> None:
        pass

    def close(self) -> None:
        pass


def paragraph_text(paragraph: ASRParagraph, *, tentative: bool = False) -> Text:
    text = Text()
    text.append(f"[{format_clock(paragraph.start)}] ", style="dim")
    text.append(f"{speaker_label(paragraph)}: ", style="bold cyan")
    text.append(" ".join(paragraph.text.split()), style="italic" if tentative else "")
    return text


def format_duration(seconds: float) -> str:
    total = int(max(seconds, 0.0))
    hours, minutes, secs = total // 3600, total // 60 % 60, total % 60
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LiveView:
    """The terminal view; `console` is normally stderr, so stdout stays the result."""

    def __init__(self, console: Console, *, filename: str) -> None:
        self._console = console
        self._filename = filename
        self._started = time.monotonic()
        self._document: ASRDocument | None = None
        self._printed = 0
        self._queue_position: int | None = None
        self._upstream: Upstream | None = None
        # (wall clock, audio seconds) when progress was first seen, for the ETA.
        self._rate_origin: tuple[float, float] | None = None
        self._done = False
        self._live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=REFRESH_PER_SECOND,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )
        self._live.start()

    def show(self, event: StreamEvent) -> None:
        if isinstance(event, Upstream):
            self._upstream = event
            self._live.refresh()
            return
        if isinstance(event, Queued):
            self._queue_position = event.position
            self._rate_origin = None
        else:
            self._queue_position = None
            self._document = event.document
            self._done = isinstance(event, Done)
            current = event.document.current_time
            if self._rate_origin is None and current is not None:
                self._rate_origin = (time.monotonic(), current)
            paragraphs = event.document.document
            settled = len(paragraphs) if self._done else len(paragraphs) - 1
            # rich renders the live region under `Live._lock` but writes a `console.print` after
            # releasing it, so its auto-refresh thread could slip a redraw in between and leave
            # a stale region on screen (seen under CI load: a paragraph shown twice). Holding
            # the (re-entrant) lock across print and refresh keeps render and write together.
            with self._live._lock:
                for paragraph in paragraphs[self._printed : settled]:
                    self._live.console.print(paragraph_text(paragraph))
                self._printed = max(self._printed, settled)
                self._live.refresh()
            return
        self._live.refresh()

    def close(self) -> None:
        self._live.stop()

    def _render(self) -> RenderableType:
        parts: list[RenderableType] = []
        if self._document is not None and not self._done:
            parts.extend(self._render_tail(self._document.document[self._printed :]))
        parts.append(self._render_status())
        return Group(*parts)

    def _render_tail(self, tail: list[ASRParagraph]) -> list[RenderableType]:
        # Keep the end of a long tail visible: a region taller than the screen cannot be redrawn.
        budget = max(self._console.size.height - 4, 1) * max(self._console.size.width, 20)
        rendered: list[RenderableType] = []
        for paragraph in reversed(tail):
            text = paragraph_text(paragraph, tentative=True)
            if len(text) > budget:
                text = Text("…") + text[len(text) - budget :]
            budget -= len(text)
            rendered.insert(0, text)
            if budget <= 0:
                break
        return rendered

    def _render_status(self) -> RenderableType:
        elapsed = time.monotonic() - self._started
        if self._queue_position is not None:
            return Text(
                f"Queued: position {self._queue_position} "
                f"(waiting for a free recognizer)  elapsed {format_duration(elapsed)}",
                style="yellow",
            )
        document = self._document
        if document is None:
            return Text(f"Uploading {self._filename}…  elapsed {format_duration(elapsed)}")
        upstream = self._upstream
        if upstream is not None and upstream.state == "reconnecting" and not self._done:
            return Text(
                f"Recognizer connection lost: resuming from {format_duration(upstream.resume_from)}"
                f" (attempt {upstream.attempt})  elapsed {format_duration(elapsed)}",
                style="yellow",
            )
        total = document.total_time
        current = document.current_time or 0.0
        if self._done and total is not None:
            current = total
        table = Table.grid(padding=(0, 1))
        if total:
            table.add_row(
                ProgressBar(total=total, completed=min(current, total), width=30),
                Text(f"{min(current / total, 1.0):4.0%}"),
                Text(f"{format_duration(current)} / {format_duration(total)} audio", style="dim"),
                Text(f"elapsed {format_duration(elapsed)}"),
                Text("done" if self._done else f"ETA {self._eta(current, total)}"),
            )
        if upstream is not None:  # resumed: say so, a reader may wonder about a seam
            note = Text(
                f"resumed after losing the recognizer ({upstream.attempt}x, last from "
                f"{format_duration(upstream.resume_from)})",
                style="yellow",
            )
            return Group(table, note)
        return table

    def _eta(self, current: float, total: float) -> str:
        if self._rate_origin is None:
            return "--:--"
        wall0, audio0 = self._rate_origin
        wall = time.monotonic() - wall0
        if wall < 1.0 or current <= audio0:
            return "--:--"
        rate = (current - audio0) / wall
        return format_duration((total - current) / rate)


def make_view(console: Console, *, filename: str, quiet: bool) -> View:
    """The live view when `console` is an interactive terminal, else a silent one."""
    if quiet or not console.is_terminal or console.is_dumb_terminal:
        return SilentView()
    return LiveView(console, filename=filename)
