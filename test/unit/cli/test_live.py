"""The terminal view, drawn into an in-memory terminal."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from aymurai.cli.live import LiveView, make_view
from aymurai.cli.main import choose_format, main
from aymurai.cli.stream import Done, Progress, Queued, Upstream
from aymurai.transcription.schemas import ASRDocument, ASRParagraph


def make_document(*texts: str, current: float, total: float = 10.0) -> ASRDocument:
    paragraphs = [
        ASRParagraph(paragraph_id=f"p{i}", speaker_no=1, start=i, end=i + 1, text=text)
        for i, text in enumerate(texts)
    ]
    return ASRDocument(
        document_id=uuid.UUID(int=1), document=paragraphs, current_time=current, total_time=total
    )


def make_terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, height=24, color_system=None)
    return console, buffer


def test_live_view_prints_settled_paragraphs_once() -> None:
    """Settled paragraphs are printed once; the changing tail is only redrawn."""
    console, buffer = make_terminal()
    view = LiveView(console, filename="a.wav")
    try:
        view.show(Queued(position=3))
        view.show(Progress(make_document("alpha", current=1.0)))
        view.show(Progress(make_document("alpha", "beta", current=2.0)))
        view.show(Progress(make_document("alpha", "beta gamma", current=3.0)))
        view.show(Done(make_document("alpha", "beta gamma delta", current=10.0)))
    finally:
        view.close()
    output = buffer.getvalue()
    assert "Queued: position 3" in output
    assert output.count("Speaker 1: alpha") >= 2  # tail redraw(s), then printed once settled
    assert output.count("[00:00:01] Speaker 1: beta gamma delta") == 1
    assert "\x1b[" in output  # cursor movement: the region is rewritten in place
    assert "100%" in output


def test_live_view_shows_reconnecting_then_resumed() -> None:
    """An `upstream` event: "resuming from" while reconnecting, a resumed note afterwards."""
    console, buffer = make_terminal()
    view = LiveView(console, filename="a.wav")
    try:
        view.show(Progress(make_document("alpha", current=4.0)))
        view.show(Upstream("reconnecting", 1, 65.0))
        reconnecting = buffer.getvalue()
        view.show(Upstream("resumed", 1, 65.0))
        view.show(Progress(make_document("alpha", "beta", current=5.0)))
    finally:
        view.close()
    assert "resuming from 1:05 (attempt 1)" in reconnecting
    assert "resumed after losing the recognizer (1x, last from 1:05)" in buffer.getvalue()


def test_make_view_is_silent_off_terminal() -> None:
    """A console that is not a terminal gets the silent view and receives no bytes."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False)
    view = make_view(console, filename="a.wav", quiet=False)
    view.show(Done(make_document("alpha", current=10.0)))
    view.close()
    assert buffer.getvalue() == ""


def test_choose_format_follows_output_suffix() -> None:
    """--format wins; otherwise the --output suffix decides; otherwise txt."""
    assert choose_format("json", Path("x.srt")) == "json"
    assert choose_format(None, Path("x.VTT")) == "vtt"
    assert choose_format(None, Path("x.doc")) == "txt"
    assert choose_format(None, None) == "txt"


def test_live_view_cuts_a_tail_taller_than_the_screen() -> None:
    """A tail longer than the screen is shown from its end, prefixed with an ellipsis."""
    console = Console(file=io.StringIO(), force_terminal=True, width=40, height=8)
    view = LiveView(console, filename="a.wav")
    try:
        words = " ".join(f"w{i}" for i in range(300))
        view.show(Progress(make_document(words, current=1.0)))
        screen = Console(file=io.StringIO(), width=40, height=8, color_system=None)
        with screen.capture() as capture:
            screen.print(view._render())
    finally:
        view.close()
    lines = capture.get().splitlines()
    assert len(lines) <= screen.size.height
    assert lines[0].startswith("…")
    assert any("w299" in line for line in lines)


def test_main_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """`transcribe --help` lists every exit code and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["transcribe", "--help"])
    assert caught.value.code == 0
    help_text = capsys.readouterr().out
    for code in ("0 ", "3 ", "4 ", "5 ", "6 ", "7 ", "8 ", "130 "):
        assert f"\n  {code}" in help_text
    assert "INVALID_AUDIO" in help_text and "--no-cache" in help_text
