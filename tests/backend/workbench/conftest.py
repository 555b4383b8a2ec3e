"""Workbench test set-up: the case tests' bureaus around 西湖区, and signing in through the workbench's form."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from backend.auth.models import Account
from tests.backend.cases.conftest import bureaus, headers  # noqa: F401 - fixtures shared with the case tests
from tests.factories import PASSWORD

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
