"""Shared set-up for case tests: staff at every level around 西湖区, a market there, a filer, and helpers that
file a complaint through the API and route it through the routing task's own code path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.cases.models import Case
from backend.complaints.models import Complaint
from backend.operators.models import Operator
from backend.outbox.models import OutboxEvent
from tests.factories import (
    CITY_A,
    COUNTY_A,
    COUNTY_B,
    OTHER_PROVINCE_COUNTY,
    complaint_json,
    login,
    make_account,
    make_operator,
    post_complaint,
)
from workers import cases_tasks

PROVINCE_A = "330000"
#: 西湖区 (330106), by the West Lake, WGS-84.
XIHU = (120.13, 30.259)
#: Where the market is registered, in 西湖区.
MARKET_AT = (120.1052, 30.2795)


@dataclass
class Bureaus:
    """Staff of 西湖区 (A), 上城区 (B), 杭州市, 浙江省, 北京市朝阳区, an admin, a market in A and its user."""

    county_a: Account
    county_b: Account
    city: Account
    province: Account
    other_province: Account
    admin: Account
    market: Operator
    market_user: Account
    filer: Account


@pytest.fixture
def bureaus(session: Session) -> Bureaus:
    county_a = make_account(session, Role.staff, COUNTY_A)
    market = make_operator(session, county_a, name="西溪农贸市场", location=MARKET_AT)
    found = Bureaus(
        county_a=county_a,
        county_b=make_account(session, Role.staff, COUNTY_B),
        city=make_account(session, Role.staff, CITY_A),
        province=make_account(session, Role.staff, PROVINCE_A),
        other_province=make_account(session, Role.staff, OTHER_PROVINCE_COUNTY),
        admin=make_account(session, Role.admin),
        market=market,
        market_user=make_account(session, Role.operator, operator_id=market.id),
        filer=make_account(session, Role.consumer_device),
    )
    # A savepoint "commit": an error response rolls back only what came after it.
    session.commit()
    return found


@pytest.fixture
def headers(client: TestClient, bureaus: Bureaus) -> Iterator[dict[str, dict[str, str]]]:
    """Authorization headers by name: county_a, county_b, city, province, other_province, admin, market, filer."""
    yield {
        name: login(client, getattr(bureaus, name))
        for name in ("county_a", "county_b", "city", "province", "other_province", "admin", "filer")
    } | {"market": login(client, bureaus.market_user)}


def location(
    lon: float, lat: float, *, accuracy_m: float | None = None, system: str = "wgs84"
) -> dict[str, Any]:
    """A geotag as the app sends it."""
    return {"lon": lon, "lat": lat, "accuracy_m": accuracy_m, "coord_system": system}


def file_complaint(client: TestClient, filer_headers: dict[str, str], **overrides: Any) -> int:
    """File a complaint through the API (a geotag in 西湖区 unless overridden); returns its id."""
    body = complaint_json(**overrides)
    if body.get("location") is None:
        body.pop("location", None)
    resp = post_complaint(client, filer_headers, body)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def route(session: Session, complaint_id: int, *, final_attempt: bool = False) -> Case:
    """Route a complaint the way the task does (its ``complaint.created`` event), inside the test transaction."""
    event = session.execute(
        select(OutboxEvent).where(col(OutboxEvent.dedupe_key) == f"complaint.created:{complaint_id}")
    ).scalar_one()
    cases_tasks.route_event(
        event.id or 0, final_attempt=final_attempt, unit_of_work=lambda: nullcontext(session)
    )
    case: Case = session.execute(select(Case).where(col(Case.complaint_id) == complaint_id)).scalar_one()
    session.commit()
    return case


def file_and_route(
    client: TestClient, session: Session, filer_headers: dict[str, str], **overrides: Any
) -> Case:
    """File a complaint through the API and route it."""
    return route(session, file_complaint(client, filer_headers, **overrides))


def complaint_of(session: Session, case: Case) -> Complaint:
    """The case's complaint, fresh from the database."""
    session.expire_all()
    complaint = session.get(Complaint, case.complaint_id)
    assert complaint is not None
    return complaint


def outbox(session: Session, topic: str) -> list[OutboxEvent]:
    """The outbox events of a topic, oldest first."""
    return list(
        session.execute(
            select(OutboxEvent).where(col(OutboxEvent.topic) == topic).order_by(col(OutboxEvent.id))
        ).scalars()
    )
