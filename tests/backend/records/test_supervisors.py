"""Supervisors (Art. 17): reports become reported records in their own area; they see the outcome."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Account, Role
from backend.errors import AppError
from backend.records import service, supervisors
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.schemas import SupervisorReportCreate
from tests.backend.records.conftest import World
from tests.factories import COUNTY_A, COUNTY_B, login, make_account, make_operator

TODAY = service.bureau_today()


@pytest.fixture
def supervisor(session: Session) -> Account:
    account = make_account(
        session, Role.supervisor, COUNTY_A, term=(TODAY - timedelta(days=100), TODAY + timedelta(days=265))
    )
    session.commit()
    return account


def _report(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operator_id": world.operator.id,
        "kind": "instrument_overdue",
        "fact_date": (TODAY - timedelta(days=1)).isoformat(),
        "summary": "3 号摊位电子秤检定标志已过期，仍在使用",
        "evidence_refs": ["patrol-photo:88"],
        "instrument_still_in_use": True,
    }
    body.update(overrides)
    return body


def test_report_becomes_a_reported_record(
    client: TestClient, session: Session, world: World, supervisor: Account
) -> None:
    resp = client.post("/api/v1/supervisor-reports", json=_report(world), headers=login(client, supervisor))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (
        body["state"] == "reported"
        and body["operator_name"] == "西溪菜场"
        and body["decision_reason"] is None
    )
    record = session.get(IntegrityRecord, body["id"])
    assert record is not None and record.source is RecordSource.supervisor
    assert record.author_id == supervisor.id and record.instrument_still_in_use is True


def test_idempotency_key_makes_one_record(
    client: TestClient, session: Session, world: World, supervisor: Account
) -> None:
    headers = {**login(client, supervisor), "Idempotency-Key": "patrol-2026-05-01-3"}
    first = client.post("/api/v1/supervisor-reports", json=_report(world), headers=headers).json()
    second = client.post("/api/v1/supervisor-reports", json=_report(world), headers=headers).json()
    assert first["id"] == second["id"]


def test_only_operators_in_the_supervisors_area(
    client: TestClient, session: Session, world: World, supervisor: Account
) -> None:
    elsewhere = make_operator(session, world.other_staff, county=COUNTY_B)
    session.commit()
    resp = client.post(
        "/api/v1/supervisor-reports",
        json=_report(world, operator_id=elsewhere.id),
        headers=login(client, supervisor),
    )
    assert resp.status_code == 404


def test_kinds_a_supervisor_cannot_witness_are_422(
    client: TestClient, world: World, supervisor: Account
) -> None:
    resp = client.post(
        "/api/v1/supervisor-reports",
        json=_report(world, kind="short_changing_penalty", instrument_still_in_use=None),
        headers=login(client, supervisor),
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "kind_not_reportable"


def test_other_roles_are_403(client: TestClient, world: World, staff_headers: dict[str, str]) -> None:
    resp = client.post("/api/v1/supervisor-reports", json=_report(world), headers=staff_headers)
    assert resp.status_code == 403
    assert client.get("/api/v1/me/supervisor-reports", headers=staff_headers).status_code == 403


def test_outside_the_term_is_refused(session: Session, world: World) -> None:
    expired = make_account(
        session, Role.supervisor, COUNTY_A, term=(date(2020, 1, 1), TODAY - timedelta(days=1))
    )
    data = SupervisorReportCreate.model_validate(_report(world))
    with pytest.raises(AppError) as info:
        supervisors.report(session, supervisor=expired, data=data, idempotency_key=None)
    assert info.value.status == 403


def test_supervisor_sees_the_outcome_and_the_operator_not_the_supervisor(
    client: TestClient,
    session: Session,
    world: World,
    supervisor: Account,
    staff_headers: dict[str, str],
    operator_headers: dict[str, str],
) -> None:
    headers = login(client, supervisor)
    kept = client.post("/api/v1/supervisor-reports", json=_report(world), headers=headers).json()
    dropped = client.post(
        "/api/v1/supervisor-reports",
        json=_report(world, kind="short_weight", instrument_still_in_use=None),
        headers=headers,
    ).json()
    client.post(
        f"/api/v1/records/{kept['id']}/verify", json={"reason": "现场核实属实"}, headers=staff_headers
    )
    client.post(
        f"/api/v1/records/{dropped['id']}/dismiss", json={"reason": "复称足量"}, headers=staff_headers
    )
    mine = client.get("/api/v1/me/supervisor-reports", headers=headers).json()
    outcomes = {i["id"]: (i["state"], i["decision_reason"]) for i in mine["items"]}
    assert outcomes == {kept["id"]: ("verified", "现场核实属实"), dropped["id"]: ("dismissed", "复称足量")}
    seen = client.get(f"/api/v1/me/records/{kept['id']}", headers=operator_headers).json()
    assert seen["source"] == "supervisor" and "author_id" not in seen and "summary" not in seen
