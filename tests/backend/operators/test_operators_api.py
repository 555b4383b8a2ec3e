"""The operator contract: create, validate, scope, duplicates, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.operators.models import Operator
from tests.factories import (
    CITY_A,
    COUNTY_A,
    COUNTY_B,
    OTHER_PROVINCE_COUNTY,
    login,
    make_account,
    make_operator,
    next_uscc,
)


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uscc": next_uscc(),
        "name": "西溪菜场",
        "sector": "market",
        "address": "文二西路 1 号",
        "legal_representative": "周明",
        "jurisdiction_code": COUNTY_A,
        "location": {"lon": 120.1, "lat": 30.28},
    }
    body.update(overrides)
    return body


def _count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Operator)).one()


def test_create_operator_contract(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    body = _body(uscc="  " + next_uscc().lower() + " ")
    resp = client.post("/api/v1/operators", json=body, headers=login(client, staff))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["id"] > 0 and created["uscc"] == body["uscc"].strip().upper()
    assert created["location"] == {"lon": 120.1, "lat": 30.28}
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "operator.create")).one()
    assert entry.entity_id == str(created["id"]) and entry.actor_id == staff.id


def test_invalid_uscc_is_422_invalid_uscc(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    good = next_uscc()
    bad_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    headers = login(client, staff)
    before = _count(session)
    for code in (bad_check, "91330106MA2ABCDEI" + "X", "123", good[:10] + "O" + good[11:]):
        resp = client.post("/api/v1/operators", json=_body(uscc=code), headers=headers)
        assert resp.status_code == 422
        assert resp.json()["error"]["code"] == "invalid_uscc"
    assert _count(session) == before


def test_jurisdiction_outside_scope_is_403(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    resp = client.post(
        "/api/v1/operators", json=_body(jurisdiction_code=COUNTY_B), headers=login(client, staff)
    )
    assert resp.status_code == 403


def test_city_staff_may_register_in_any_county_below(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, CITY_A)
    resp = client.post(
        "/api/v1/operators", json=_body(jurisdiction_code=COUNTY_B), headers=login(client, staff)
    )
    assert resp.status_code == 201


def test_non_county_jurisdiction_is_422(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, CITY_A)
    resp = client.post(
        "/api/v1/operators", json=_body(jurisdiction_code=CITY_A), headers=login(client, staff)
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_jurisdiction_code"


def test_duplicate_code_is_409(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    headers = login(client, staff)
    body = _body()
    assert client.post("/api/v1/operators", json=body, headers=headers).status_code == 201
    dup = client.post("/api/v1/operators", json=body, headers=headers)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "duplicate_uscc"


def test_get_is_404_for_unknown_and_out_of_scope(client: TestClient, session: Session) -> None:
    staff_a = make_account(session, Role.staff, COUNTY_A)
    staff_b = make_account(session, Role.staff, COUNTY_B)
    city = make_account(session, Role.staff, CITY_A)
    beijing = make_account(session, Role.staff, OTHER_PROVINCE_COUNTY)
    operator = make_operator(session, staff_a)
    assert client.get(f"/api/v1/operators/{operator.id}", headers=login(client, staff_a)).status_code == 200
    assert client.get(f"/api/v1/operators/{operator.id}", headers=login(client, city)).status_code == 200
    for other in (staff_b, beijing):
        resp = client.get(f"/api/v1/operators/{operator.id}", headers=login(client, other))
        assert resp.status_code == 404
    assert client.get("/api/v1/operators/987654321", headers=login(client, staff_a)).status_code == 404
    # The same id outside the scope cannot be edited either.
    edit = client.patch(
        f"/api/v1/operators/{operator.id}", json={"name": "x"}, headers=login(client, staff_b)
    )
    assert edit.status_code == 404


def test_operator_user_sees_only_its_own(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    mine, other = make_operator(session, staff), make_operator(session, staff)
    user = make_account(session, Role.operator, operator_id=mine.id)
    headers = login(client, user)
    assert client.get(f"/api/v1/operators/{mine.id}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/operators/{other.id}", headers=headers).status_code == 404
    assert client.post("/api/v1/operators", json=_body(), headers=headers).status_code == 403


def test_update_is_audited_with_before_and_after(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff, name="旧名称")
    resp = client.patch(
        f"/api/v1/operators/{operator.id}",
        json={"name": "新名称", "management_assessment": "sound"},
        headers=login(client, staff),
    )
    assert resp.status_code == 200 and resp.json()["management_assessment"] == "sound"
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "operator.update")).one()
    assert entry.before and entry.before["name"] == "旧名称"
    assert entry.after and entry.after["name"] == "新名称"


def test_list_is_scoped_and_searchable(client: TestClient, session: Session) -> None:
    staff_a = make_account(session, Role.staff, COUNTY_A)
    staff_b = make_account(session, Role.staff, COUNTY_B)
    make_operator(session, staff_a, name="西湖百货")
    make_operator(session, staff_b, county=COUNTY_B, name="上城百货")
    names = [
        o["name"]
        for o in client.get("/api/v1/operators?q=百货", headers=login(client, staff_a)).json()["items"]
    ]
    assert names == ["西湖百货"]
    wild = client.get("/api/v1/operators?q=%25", headers=login(client, staff_a)).json()
    assert wild["total"] == 0  # LIKE wildcards are escaped


def test_stalls_and_self_commitment(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    market = make_operator(session, staff)
    headers = login(client, staff)
    stall = client.post(
        f"/api/v1/operators/{market.id}/stalls",
        json={"number": "A01", "holder_name": "张三", "holder_uscc": next_uscc()},
        headers=headers,
    )
    assert stall.status_code == 201
    dup = client.post(
        f"/api/v1/operators/{market.id}/stalls",
        json={"number": "A01", "holder_name": "李四"},
        headers=headers,
    )
    assert dup.status_code == 409
    user = make_account(session, Role.operator, operator_id=market.id)
    signed = client.post(
        f"/api/v1/operators/{market.id}/self-commitment",
        json={"text_version": "2017-1", "signer": "周明"},
        headers=login(client, user),
    )
    assert signed.status_code == 201
    assert (
        client.get(f"/api/v1/operators/{market.id}/self-commitment", headers=headers).json()["signer"]
        == "周明"
    )


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"uscc": 5}', "validation_error"),
        ('{"sector": "casino"}', "validation_error"),
    ],
)
def test_malformed_bodies_are_422_and_write_nothing(
    client: TestClient, session: Session, payload: str, code: str
) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    before = _count(session)
    resp = client.post(
        "/api/v1/operators",
        content=payload,
        headers={**login(client, staff), "Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == code
    assert _count(session) == before


@pytest.mark.parametrize(
    "location",
    [
        {"lon": 200, "lat": 30},
        {"lon": 120, "lat": -91},
        {"lon": "NaN", "lat": 30},
        {"lon": "Infinity", "lat": 30},
    ],
)
def test_out_of_range_coordinates(client: TestClient, session: Session, location: dict[str, Any]) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    resp = client.post("/api/v1/operators", json=_body(location=location), headers=login(client, staff))
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] in {"invalid_coordinates", "validation_error"}


def test_oversize_body_is_413(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    resp = client.post("/api/v1/operators", json=_body(name="x" * 400_000), headers=login(client, staff))
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"
