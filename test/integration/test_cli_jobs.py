"""`aymurai-asr` on the resource API: resume through a cutting proxy, follow, status, cancel.

The real console script runs as a subprocess; the gateway and the WLK simulator run in the test's
event loop, the proxy (test/proxy.py) between the CLI and the gateway.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from aymurai.transcription.schemas import ASRDocument, Transcription
from test.cli_harness import (
    finish,
    render_screen,
    run_cli,
    run_cli_on_terminal,
    shown_paragraphs,
    start_cli,
)
from test.e2e import RunningGateway, eventually, make_settings, run_gateway, seconds, upload_files
from test.events import make_speech_like_file
from test.integration.test_cli import fetch_document
from test.resume import cut_as_job_advances, newest_job, resume_setup

pytestmark = pytest.mark.integration

RESUMING = re.compile(
    r"aymurai-asr: CONNECTION_LOST: connection lost; resuming transcription (\w+) "
    r"from event (\d+) in [\d.]+ s \(attempt 1 of 5\)"
)


async def test_cli_transcribe_resumes_through_cutting_proxy(tmp_path: Path) -> None:
    """Cut 3 times mid-stream: the CLI resumes each time with one stderr line and a growing
    Last-Event-ID, prints the done document of an uncut run, and WLK saw one session."""
    async with resume_setup(tmp_path) as setup:
        process = await start_cli(
            "transcribe", str(setup.audio), "--url", setup.proxy.url, "--format", "json"
        )
        try:
            async with setup.gateway.client() as client:
                job_id = await newest_job(client)
            await cut_as_job_advances(setup, job_id)
        finally:
            stdout, stderr = await finish(process)
        sessions_of_cut_run = len(setup.simulator.sessions)
        uncut = await run_cli(
            "transcribe",
            str(setup.audio),
            "--url",
            setup.gateway.base_url,
            "--format",
            "json",
            "--no-cache",
        )
        stored = await fetch_document(setup.gateway, str(json.loads(stdout)["document_id"]))
    assert process.returncode == 0, stderr
    lines = stderr.splitlines()
    resumes = [RESUMING.fullmatch(line) for line in lines]
    assert len(lines) == 3 and all(resumes), stderr
    assert {match[1] for match in resumes if match} == {job_id}
    ids = [int(match[2]) for match in resumes if match]
    assert ids == sorted(set(ids)), ids
    assert setup.proxy.cuts == 3
    assert sessions_of_cut_run == 1
    assert uncut.returncode == 0, uncut.stderr
    assert ASRDocument.model_validate_json(stdout) == ASRDocument.model_validate_json(uncut.stdout)
    assert stored == ASRDocument.model_validate_json(stdout)


async def test_cli_gives_up_after_retries_with_exit_7(tmp_path: Path) -> None:
    """The gateway gone for good: `--retries 2` reconnects twice, then exits 7 naming the job."""
    async with resume_setup(tmp_path) as setup:
        process = await start_cli(
            "transcribe", str(setup.audio), "--url", setup.proxy.url, "--retries", "2"
        )
        try:
            async with setup.gateway.client() as client:
                job_id = await newest_job(client)
                await eventually(lambda: setup.proxy.connections_accepted >= 1, what="a client")
            await setup.proxy.stop()  # closes the listener too: every reconnect is refused
        finally:
            stdout, stderr = await finish(process)
    assert process.returncode == 7, stderr
    lines = stderr.splitlines()
    assert len(lines) == 3, stderr
    assert lines[0].endswith("(attempt 1 of 2)")
    assert lines[0].startswith("aymurai-asr: CONNECTION_LOST: connection lost; resuming")
    assert lines[1].startswith("aymurai-asr: CONNECTION_FAILED: connection lost; resuming")
    assert lines[1].endswith("(attempt 2 of 2)")
    assert lines[2].startswith("aymurai-asr: error: CONNECTION_FAILED: ")
    assert job_id in lines[0]
    assert stdout == ""


@pytest.fixture
async def paced(tmp_path: Path) -> tuple[WLKSimulator, RunningGateway]:  # type: ignore[misc]
    async with WLKSimulator(speed=4.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        async with run_gateway(settings) as gateway:
            yield simulator, gateway


async def test_cli_status_follow_and_cancel_a_running_job(
    paced: tuple[WLKSimulator, RunningGateway], tmp_path: Path
) -> None:
    """status prints the state (text and --json); follow of a job cancelled meanwhile exits 8
    with CANCELLED; cancel exits 0, then 4 with ALREADY_FINISHED; an unknown id exits 4."""
    simulator, gateway = paced
    audio = make_speech_like_file(tmp_path, total_seconds=60)
    async with gateway.client() as client:
        job_id = (await client.post("/asr/transcriptions", files=upload_files(audio))).json()["id"]
    await simulator.wait_for_sessions(1, timeout=seconds(20))
    url = ("--url", gateway.base_url)
    status = await run_cli("status", job_id, *url)
    assert status.returncode == 0, status.stderr
    fields = dict(re.split(r"\s+", line, maxsplit=1) for line in status.stdout.splitlines())
    assert fields["id"] == job_id and fields["status"] in ("queued", "running")
    assert fields["name"] == audio.name and fields["error"] == "-"
    as_json = await run_cli("status", job_id, *url, "--json")
    assert Transcription.model_validate_json(as_json.stdout).id == job_id

    follower = await start_cli("follow", job_id, *url)
    await eventually(lambda: len(simulator.sessions) >= 1, what="the session")
    cancel = await run_cli("cancel", job_id, *url)
    stdout, stderr = await finish(follower)
    assert cancel.returncode == 0 and cancel.stderr == f"aymurai-asr: cancelled {job_id}\n"
    assert follower.returncode == 8, stderr
    assert stdout == "" and stderr.startswith("aymurai-asr: error: CANCELLED: ")
    await simulator.wait_for_session_closed(0, timeout=seconds(5))

    again = await run_cli("cancel", job_id, *url)
    assert again.returncode == 4
    assert again.stderr.startswith("aymurai-asr: error: ALREADY_FINISHED: ")
    assert "HTTP 409" in again.stderr
    missing = await run_cli("status", "0" * 32, *url)
    assert missing.returncode == 4 and missing.stderr.startswith("aymurai-asr: error: NOT_FOUND: ")
    after = await run_cli("status", job_id, *url)
    assert re.search(r"^status +cancelled$", after.stdout, re.M), after.stdout
    assert re.search(r"^error +CANCELLED: ", after.stdout, re.M), after.stdout


async def test_cli_follow_finished_job_prints_stored_document(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    """follow of a done job prints its stored document at once, like transcribe would."""
    audio = make_speech_like_file(tmp_path, total_seconds=10)
    first = await run_cli("transcribe", str(audio), "--url", gateway.base_url, "--format", "json")
    assert first.returncode == 0, first.stderr
    async with gateway.client() as client:
        job_id = await newest_job(client)
    followed = await run_cli("follow", job_id, "--url", gateway.base_url, "--format", "json")
    assert followed.returncode == 0, followed.stderr
    assert followed.stderr == ""
    assert ASRDocument.model_validate_json(followed.stdout) == ASRDocument.model_validate_json(
        first.stdout
    )


async def test_cli_ctrl_c_leaves_job_running_and_says_how_to_follow(
    paced: tuple[WLKSimulator, RunningGateway], tmp_path: Path
) -> None:
    """SIGINT mid-stream: exit 130, one line naming the job and the follow/cancel commands; the
    job goes on at the gateway (its WLK session stays open)."""
    simulator, gateway = paced
    audio = make_speech_like_file(tmp_path, total_seconds=60)
    process = await start_cli("transcribe", str(audio), "--url", gateway.base_url)
    try:
        await simulator.wait_for_sessions(1, timeout=seconds(20))
        process.send_signal(signal.SIGINT)
    finally:
        stdout, stderr = await finish(process, timeout_seconds=20)
    async with gateway.client() as client:
        job_id = await newest_job(client)
        job = (await client.get(f"/asr/transcriptions/{job_id}")).json()
        assert process.returncode == 130
        assert stdout == ""
        assert stderr == (
            f"aymurai-asr: interrupted; transcription {job_id} goes on at the gateway "
            f"(aymurai-asr follow {job_id}, aymurai-asr cancel {job_id})\n"
        )
        assert job["status"] == "running"
        assert not simulator.sessions[0].is_closed
        assert (await client.delete(f"/asr/transcriptions/{job_id}")).status_code == 204


async def test_cli_live_view_survives_cuts(tmp_path: Path) -> None:
    """In a terminal, cuts print their resume lines above the live region and every paragraph
    still appears once on screen."""
    async with resume_setup(tmp_path, total_seconds=30) as setup:
        output = tmp_path / "live.json"
        async with run_cli_on_terminal(
            "transcribe", str(setup.audio), "--url", setup.proxy.url, "-o", str(output), columns=220
        ) as terminal:
            async with setup.gateway.client() as client:
                job_id = await newest_job(client)
            await cut_as_job_advances(setup, job_id, fractions=(0.3, 0.6))
            raw = await terminal.wait()
            returncode = terminal.process.returncode
    assert returncode == 0, raw
    document = ASRDocument.model_validate_json(output.read_text())
    expected = [f"Speaker {p.speaker_no}: {' '.join(p.text.split())}" for p in document.document]
    screen = render_screen(raw)
    assert shown_paragraphs(screen) == expected, "\n".join(screen)
    resumes = [line for line in screen if "connection lost; resuming" in line]
    assert len(resumes) == 2, "\n".join(screen)
