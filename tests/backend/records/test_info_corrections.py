"""Corrections of any integrity information (Art. 22, issue 14 item 8): an operator disputes its basic
information or an instrument's data, staff correct it (audited) or refuse, and a decision that runs late is
swept, escalated to the parent bureau and its staff told, like a case deadline."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, date, datetime, time, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.cases.deadlines import CORRECTION_DECISION, add_working_days
from backend.instruments.models import Instrument
from backend.notices import handlers
from backend.operators.models import Operator
from backend.outbox.models import OutboxEvent
from backend.records import service
from backend.records.correction_sweep import sweep_corrections
from backend.records.models import CorrectionRequest
from tests.backend.records.conftest import World
from tests.factories import CITY_A, make_account, make_instrument

TODAY = service.bureau_today()


def _ask(
    client: TestClient, headers: dict[str, str], body: dict[str, object], status: int = 201
) -> dict[str, object]:
    resp = client.post("/api/v1/me/corrections", json={"reasons": "营业执照已变更", **body}, headers=headers)
    assert resp.status_code == status, resp.text
    result: dict[str, object] = resp.json()
    return result


def test_an_operator_disputes_its_basic_information_and_staff_correct_it(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    body = _ask(
        client,
        operator_headers,
        {
            "subject": "operator",
            "operator_change": {"legal_representative": "王小二", "address": "文三路1号"},
        },
    )
    assert body["subject"] == "operator" and body["record_id"] is None and body["status"] == "pending"
    assert body["due_on"] == add_working_days(TODAY, CORRECTION_DECISION.working_days).isoformat()
    # One open request about the basic information at a time.
    again = client.post(
        "/api/v1/me/corrections",
        json={"subject": "operator", "reasons": "x", "operator_change": {"address": "别处"}},
        headers=operator_headers,
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "correction_pending"
    decided = client.post(
        f"/api/v1/corrections/{body['id']}/decide",
        json={"decision": "correct", "reasons": "核对营业执照属实"},
        headers=staff_headers,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "corrected"
    session.expire_all()
    operator = session.get(Operator, world.operator.id)
    assert operator is not None
    assert (operator.legal_representative, operator.address) == ("王小二", "文三路1号")
    entry = session.execute(
        select(AuditEntry).where(col(AuditEntry.action) == "operator.correct")
    ).scalar_one()
    assert entry.entity_id == str(world.operator.id)
    assert entry.after is not None and entry.after["correction_id"] == body["id"]
    # Basic information is corrected or not, never revoked.
    other = _ask(client, operator_headers, {"subject": "operator", "operator_change": {"name": "新名字"}})
    revoke = client.post(
        f"/api/v1/corrections/{other['id']}/decide",
        json={"decision": "revoke", "reasons": "x"},
        headers=staff_headers,
    )
    assert revoke.status_code == 422 and revoke.json()["error"]["code"] == "decision_not_applicable"


def test_an_operator_disputes_an_instrument_s_data(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    instrument = make_instrument(session, world.operator, verified_on=TODAY - timedelta(days=400))
    foreign = make_instrument(session, world.other_operator)
    session.commit()
    wrong = client.post(
        "/api/v1/me/corrections",
        json={
            "subject": "instrument",
            "instrument_id": foreign.id,
            "reasons": "x",
            "instrument_change": {"serial": "X"},
        },
        headers=operator_headers,
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "unknown_instrument"
    valid_until = (TODAY + timedelta(days=200)).isoformat()
    body = _ask(
        client,
        operator_headers,
        {
            "subject": "instrument",
            "instrument_id": instrument.id,
            "instrument_change": {
                "last_verified_on": (TODAY - timedelta(days=10)).isoformat(),
                "valid_until": valid_until,
            },
            "document_refs": ["upload:certificate"],
        },
    )
    assert body["instrument_id"] == instrument.id
    decided = client.post(
        f"/api/v1/corrections/{body['id']}/decide",
        json={"decision": "correct", "reasons": "检定证书核实"},
        headers=staff_headers,
    )
    assert decided.status_code == 200, decided.text
    session.expire_all()
    fixed = session.get(Instrument, instrument.id)
    assert fixed is not None and fixed.valid_until == date.fromisoformat(valid_until)
    assert session.execute(select(AuditEntry).where(col(AuditEntry.action) == "instrument.correct")).first()


def test_mismatched_bodies_are_refused(
    client: TestClient, world: World, operator_headers: dict[str, str]
) -> None:
    for body in (
        {"subject": "operator", "instrument_change": {"serial": "X"}},
        {"subject": "operator", "operator_change": {}},
        {"subject": "instrument", "instrument_change": {"serial": "X"}},
        {"subject": "record", "operator_change": {"name": "X"}},
    ):
        resp = client.post("/api/v1/me/corrections", json={"reasons": "x", **body}, headers=operator_headers)
        assert resp.status_code == 422, body


def test_a_late_decision_is_swept_escalated_and_the_parent_told_once(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    city_staff = make_account(session, Role.staff, CITY_A)
    session.commit()
    body = _ask(
        client, operator_headers, {"subject": "operator", "operator_change": {"phone": "0571-88888888"}}
    )
    due = date.fromisoformat(str(body["due_on"]))
    on_time = datetime.combine(due, time(12), tzinfo=UTC)
    assert sweep_corrections(on_time, unit_of_work=lambda: nullcontext(session)) == 0
    # The morning after the due day (bureau time) it is late.
    late = datetime.combine(due + timedelta(days=1), time(1), tzinfo=UTC)
    assert sweep_corrections(late, unit_of_work=lambda: nullcontext(session)) == 1
    assert sweep_corrections(late, unit_of_work=lambda: nullcontext(session)) == 0
    session.commit()
    session.expire_all()
    row = session.get(CorrectionRequest, body["id"])
    assert row is not None and row.overdue_at is not None and row.escalated_to == CITY_A
    [event] = session.execute(
        select(OutboxEvent).where(col(OutboxEvent.topic) == "correction.overdue")
    ).scalars()
    assert event.payload["jurisdiction_code"] == CITY_A
    assert session.execute(select(AuditEntry).where(col(AuditEntry.action) == "correction.overdue")).first()
    [notice] = handlers.HANDLERS["correction.overdue"](session, event)
    assert notice.kind == "correction_overdue" and city_staff.id in notice.recipients
    listed = client.get("/api/v1/corrections", params={"overdue": "true"}, headers=staff_headers).json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]
    assert listed["items"][0]["escalated_to"] == CITY_A
    mine = client.get("/api/v1/me/corrections", headers=operator_headers).json()
    assert mine[0]["escalated_to"] == CITY_A
    # Decided since: the notice would be wrong, so none is sent.
    client.post(
        f"/api/v1/corrections/{body['id']}/decide",
        json={"decision": "reject", "reasons": "无依据"},
        headers=staff_headers,
    )
    session.expire_all()
    assert handlers.HANDLERS["correction.overdue"](session, event) == []
