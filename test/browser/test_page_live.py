"""The page's Record button in Chromium with a fake microphone playing a WAV: the page records
WebM/Opus through `WS /asr/live`, shows the transcript as it grows, and Stop stores the document."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from aymurai.simulator import WLKSimulator
from test.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require_browser
from test.e2e import RunningGateway, make_settings, run_gateway, seconds
from test.live import make_live_speech

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.browser


@pytest.fixture
async def live_page_gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with WLKSimulator(profile="0.2.26", speed=50.0, pause_seconds=0.5) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        async with run_gateway(settings) as running:
            yield running


@pytest.fixture
async def microphone_browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """Chromium whose microphone plays the test speech once (no permission prompt)."""
    require_browser()
    from playwright.async_api import async_playwright

    wav = make_live_speech(tmp_path)
    # Chromium reads the file name up to a `%`: keep the path plain.
    plain = tmp_path / "microphone.wav"
    shutil.copyfile(wav, plain)
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={plain}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    ]
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=args, timeout=30_000
        )
        try:
            yield instance
        finally:
            await instance.close()


async def test_page_records_the_microphone_through_the_live_socket(
    microphone_browser: Browser, live_page_gateway: RunningGateway
) -> None:
    """Record → the transcript grows on the page; Stop → done, downloads enabled, words stored."""
    context = await microphone_browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(seconds(20) * 1000)
    await context.grant_permissions(["microphone"], origin=live_page_gateway.base_url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await page.goto(live_page_gateway.base_url + "/")
        await page.click("#record-button")
        # (Locators, not wait_for_function: the page's CSP forbids evaluating strings.)
        await page.locator("body[data-state='recording']").wait_for()
        # The second burst (660 Hz) on screen while recording: the transcript is live.
        await page.locator("#transcript", has_text="f660").wait_for()
        assert await page.get_attribute("body", "data-state") == "recording"
        await page.locator("#transcript", has_text="f880").wait_for()
        await page.click("#stop-button")
        await page.locator("body[data-state='done']").wait_for()
        assert await page.is_enabled("#downloads button[data-format='txt']")
        job_id = await page.get_attribute("body", "data-transcription-id")
        text = await page.text_content("#transcript")
        assert text is not None and "f440" in text
    finally:
        await context.close()
    assert errors == [], errors
    async with httpx.AsyncClient(base_url=live_page_gateway.base_url) as client:
        job = (await client.get(f"/asr/transcriptions/{job_id}")).json()
    assert job["status"] == "done"
    assert job["live"] is True
    assert job["ended_by"] == "client"
    words = " ".join(p["text"] for p in job["document"]["document"]).split()
    # Opus and resampling keep the pitch: every burst's word is there, in order.
    for word in ("f440", "f660", "f880"):
        assert word in words, words
    assert words.index("f440") < words.index("f660") < words.index("f880")
