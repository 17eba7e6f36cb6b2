"""Browser tier: headless Debian Chromium driven by Playwright (async API) against a real gateway.

Playwright's own browser download is never used (`make install-browser` installs Debian's
`chromium`); `AYMURAI_TEST_CHROMIUM` overrides the path. Missing pieces skip the tier locally and
fail it in CI (`CI` set), like the other optional tiers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from test.e2e import RunningGateway, require

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path(os.environ.get("AYMURAI_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output"


def require_browser() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        require(
            False,
            "the playwright package is missing: run `make install` and `make install-browser`",
        )
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make install-browser`")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium; closed after the test."""
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def page(browser: Browser, gateway: RunningGateway) -> AsyncIterator[Page]:
    """A fresh page on the gateway's `/`; console errors fail the test."""
    context = await browser.new_context(
        accept_downloads=True, viewport={"width": 1100, "height": 900}
    )
    context.set_default_timeout(20_000)
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    await tab.goto(gateway.base_url + "/")
    try:
        yield tab
    finally:
        await context.close()
    assert errors == [], errors
