"""PATCH bodies: ``null`` clears what may be empty and is a 422 elsewhere (a 500 before; found by the fuzzer)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Role
from tests.factories import COUNTY_A, login, make_account, make_instrument, make_operator, make_stall


@pytest.fixture
def staff_headers(client: TestClient, session: Session) -> dict[str, str]:
    headers = login(client, make_account(session, Role.staff, COUNTY_A))
    session.commit()
    return headers


@pytest.mark.parametrize(
    "field", ["name", "sector", "metrology_assurance", "is_demonstration_unit", "is_active"]
)
def test_operator_fields_required_in_storage_refuse_null(
    client: TestClient, session: Session, staff_headers: dict[str, str], field: str
) -> None:
    operator = make_operator(session, make_account(session, Role.staff, COUNTY_A))
    session.commit()
    resp = client.patch(f"/api/v1/operators/{operator.id}", json={field: None}, headers=staff_headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["type"] == "null_not_allowed"


def test_operator_phone_and_location_may_be_cleared(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    operator = make_operator(session, make_account(session, Role.staff, COUNTY_A))
    session.commit()
    resp = client.patch(
        f"/api/v1/operators/{operator.id}", json={"phone": None, "location": None}, headers=staff_headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["location"] is None


def test_stall_and_instrument_nulls(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    market = make_operator(session, make_account(session, Role.staff, COUNTY_A))
    stall = make_stall(session, market)
    instrument = make_instrument(session, market, stall=stall)
    session.commit()  # a savepoint: an error response rolls back only what came after it
    bad = client.patch(f"/api/v1/stalls/{stall.id}", json={"is_active": None}, headers=staff_headers)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["type"] == "null_not_allowed"
    ok = client.patch(f"/api/v1/stalls/{stall.id}", json={"holder_phone": None}, headers=staff_headers)
    assert ok.status_code == 200 and ok.json()["holder_phone"] is None
    bad = client.patch(f"/api/v1/instruments/{instrument.id}", json={"maker": None}, headers=staff_headers)
    assert bad.status_code == 422
    ok = client.patch(f"/api/v1/instruments/{instrument.id}", json={"stall_id": None}, headers=staff_headers)
    assert ok.status_code == 200 and ok.json()["stall_id"] is None
