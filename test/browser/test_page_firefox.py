"""The web page in headless stock Firefox (Debian `firefox-esr`), driven over WebDriver BiDi.

Playwright cannot drive a stock Firefox, so `bidi.py` speaks BiDi to Firefox's own remote agent.
The flows mirror the Chromium tests in `test_page.py`: a real upload through the file input and
the Transcribe button, against the gateway and the WLK simulator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aymurai.cli.live import format_duration
from aymurai.transcription.schemas import ASRDocument
from test.audio_fixtures import make_audio_file, make_text_file
from test.browser.bidi import BiDiClient, launch_firefox
from test.browser.conftest import SCREENSHOTS
from test.browser.expected import expected_paragraphs
from test.e2e import RunningGateway, require, seconds
from test.resume import cut_as_job_advances, newest_job, resume_setup

pytestmark = pytest.mark.browser

FIREFOX = Path(os.environ.get("AYMURAI_TEST_FIREFOX", "/usr/bin/firefox-esr"))
TONES = [(440.0, 2.0), (0.0, 2.5), (880.0, 2.0), (0.0, 2.5), (660.0, 1.5)]
END_STATES = ("done", "error", "cancelled")

RENDERED_PARAGRAPHS = """
[...document.querySelectorAll('#transcript .paragraph')].map(el => ({
  id: el.dataset.paragraphId,
  clock: el.querySelector('time').textContent,
  speaker: el.querySelector('.speaker').textContent,
  text: el.querySelector('.text').textContent,
  tentative: el.classList.contains('tentative'),
}))
"""


@dataclass
class FirefoxPage:
    """A BiDi session on one top-level browsing context showing the gateway's page."""

    bidi: BiDiClient
    context: str
    errors: list[str] = field(default_factory=list)

    async def js(self, expression: str) -> Any:
        return await self.bidi.evaluate(self.context, expression)

    async def wait_for_end_state(self, timeout_seconds: float) -> str:
        """Poll `body[data-state]` every 100 ms until the page reports an end state."""
        try:
            async with asyncio.timeout(timeout_seconds):
                while True:
                    state = await self.js("document.body.dataset.state")
                    if state in END_STATES:
                        return str(state)
                    await asyncio.sleep(0.1)
        except TimeoutError:
            status = await self.js("document.getElementById('status-text').textContent")
            raise AssertionError(
                f"no end state after {timeout_seconds:g} s; status: {status!r}"
            ) from None

    async def transcribe(self, audio: Path) -> str:
        """Put `audio` into the file input, click Transcribe, and wait for an end state."""
        file_input = await self.bidi.element(self.context, "#file-input")
        await self.bidi.send(
            "input.setFiles",
            {"context": self.context, "element": file_input, "files": [str(audio)]},
        )
        assert await self.js("document.getElementById('start-button').disabled") is False
        await self.bidi.click(self.context, "#start-button")
        return await self.wait_for_end_state(seconds(30))

    async def screenshot(self, name: str) -> None:
        result = await self.bidi.send(
            "browsingContext.captureScreenshot",
            {"context": self.context, "origin": "document"},
            timeout_seconds=seconds(20),
        )
        SCREENSHOTS.mkdir(exist_ok=True)
        (SCREENSHOTS / name).write_bytes(base64.b64decode(result["data"]))


def require_firefox() -> None:
    require(FIREFOX.exists(), f"{FIREFOX} is missing: run `make install-browser`")


@contextlib.asynccontextmanager
async def firefox_on(url: str) -> AsyncIterator[FirefoxPage]:
    """Headless Firefox on a fresh profile showing `url`; page errors fail the test."""
    require_firefox()
    async with launch_firefox(FIREFOX, timeout_seconds=seconds(30)) as firefox:
        async with BiDiClient.connect(firefox.websocket_url + "/session") as bidi:
            await bidi.send("session.new", {"capabilities": {}}, timeout_seconds=seconds(20))
            try:
                tree = await bidi.send("browsingContext.getTree", {"maxDepth": 0})
                page = FirefoxPage(bidi, tree["contexts"][0]["context"])

                def record(entry: dict[str, Any]) -> None:
                    # Uncaught exceptions (type "javascript") and console.error() calls.
                    if entry["level"] == "error":
                        page.errors.append(f"{entry['type']}: {entry['text']}")

                bidi.on("log.entryAdded", record)
                await bidi.send("session.subscribe", {"events": ["log.entryAdded"]})
                await bidi.send(
                    "browsingContext.setViewport",
                    {"context": page.context, "viewport": {"width": 1100, "height": 900}},
                )
                await bidi.send(
                    "browsingContext.navigate",
                    {"context": page.context, "url": url, "wait": "complete"},
                    timeout_seconds=seconds(20),
                )
                yield page
            finally:
                # A clean shutdown; launch_firefox() still terminates or kills it if this fails.
                with contextlib.suppress(Exception):
                    await bidi.send("browser.close", timeout_seconds=seconds(10))
                    async with asyncio.timeout(seconds(10)):
                        await firefox.process.wait()
    assert page.errors == [], page.errors


