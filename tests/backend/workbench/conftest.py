"""Workbench test set-up: the case tests' bureaus around 西湖区, signing in through the workbench's form, and
for the browser tests the app served on a local port and Debian's Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Account
from backend.main import create_app
from tests.backend.cases.conftest import bureaus, headers  # noqa: F401 - fixtures shared with the case tests
from tests.factories import PASSWORD
from tests.support.browser import CHROMIUM_ARGS, require_chromium
from tests.support.live_server import serve

_TOKEN = re.compile(r'name="(?:login_token|csrf)" value="([^"]+)"')


def form_token(html: str) -> str:
    """The hidden login or CSRF token of the first form on a page."""
    found = _TOKEN.search(html)
    assert found is not None, "no token field in the page"
    return found.group(1)


def wb_login(client: TestClient, account: Account, password: str = PASSWORD) -> str:
    """Sign ``account`` in through the form (the client keeps the cookie); returns the session's CSRF token."""
    client.cookies.clear()
    page = client.get("/workbench/login")
    assert page.status_code == 200, page.text
    resp = client.post(
        "/workbench/login",
        data={"username": account.username, "password": password, "login_token": form_token(page.text)},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    queue = client.get("/workbench/")
    assert queue.status_code == 200, queue.text
    return form_token(queue.text)


@pytest.fixture
def live_server(committed_session: Session) -> Iterator[str]:
    """The app served on 127.0.0.1, with real sessions that commit."""
    with serve(create_app()) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless (the test skips without it, or fails under GONGPING_REQUIRE_BROWSER=1)."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
