"""The web page on the resource API in Chromium: native EventSource resume, recent list, cancel.

An init script records what the page's (native, unmodified) EventSource delivers and every
`data-connection` state of the page, so the test can check ids and the "reconnecting" state
without reaching into the page's modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aymurai.simulator import WLKSimulator
from aymurai.transcription.schemas import ASRDocument
from test.browser.expected import expected_paragraphs
from test.browser.test_page import FINISHED, rendered_paragraphs
from test.e2e import RunningGateway, make_settings, run_gateway, seconds, upload_files
from test.events import apply_transcription, make_speech_like_file
from test.resume import (
    assert_ids_increase,
    cut_as_job_advances,
    newest_job,
    resume_setup,
    wait_for_job,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.browser

RECORDER = """
(() => {
  window.__sse = [];
  window.__connections = [];
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init);
      this.addEventListener('open', () => window.__sse.push({ type: 'open' }));
      for (const type of ['queued', 'transcription', 'done', 'error']) {
        this.addEventListener(type, (event) => {
          if (event instanceof MessageEvent) {
            window.__sse.push({ type, id: event.lastEventId, data: JSON.parse(event.data) });
          }
        });
      }
    }
  };
  document.addEventListener('DOMContentLoaded', () => {
    new MutationObserver(() => window.__connections.push(document.body.dataset.connection))
      .observe(document.body, { attributes: true, attributeFilter: ['data-connection'] });
  });
})();
"""


async def new_page(browser: Browser, url: str) -> tuple[BrowserContext, Page, list[str]]:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(seconds(30) * 1000)
    await context.add_init_script(RECORDER)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    return context, page, errors


async def test_page_native_eventsource_resumes_through_cutting_proxy(
    browser: Browser, tmp_path: Path
) -> None:
    """Page served through a proxy cut 3 times: Chromium's EventSource reconnects by itself, the
    page shows "Reconnecting…", ids strictly increase, the done equals an uncut run's, the
    transcript equals it, and the simulator saw one session."""
    async with resume_setup(tmp_path) as setup:
        context, page, errors = await new_page(browser, setup.proxy.url + "/")
        try:
            await page.set_input_files("#file-input", str(setup.audio))
            await page.click("#start-button")
            async with setup.gateway.client() as client:
                job_id = await newest_job(client)
                await cut_as_job_advances(setup, job_id)
                await page.wait_for_selector(FINISHED, state="attached")
                sessions_of_cut_run = len(setup.simulator.sessions)
                uncut = await client.post(
                    "/asr/transcriptions",
                    files=upload_files(setup.audio),
                    params={"use_cache": "false"},
                )
                uncut_id = uncut.json()["id"]
                done = await wait_for_job(client, uncut_id, "done", "failed")
            assert await page.get_attribute("body", "data-state") == "done", (
                await page.text_content("#error")
            )
            events: list[dict[str, Any]] = await page.evaluate("window.__sse")
            connections: list[str] = await page.evaluate("window.__connections")
            rendered = await rendered_paragraphs(page)
            assert await page.get_attribute("body", "data-transcription-id") == job_id
            assert await page.is_hidden("#connection")
        finally:
            await context.close()
    assert errors == [], errors
    per_connection: list[list[int]] = []
    for event in events:
        if event["type"] == "open":
            per_connection.append([])
        else:
            per_connection[-1].append(int(event["id"]))
    assert len(per_connection) == 4
    assert_ids_increase(per_connection)
    events = [event for event in events if event["type"] != "open"]
    assert events[-1]["type"] == "done"
    document: list[Any] = []
    for event in events:
        if event["type"] == "transcription":
            document = apply_transcription(document, event["data"])
    assert document == events[-1]["data"]["document"]
    assert done["status"] == "done"
    assert events[-1]["data"] == done["document"]
    assert rendered == expected_paragraphs(ASRDocument.model_validate(done["document"]))
    assert connections.count("reconnecting") == 3, connections
    assert setup.proxy.cuts == 3
    assert sessions_of_cut_run == 1


@pytest.fixture
async def paced_gateway(tmp_path: Path) -> AsyncIterator[tuple[WLKSimulator, RunningGateway]]:
    async with WLKSimulator(speed=4.0) as simulator:
        settings = make_settings(tmp_path, transcribe_ws_uri=simulator.url)
        async with run_gateway(settings) as gateway:
            yield simulator, gateway


async def test_page_recent_list_opens_done_and_follows_running(
    browser: Browser, paced_gateway: tuple[WLKSimulator, RunningGateway], tmp_path: Path
) -> None:
    """The list shows recent transcriptions newest first; a done one opens read-only with its
    stored transcript, a running one is followed live to its done; #id reopens after a reload."""
    simulator, gateway = paced_gateway
    short = make_speech_like_file(tmp_path, total_seconds=5, name="short")
    long = make_speech_like_file(tmp_path, total_seconds=90, name="long")
    async with gateway.client() as client:
        done_id = (await client.post("/asr/transcriptions", files=upload_files(short))).json()["id"]
        await wait_for_job(client, done_id, "done")
        stored = ASRDocument.model_validate(
            (await client.get(f"/asr/transcriptions/{done_id}")).json()["document"]
        )
        running_id = (await client.post("/asr/transcriptions", files=upload_files(long))).json()[
            "id"
        ]
        context, page, errors = await new_page(browser, gateway.base_url + "/")
        try:
            await page.wait_for_selector(f"#recent-list li[data-id='{running_id}']")
            items = await page.eval_on_selector_all(
                "#recent-list li",
                "els => els.map(el => [el.dataset.id, el.dataset.status, "
                "el.querySelector('.job-name').textContent])",
            )
            assert items[:2] == [
                [running_id, "running", "long.wav"],
                [done_id, "done", "short.wav"],
            ] or items[:2] == [[running_id, "queued", "long.wav"], [done_id, "done", "short.wav"]]

            await page.click(f"#recent-list li[data-id='{done_id}'] button")
            await page.wait_for_selector("body[data-state=done]", state="attached")
            assert await rendered_paragraphs(page) == expected_paragraphs(stored)
            assert await page.text_content("#file-name") == "short.wav"
            assert await page.is_enabled("#downloads button[data-format=txt]")
            assert page.url.endswith(f"#{done_id}")

            await page.click(f"#recent-list li[data-id='{running_id}'] button")
            await page.wait_for_selector("#transcript .paragraph.tentative", state="attached")
            assert await page.get_attribute("body", "data-state") == "transcribing"
            assert await page.get_attribute("body", "data-transcription-id") == running_id
            # A reload keeps following the same transcription (#id in the URL).
            await page.reload()
            await page.wait_for_selector(FINISHED, state="attached")
            assert await page.get_attribute("body", "data-state") == "done"
            assert await page.get_attribute("body", "data-transcription-id") == running_id
            final = ASRDocument.model_validate(
                (await client.get(f"/asr/transcriptions/{running_id}")).json()["document"]
            )
            assert await rendered_paragraphs(page) == expected_paragraphs(final)
            await page.wait_for_selector(
                f"#recent-list li[data-id='{running_id}'][data-status=done]", state="attached"
            )
        finally:
            await context.close()
    assert errors == [], errors
    assert len(simulator.sessions) == 2


