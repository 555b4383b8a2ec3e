"""Shared set-up for the partner-department feed: an admin, staff of two counties, an operator in each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Account, Role
from backend.operators.models import Operator
from tests.factories import COUNTY_A, COUNTY_B, login, make_account, make_operator

ALL_FIELDS = [
    "operator_identity",
    "operator_details",
    "legal_representative",
    "class",
    "class_reasons",
    "record_kind",
    "record_dates",
    "record_findings",
    "record_summary",
    "evidence_refs",
]


@dataclass
class World:
    """An admin; staff of county A and of county B; an operator in each county."""

    admin: Account
    staff: Account
    other_staff: Account
    operator: Operator
    other_operator: Operator


@pytest.fixture
def world(session: Session) -> World:
    admin = make_account(session, Role.admin)
    staff = make_account(session, Role.staff, COUNTY_A)
    other_staff = make_account(session, Role.staff, COUNTY_B)
    operator = make_operator(session, staff, name="西溪菜场")
    other_operator = make_operator(session, other_staff, county=COUNTY_B, name="上城超市")
    session.commit()
    return World(admin, staff, other_staff, operator, other_operator)


@pytest.fixture
def admin_headers(client: TestClient, world: World) -> dict[str, str]:
    return login(client, world.admin)


@pytest.fixture
def staff_headers(client: TestClient, world: World) -> dict[str, str]:
    return login(client, world.staff)


@pytest.fixture
def other_staff_headers(client: TestClient, world: World) -> dict[str, str]:
    return login(client, world.other_staff)


def key_json(**overrides: Any) -> dict[str, Any]:
    """A valid key request for county A with every field."""
    body: dict[str, Any] = {
        "name": "税务对接",
        "department": "杭州市西湖区税务局",
        "jurisdiction_codes": [COUNTY_A],
        "fields": ALL_FIELDS,
        "expires_at": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
    }
    body.update(overrides)
    return body


IssueKey = Callable[..., dict[str, Any]]


@pytest.fixture
def issue_key(client: TestClient, admin_headers: dict[str, str]) -> IssueKey:
    """Issue a key as the admin; returns the answer (with ``api_key``)."""

    def _issue(**overrides: Any) -> dict[str, Any]:
        resp = client.post("/api/v1/exchange/keys", json=key_json(**overrides), headers=admin_headers)
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body

    return _issue


def feed(client: TestClient, api_key: str, **params: Any) -> Any:
    """One call of the feed with a key."""
    return client.get("/api/v1/feed/changes", params=params, headers={"X-Api-Key": api_key})


def read_all(
    client: TestClient, api_key: str, *, limit: int = 100, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Every event from ``cursor`` on, page by page; the events and the final cursor."""
    events: list[dict[str, Any]] = []
    for _ in range(1000):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        resp = feed(client, api_key, **params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        events += body["events"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            assert cursor is not None
            return events, cursor
    raise AssertionError("the feed never ended")
