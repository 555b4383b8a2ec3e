"""/docs and /redoc work with no network beyond our own server: every other request is blocked, in Debian's
Chromium (never a downloaded browser), and the pages still show the operations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from backend.main import DOCS_ASSETS_URL, create_app
from tests.support.browser import CHROMIUM_ARGS, require_chromium
from tests.support.live_server import serve

pytestmark = [pytest.mark.browser]


@pytest.fixture(autouse=True, scope="module")
def chromium() -> Path:
    """Checked before the server starts: skip without Chromium, or fail in CI (GONGPING_REQUIRE_BROWSER=1)."""
    return require_chromium()


@pytest.fixture(scope="module")
def docs_server() -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1 (the documentation pages touch no database)."""
    app = create_app()
    app.openapi()  # built before the browser asks: it takes seconds on a busy machine
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def offline_page(chromium: Path) -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page on which every request to a host other than 127.0.0.1 is aborted (and noted)."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", only_local)
            yield context.new_page(), blocked
        finally:
            browser.close()


def test_swagger_ui_renders_every_operation_offline(
    docs_server: str, offline_page: tuple[Any, list[str]]
) -> None:
    page, blocked = offline_page
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    page.goto(f"{docs_server}/docs", wait_until="networkidle")
    page.wait_for_selector(".opblock", timeout=120_000)
    operations = page.locator(".opblock").count()
    assert operations >= 100, operations
    assert page.locator(".opblock-summary-path", has_text="/api/v1/complaints").count() >= 1
    assert page.locator("h3.opblock-tag", has_text="public").count() == 1
    assert any(DOCS_ASSETS_URL in url for url in loaded), loaded
    assert blocked == []


def test_redoc_renders_offline(docs_server: str, offline_page: tuple[Any, list[str]]) -> None:
    page, blocked = offline_page
    page.goto(f"{docs_server}/redoc", wait_until="networkidle")
    # ReDoc names each operation's section after its operation id.
    page.wait_for_selector(
        '[data-section-id="operation/complaints_create"]', state="attached", timeout=120_000
    )
    assert page.get_by_text("Gongping API").count() >= 1
    assert blocked == []