async def test_page_cancel_deletes_the_transcription(
    browser: Browser, paced_gateway: tuple[WLKSimulator, RunningGateway], tmp_path: Path
) -> None:
    """Cancel deletes the job: status cancelled at the gateway, WLK closed, page says so."""
    simulator, gateway = paced_gateway
    audio = make_speech_like_file(tmp_path, total_seconds=60, name="long")
    context, page, errors = await new_page(browser, gateway.base_url + "/")
    try:
        await page.set_input_files("#file-input", str(audio))
        await page.click("#start-button")
        await page.wait_for_selector("#transcript .paragraph")
        job_id = await page.get_attribute("body", "data-transcription-id")
        await page.click("#cancel-button")
        await page.wait_for_selector("body[data-state=cancelled]", state="attached")
        assert await page.text_content("#status-text") == "Cancelled"
        await simulator.wait_for_session_closed(0, timeout=seconds(5))
        async with gateway.client() as client:
            job = (await client.get(f"/asr/transcriptions/{job_id}")).json()
        assert job["status"] == "cancelled" and job["error"]["code"] == "CANCELLED"
        await page.wait_for_selector(
            f"#recent-list li[data-id='{job_id}'][data-status=cancelled]", state="attached"
        )
    finally:
        await context.close()
    assert errors == [], errors


async def test_page_unknown_transcription_in_url_shows_not_found(
    page: Page, gateway: RunningGateway
) -> None:
    """`/#id` of a transcription the gateway does not know ends in a readable NOT_FOUND."""
    await page.goto(gateway.base_url + "/#" + "0" * 32)
    await page.reload()
    await page.wait_for_selector("body[data-state=error]", state="attached")
    assert await page.get_attribute("#error", "data-code") == "NOT_FOUND"
    assert (
        await page.text_content("#error-message") == "The server does not know this transcription."
    )
    assert await page.is_enabled("#file-input")
