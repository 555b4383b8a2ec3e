"""The authorization matrix (``authz_matrix.py``) against the app: every route, every role.

* every route of the app (walking the included routers, ``include_in_schema=False`` ones too) has a row;
* a role the row allows is not refused (no 401/403, no server error; 404 only where the row says why);
* a role it does not allow is refused: 401 when anonymous, 403 or 404 otherwise;
* staff of county B, called with ids of county A's objects, get 404 wherever staff may call the route at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute, Route

from backend import ratelimit
from backend.config import get_settings
from backend.main import create_app
from tests.contract.authz_matrix import (
    ANONYMOUS,
    AUDITOR,
    DEFAULT_PARAMS,
    MATRIX,
    READS,
    STAFF_A,
    STAFF_B,
    Row,
)
from tests.contract.conftest import ROLES, WORLD_TOKEN_MINUTES, ContractWorld

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_REFUSED = (401, 403)


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    """Every endpoint route with its full path, descending into (lazily) included routers."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(list(original.routes), prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, Route):
            yield prefix + route.path, route
        else:
            sub_routes = getattr(route, "routes", None)
            if sub_routes is not None:  # a mount or a router included the classic way
                yield from _walk(list(sub_routes), prefix + getattr(route, "path", ""))


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route of the app, HEAD left out (it follows GET)."""
    found = {
        (method, path)
        for path, route in _walk(list(app.routes))
        for method in (route.methods or ())
        if method != "HEAD"
    }
    # The OpenAPI document must agree with the walk (a router the walk misses would hide routes from it).
    for path, operations in app.openapi()["paths"].items():
        found |= {(method.upper(), path) for method in operations}
    return found


def test_every_route_has_a_row() -> None:
    """A new route fails here until someone decides, in authz_matrix.py, who may call it."""
    # The workbench signs in with a session cookie, not a token: its routes have their own matrix
    # (workbench_matrix.py, test_workbench_matrix.py).
    routes = {key for key in app_routes(create_app()) if not key[1].startswith("/workbench")}
    rows = [(row.method, row.path) for row in MATRIX]
    duplicates = sorted({key for key in rows if rows.count(key) > 1})
    assert not duplicates, f"routes with more than one row in authz_matrix.py: {duplicates}"
    missing = sorted(routes - set(rows))
    assert not missing, (
        "routes without a row in tests/contract/authz_matrix.py (say who may call them):\n"
        + ("\n".join(f"  {method} {path}" for method, path in missing))
    )
    stale = sorted(set(rows) - routes)
    assert not stale, f"rows in authz_matrix.py for routes the app no longer has: {stale}"


def test_the_walk_sees_routes_left_out_of_the_schema() -> None:
    """The enumeration is not just the OpenAPI document: hidden routes are found too."""
    app = create_app()
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    hidden = app_routes(app) - documented
    assert {("GET", "/app/q/{token}"), ("GET", "/static/{name}"), ("GET", "/openapi.json")} <= hidden


def _value(world: ContractWorld, raw: Any) -> Any:
    if isinstance(raw, str) and raw.startswith("@"):
        name = raw[1:]
        if name == "yesterday":
            return (date.today() - timedelta(days=1)).isoformat()
        return world.ids[name]
    if isinstance(raw, dict):
        return {k: _value(world, v) for k, v in raw.items()}
    return raw


def _url(world: ContractWorld, row: Row) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        raw = row.params.get(name) or DEFAULT_PARAMS.get(name) or f"@{name}"
        return str(_value(world, raw))

    return _PARAM.sub(fill, row.path)


def _call(world: ContractWorld, row: Row, role: str) -> tuple[int, str]:
    ratelimit.reset()
    kwargs: dict[str, Any] = {
        "headers": {**world.headers[role], **{k: str(_value(world, v)) for k, v in row.headers.items()}},
        "params": {k: _value(world, v) for k, v in row.query.items()},
        "follow_redirects": False,
    }
    if row.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = _value(world, row.body) if row.body is not None else {}
    resp = world.client.request(row.method, _url(world, row), **kwargs)
    return resp.status_code, resp.text[:300]


def _takes_ids(row: Row) -> bool:
    return bool(_PARAM.search(row.path)) and not row.public_ids


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", MATRIX, ids=[f"{row.method} {row.path}" for row in MATRIX])
def test_authorization(contract_world: ContractWorld, row: Row, role: str) -> None:
    status, text = _call(contract_world, row, role)
    where = f"{row.method} {_url(contract_world, row)} as {role}: {status} {text}"
    assert status < 500, where
    if role in row.allow:
        assert status not in _REFUSED, f"allowed but refused: {where}"
        if status == 404 and _takes_ids(row):
            assert row.allowed_may_404, f"allowed but not found (a scope too narrow?): {where}"
        return
    if role == AUDITOR and row.method not in READS:
        # Every write that takes an account is refused to a read-only auditor: 403 in our error shape.
        assert status == 403 and '"error"' in text, f"an auditor's write must be a 403: {where}"
        return
    if role == ANONYMOUS:
        assert status == 401, f"anonymous must get 401: {where}"
    elif role == STAFF_B and _takes_ids(row) and STAFF_A in row.allow:
        assert status == 404, f"staff of county B must not reach county A's objects (404): {where}"
    else:
        assert status in (403, 404), f"denied but not refused (403/404): {where}"


@pytest.mark.parametrize("role", ROLES)
def test_feed_refuses_bearer_tokens(contract_world: ContractWorld, role: str) -> None:
    """The partner feed is read with a department's key only: no account's token reads it."""
    resp = contract_world.client.get("/api/v1/feed/changes", headers=contract_world.headers[role])
    assert resp.status_code == 401, resp.text


def test_world_tokens_outlive_the_module(contract_world: ContractWorld) -> None:
    """The world signs in once per module; its tokens last hours (the fuzzing module outlasts 15 minutes) while
    the product's own default is untouched for the rest of the suite."""
    for role in ROLES:
        if role == "anonymous":
            continue
        token = contract_world.headers[role]["Authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == WORLD_TOKEN_MINUTES * 60, role
    assert get_settings().access_token_minutes == 15
