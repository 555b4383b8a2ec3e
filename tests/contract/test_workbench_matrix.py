"""The workbench's authorization matrix (``workbench_matrix.py``) against the app, every role signed in through
the workbench's own form: staff over county A reach its objects, county B's staff get 404, every other role is
refused at sign-in and has no way in."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from backend import ratelimit
from backend.main import create_app
from tests.contract.authz_matrix import ADMIN, ANONYMOUS, AUDITOR, EVERYONE, STAFF_A, STAFF_B, STAFF_CITY, Row
from tests.contract.conftest import ROLES, ContractWorld
from tests.contract.test_authz_matrix import app_routes
from tests.contract.workbench_matrix import WORKBENCH_MATRIX
from tests.factories import PASSWORD

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_TOKEN = re.compile(r'name="(?:login_token|csrf)" value="([^"]+)"')
WORKBENCH_ROLES = (STAFF_A, STAFF_B, STAFF_CITY, AUDITOR, ADMIN)


def _token(html: str) -> str:
    found = _TOKEN.search(html)
    assert found is not None
    return found.group(1)


@pytest.fixture(scope="module")
def sessions(contract_world: ContractWorld) -> Iterator[dict[str, tuple[dict[str, str], str]]]:
    """Each role's cookies and CSRF token after signing in through the form (none for refused roles)."""
    client = contract_world.client
    found: dict[str, tuple[dict[str, str], str]] = {ANONYMOUS: ({}, "")}
    for role in ROLES:
        if role == ANONYMOUS:
            continue
        ratelimit.reset()
        client.cookies.clear()
        username = client.get("/api/v1/me", headers=contract_world.headers[role]).json()["username"]
        form = client.get("/workbench/login")
        resp = client.post(
            "/workbench/login",
            data={"username": username, "password": PASSWORD, "login_token": _token(form.text)},
            follow_redirects=False,
        )
        if role in WORKBENCH_ROLES:
            assert resp.status_code == 303, f"{role}: {resp.status_code}"
            page = client.get("/workbench/")
            found[role] = (dict(client.cookies.items()), _token(page.text))
        else:
            assert resp.status_code == 403 and "工作台" in resp.text, f"{role} must get the 403 page"
            found[role] = (dict(client.cookies.items()), "")
    client.cookies.clear()
    yield found
    client.cookies.clear()


def test_every_workbench_route_has_a_row() -> None:
    routes = {key for key in app_routes(create_app()) if key[1].startswith("/workbench")}
    rows = [(row.method, row.path) for row in WORKBENCH_MATRIX]
    assert len(rows) == len(set(rows))
    assert routes == set(rows), f"missing: {sorted(routes - set(rows))}; stale: {sorted(set(rows) - routes)}"


def _url(world: ContractWorld, row: Row) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(row.params.get(name) or world.ids[name])

    return _PARAM.sub(fill, row.path)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    "row", WORKBENCH_MATRIX, ids=[f"{row.method} {row.path}" for row in WORKBENCH_MATRIX]
)
def test_workbench_authorization(
    contract_world: ContractWorld, sessions: dict[str, tuple[dict[str, str], str]], row: Row, role: str
) -> None:
    ratelimit.reset()
    client = contract_world.client
    cookies, csrf = sessions[role]
    client.cookies.clear()
    for name, value in cookies.items():
        client.cookies.set(name, value)
    url = _url(contract_world, row)
    if row.method == "POST":
        data = row.body if row.body is not None else {"csrf": csrf}
        resp = client.post(url, data=data, follow_redirects=False)
    else:
        resp = client.get(url, follow_redirects=False)
    client.cookies.clear()
    where = f"{row.method} {url} as {role}: {resp.status_code} {resp.text[:200]}"
    assert resp.status_code < 500, where
    to_login = resp.status_code == 303 and resp.headers["location"].startswith("/workbench/login")
    if row.allow == EVERYONE:
        # Open routes: never refused, though signing out without a session ends at the form like any other.
        assert resp.status_code not in (401, 403), where
        return
    if role in row.allow:
        assert not to_login and resp.status_code not in (401, 403, 404), f"allowed but refused: {where}"
        return
    if role == AUDITOR and row.method == "POST" and STAFF_A in row.allow:
        # County A's read-only auditor has a session, but every action is refused on the read-only page.
        assert resp.status_code == 403 and "只读" in resp.text, f"an auditor's action must be a 403: {where}"
        return
    if role == STAFF_B and STAFF_A in row.allow and not row.public_ids and "{" in row.path:
        assert resp.status_code == 404, f"county B's staff must get 404 on county A's objects: {where}"
        return
    assert to_login, f"no session, so back to the sign-in form: {where}"
