"""The real `aymurai-asr` console script, as a subprocess, against a real gateway and simulator.

The gateway runs in the test's event loop (test/e2e.py), so the client runs with asyncio's
subprocess API and never blocks the loop. The pseudo-terminal test replays the bytes the CLI
wrote through a tiny terminal model to check what a user would see on screen.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import srt  # type: ignore[import-untyped]
import webvtt

from aymurai.simulator import WLKSimulator
from aymurai.transcription.schemas import ASRDocument
from test.audio_fixtures import make_audio_file, make_text_file
from test.cli_harness import (
    render_screen,
    run_cli,
    run_cli_on_terminal,
    shown_paragraphs,
)
from test.e2e import RunningGateway, make_settings, run_gateway

pytestmark = pytest.mark.integration

# 2 s of f440, a 2.5 s pause (a paragraph break in the simulator), 2 s of f880.
TONES = [(440.0, 2.0), (0.0, 2.5), (880.0, 2.0)]
WORDS = ["f440"] * 4 + ["f880"] * 4


async def fetch_document(gateway: RunningGateway, document_id: str) -> ASRDocument:
    async with gateway.client() as client:
        response = await client.get(f"/asr/validation/document/{document_id}")
    assert response.status_code == 200, response.text
    return ASRDocument.model_validate_json(response.content)


def words_of(document: ASRDocument) -> list[str]:
    return " ".join(p.text for p in document.document).split()


@pytest.fixture
def tones_wav(tmp_path: Path) -> Path:
    return make_audio_file(tmp_path, fmt="wav_s16", tone_hz=TONES, name="tones")


async def test_cli_json_matches_stored_document(gateway: RunningGateway, tones_wav: Path) -> None:
    """`--format json` prints the final ASRDocument, the one the gateway stored."""
    result = await run_cli(
        "transcribe", str(tones_wav), "--url", gateway.base_url, "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    document = ASRDocument.model_validate_json(result.stdout)
    assert words_of(document) == WORDS
    assert document.current_time == document.total_time
    assert await fetch_document(gateway, str(document.document_id)) == document


async def test_cli_txt_is_one_line_per_paragraph(gateway: RunningGateway, tones_wav: Path) -> None:
    """Plain text has one `[HH:MM:SS] Speaker N: text` line per paragraph and no escapes."""
    result = await run_cli("transcribe", str(tones_wav), "--url", gateway.base_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stdout
    for line in lines:
        assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] Speaker \d+: .*", line), line
    assert " ".join(line.split(": ", 1)[1] for line in lines).split() == WORDS
    assert "\x1b" not in result.stdout + result.stderr
    assert "\r" not in result.stdout


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
async def test_cli_subtitles_written_to_output_parse(
    gateway: RunningGateway, tones_wav: Path, tmp_path: Path, fmt: str
) -> None:
    """`--output x.srt|x.vtt` picks the format from the suffix and writes a parseable file."""
    output = tmp_path / f"out.{fmt}"
    result = await run_cli(
        "transcribe", str(tones_wav), "--url", gateway.base_url, "-o", str(output)
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    text = output.read_text(encoding="utf-8")
    if fmt == "srt":
        cues = [s.content for s in srt.parse(text)]
    else:
        cues = [c.text for c in webvtt.from_string(text).captions]
    assert cues
    assert " ".join(cue.split(": ", 1)[1] for cue in cues).split() == WORDS


async def test_cli_cache_hit_reuses_transcript(
    gateway: RunningGateway, wlk_simulator: WLKSimulator, tones_wav: Path
) -> None:
    """A second run is served from the cache (no new upstream session); --no-cache re-runs."""
    args = ("transcribe", str(tones_wav), "--url", gateway.base_url, "--format", "json")
    first = await run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert len(wlk_simulator.sessions) == 1
    second = await run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert len(wlk_simulator.sessions) == 1
    assert ASRDocument.model_validate_json(second.stdout) == ASRDocument.model_validate_json(
        first.stdout
    )
    third = await run_cli(*args, "--no-cache")
    assert third.returncode == 0, third.stderr
    assert len(wlk_simulator.sessions) == 2
    assert words_of(ASRDocument.model_validate_json(third.stdout)) == WORDS


async def test_cli_invalid_audio_exits_4_with_one_line(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    """A text file is rejected: exit code 4, one stderr line with the code and request id."""
    text_file = make_text_file(tmp_path)
    result = await run_cli("transcribe", str(text_file), "--url", gateway.base_url)
    assert result.returncode == 4
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("aymurai-asr: error: INVALID_AUDIO: ")
    assert re.search(r"HTTP 415, request_id \S+\)$", line), line
    assert "\x1b" not in result.stderr


async def test_cli_unreachable_gateway_exits_7(tones_wav: Path) -> None:
    """No server on the port: exit code 7 and a CONNECTION_FAILED line."""
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await run_cli("transcribe", str(tones_wav), "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 7
    (line,) = result.stderr.splitlines()
    assert line.startswith("aymurai-asr: error: CONNECTION_FAILED: ")


@pytest.fixture
async def refusing_gateway(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> AsyncIterator[RunningGateway]:
    """A gateway whose WLK server refuses every handshake (503)."""
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url_for(fault="handshake_refused")
    )
    async with run_gateway(settings) as running:
        yield running


async def test_cli_upstream_failure_exits_6(
    refusing_gateway: RunningGateway, tones_wav: Path
) -> None:
    """An `event: error` from the stream gives exit code 6 and its code and request id."""
    result = await run_cli("transcribe", str(tones_wav), "--url", refusing_gateway.base_url)
    assert result.returncode == 6, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("aymurai-asr: error: UPSTREAM_UNAVAILABLE: ")
    assert "request_id " in line


# --- pseudo-terminal ----------------------------------------------------------------------------


@pytest.fixture
async def paced_simulator() -> AsyncIterator[WLKSimulator]:
    """A simulator at 4x real time, so a short file yields many growing-tail events."""
    async with WLKSimulator(profile="0.2.26", speed=4.0) as simulator:
        yield simulator


@pytest.fixture
async def paced_gateway(
    tmp_path: Path, paced_simulator: WLKSimulator
) -> AsyncIterator[RunningGateway]:
    settings = make_settings(tmp_path, transcribe_ws_uri=paced_simulator.url)
    async with run_gateway(settings) as running:
        yield running


async def test_cli_live_view_rewrites_tail_in_place(
    paced_gateway: RunningGateway, tmp_path: Path
) -> None:
    """In a terminal the tail is redrawn in place: on screen every paragraph appears once."""
    audio = make_audio_file(
        tmp_path,
        fmt="wav_s16",
        tone_hz=[(440.0, 3.0), (0.0, 2.5), (880.0, 3.0), (0.0, 2.5), (660.0, 2.0)],
        name="live",
    )
    output = tmp_path / "live.json"
    async with run_cli_on_terminal(
        "transcribe", str(audio), "--url", paced_gateway.base_url, "-o", str(output), columns=200
    ) as terminal:
        raw = await terminal.wait()
        returncode = terminal.process.returncode
    assert returncode == 0, raw
    document = ASRDocument.model_validate_json(output.read_text())
    expected = [f"Speaker {p.speaker_no}: {' '.join(p.text.split())}" for p in document.document]
    assert len(expected) >= 2

    assert "\x1b[1A" in raw and "\x1b[2K" in raw  # the live region moved up and erased lines
    screen = render_screen(raw)
    assert shown_paragraphs(screen) == expected, "\n".join(screen)
    assert "100%" in screen[-1] or "100%" in "\n".join(screen[-3:])
