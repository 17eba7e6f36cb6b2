"""API keys in headless Chromium: the signed events_url in the native EventSource, and the
page's key field (sessionStorage, a header, never a URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require_browser
from test.e2e import RunningGateway, make_settings, run_gateway, seconds, upload_files
from test.keyed import Keys, make_distinct_audio, make_keys_file
from test.proxy import cutting_proxy

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.browser

FINISHED = ", ".join(f"body[data-state={state}]" for state in ("done", "error", "cancelled"))

# Opens `url` with the browser's own EventSource and resolves with what it saw: the event types
# up to `done`/`error`, or "refused" when the browser gives up (a non-200 answer closes it).
FOLLOW_JS = """
(url) => new Promise((resolve) => {
  const seen = [];
  const source = new EventSource(url);
  for (const type of ["queued", "transcription", "done", "error"]) {
    source.addEventListener(type, (event) => {
      if (!(event instanceof MessageEvent)) return; // the browser's own `error`, not a frame
      seen.push(type);
      if (type === "done" || type === "error") {
        source.close();
        resolve({ seen, last: JSON.parse(event.data) });
      }
    });
  }
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) resolve({ seen, refused: true });
  };
})
"""


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[tuple[RunningGateway, Keys]]:
    keys = make_keys_file(tmp_path)
    async with WLKSimulator(profile="0.2.26", speed=10.0) as simulator:
        settings = make_settings(
            tmp_path, transcribe_ws_uri=simulator.url, transcribe_api_keys_file=str(keys.file)
        )
        async with run_gateway(settings) as gateway:
            yield gateway, keys


@pytest.fixture
async def keyed_page(keyed: tuple[RunningGateway, Keys]) -> AsyncIterator[tuple[Page, list[str]]]:
    """Chromium on the keyed gateway's page; yields the page and every URL it requested."""
    require_browser()
    from playwright.async_api import async_playwright

    gateway, _ = keyed
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            context = await browser.new_context()
            context.set_default_timeout(20_000)
            page = await context.new_page()
            urls: list[str] = []
            page.on("request", lambda request: urls.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(gateway.base_url + "/")
            yield page, urls
            assert errors == [], errors
        finally:
            await browser.close()


async def _create(gateway: RunningGateway, keys: Keys, audio: Path) -> dict[str, Any]:
    async with gateway.client() as client:
        response = await client.post(
            "/asr/transcriptions", files=upload_files(audio), headers=keys.header("alice")
        )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_browser_eventsource_follows_signed_events_url(
    keyed: tuple[RunningGateway, Keys], keyed_page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    """Chromium's EventSource opens a job's events_url with keys on (no header) to `done`."""
    gateway, keys = keyed
    page, _ = keyed_page
    job = await _create(gateway, keys, make_distinct_audio(tmp_path, 1))
    result = await page.evaluate(FOLLOW_JS, job["events_url"])
    assert result.get("refused") is None, result
    assert result["seen"][-1] == "done"
    assert "transcription" in result["seen"]
    assert result["last"]["document"], "the final document"


async def test_browser_eventsource_refuses_tampered_or_other_jobs_token(
    keyed: tuple[RunningGateway, Keys], keyed_page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    """A tampered token, or another job's, closes the browser's EventSource without an event."""
    gateway, keys = keyed
    page, _ = keyed_page
    first = await _create(gateway, keys, make_distinct_audio(tmp_path, 2, bursts=1))
    second = await _create(gateway, keys, make_distinct_audio(tmp_path, 3, bursts=1))
    path, _, token = first["events_url"].partition("?token=")
    other_token = second["events_url"].partition("?token=")[2]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for url in (f"{path}?token={tampered}", f"{path}?token={other_token}", path):
        result = await page.evaluate(FOLLOW_JS, url)
        assert result == {"seen": [], "refused": True}, (url, result)


async def test_browser_page_sends_the_key_field_as_a_header(
    keyed: tuple[RunningGateway, Keys], keyed_page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    """Without a key the page shows UNAUTHENTICATED; with the key field filled it transcribes,
    the key is kept in sessionStorage and appears in no URL the page requested."""
    _, keys = keyed
    page, urls = keyed_page
    audio = make_audio_file(tmp_path, fmt="wav_s16", tone_hz=[(440.0, 2.0)], name="short")
    await page.set_input_files("#file-input", str(audio))
    await page.click("#start-button")
    await page.wait_for_selector(FINISHED, state="attached")
    assert await page.get_attribute("#error", "data-code") == "UNAUTHENTICATED"
    key = keys.by_name["alice"]
    await page.click("#api-key-box summary")
    await page.fill("#api-key", key)
    await page.dispatch_event("#api-key", "change")
    await page.click("#start-button")
    await page.wait_for_selector("body[data-state=done]", state="attached", timeout=30_000)
    stored = await page.evaluate("() => sessionStorage.getItem('aymurai.apiKey')")
    assert stored == key
    await page.reload()
    assert await page.input_value("#api-key") == key  # the same tab keeps it
    assert urls and not [url for url in urls if key in url]


# Starts following `url` in the background: window.__follow holds the event types seen, how many
# times the connection opened, and the end ("done", "error" or "closed").
START_FOLLOW_JS = """
(url) => {
  const state = { seen: [], opens: 0, end: null };
  window.__follow = state;
  const source = new EventSource(url);
  source.addEventListener("open", () => { state.opens += 1; });
  for (const type of ["queued", "transcription", "done", "error"]) {
    source.addEventListener(type, (event) => {
      if (!(event instanceof MessageEvent)) {
        if (source.readyState === EventSource.CLOSED) state.end = "closed";
        return;
      }
      state.seen.push(type);
      if (type === "done" || type === "error") { state.end = type; source.close(); }
    });
  }
}
"""


async def test_browser_eventsource_reconnects_with_its_token_through_cuts(
    tmp_path: Path,
) -> None:
    """Keys on, the connection cut twice mid-job: Chromium's EventSource reconnects by itself
    with the same signed URL (and Last-Event-ID) and reaches `done`."""
    require_browser()
    from playwright.async_api import async_playwright

    keys = make_keys_file(tmp_path)
    audio = make_distinct_audio(tmp_path, 7, bursts=4)
    async with WLKSimulator(profile="0.2.26", speed=4.0) as simulator:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=simulator.url,
            transcribe_api_keys_file=str(keys.file),
            transcribe_sse_retry_ms=200,
        )
        async with run_gateway(settings) as gateway:
            port = int(gateway.base_url.rsplit(":", 1)[1])
            async with cutting_proxy(port) as proxy, async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
                )
                try:
                    page = await browser.new_page()
                    await page.goto(proxy.url + "/")
                    job = await _create(gateway, keys, audio)
                    await page.evaluate(START_FOLLOW_JS, job["events_url"])
                    for cut_after in (1, 3):
                        await page.wait_for_function(
                            "(n) => window.__follow.seen.filter((t) => t === 'transcription')"
                            ".length >= n",
                            arg=cut_after,
                            timeout=seconds(30) * 1000,
                        )
                        proxy.cut()
                    await page.wait_for_function(
                        "() => window.__follow.end !== null", timeout=seconds(60) * 1000
                    )
                    state = await page.evaluate("window.__follow")
                finally:
                    await browser.close()
    assert state["end"] == "done", state
    assert state["opens"] >= 3, state
    assert proxy.cuts == 2