@pytest.fixture
async def firefox_page(gateway: RunningGateway) -> AsyncIterator[FirefoxPage]:
    """Headless Firefox showing the gateway's `/`."""
    async with firefox_on(gateway.base_url + "/") as page:
        yield page


async def test_firefox_page_transcript_equals_done_document(
    firefox_page: FirefoxPage, gateway: RunningGateway, tmp_path: Path
) -> None:
    """After an upload Firefox shows exactly the paragraphs of the stored final document."""
    audio = make_audio_file(tmp_path, fmt="ogg_opus", tone_hz=TONES, name="hearing")
    state = await firefox_page.transcribe(audio)
    assert state == "done", await firefox_page.js("document.getElementById('error').textContent")
    document_id = await firefox_page.js("document.getElementById('result').dataset.documentId")
    async with gateway.client() as client:
        response = await client.get(f"/asr/validation/document/{document_id}")
    assert response.status_code == 200, response.text
    document = ASRDocument.model_validate_json(response.content)
    assert len(document.document) >= 2
    assert await firefox_page.js(RENDERED_PARAGRAPHS) == expected_paragraphs(document)
    assert document.total_time is not None
    total = format_duration(document.total_time)
    progress = await firefox_page.js("document.getElementById('progress-text').textContent")
    assert progress == f"{total} / {total} · 100%"
    await firefox_page.screenshot("web-page-firefox-done.png")


async def test_firefox_page_invalid_audio_shows_readable_error(
    firefox_page: FirefoxPage, tmp_path: Path
) -> None:
    """A text file ends in Firefox with a readable INVALID_AUDIO message and the request id."""
    assert await firefox_page.transcribe(make_text_file(tmp_path)) == "error"
    shown = await firefox_page.js(
        """({
          code: document.getElementById('error').dataset.code,
          message: document.getElementById('error-message').textContent,
          meta: document.getElementById('error-meta').textContent,
          resultHidden: document.getElementById('result').hidden,
        })"""
    )
    assert shown["code"] == "INVALID_AUDIO"
    assert shown["message"] == "This file is not an audio or video file the server can read."
    assert shown["meta"].startswith("INVALID_AUDIO") and "request " in shown["meta"]
    assert shown["resultHidden"] is True
    await firefox_page.screenshot("web-page-firefox-error.png")


async def test_firefox_page_eventsource_resumes_through_cutting_proxy(tmp_path: Path) -> None:
    """Page served through a proxy cut 3 times: Firefox's own EventSource reconnects, the page
    ends done with the stored transcript, and the simulator saw one session."""
    async with resume_setup(tmp_path) as setup:
        async with firefox_on(setup.proxy.url + "/") as page:
            file_input = await page.bidi.element(page.context, "#file-input")
            await page.bidi.send(
                "input.setFiles",
                {"context": page.context, "element": file_input, "files": [str(setup.audio)]},
            )
            await page.bidi.click(page.context, "#start-button")
            async with setup.gateway.client() as client:
                job_id = await newest_job(client)
                await cut_as_job_advances(setup, job_id)
                state = await page.wait_for_end_state(seconds(60))
                stored = (await client.get(f"/asr/transcriptions/{job_id}")).json()
            rendered = await page.js(RENDERED_PARAGRAPHS)
            shown_id = await page.js("document.body.dataset.transcriptionId")
    assert state == "done"
    assert shown_id == job_id
    assert rendered == expected_paragraphs(ASRDocument.model_validate(stored["document"]))
    assert setup.proxy.cuts == 3
    assert len(setup.simulator.sessions) == 1
