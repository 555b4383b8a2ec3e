"""Corrections (Art. 22): the operator asks, staff decide within the deadline, history kept, class recomputed."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend.audit.models import AuditEntry
from backend.cases.deadlines import add_working_days
from backend.outbox.models import OutboxEvent
from backend.records import rating, service
from backend.records.corrections import CORRECTION_DECISION
from backend.records.models import CorrectionRequest, IntegrityRecord
from backend.records.rules import IntegrityClass, RecordState
from tests.backend.records.conftest import World
from tests.factories import make_record

TODAY = service.bureau_today()


def _ask(
    client: TestClient, headers: dict[str, str], record_id: int | None, **overrides: object
) -> dict[str, object]:
    body: dict[str, object] = {
        "action": "revoke",
        "reasons": "当日秤经检定合格，称重无误，投诉人与本店无交易",
        "document_refs": ["upload:receipt-1"],
    }
    body.update(overrides)
    resp = client.post(f"/api/v1/records/{record_id}/corrections", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    result: dict[str, object] = resp.json()
    return result


def test_request_contract_deadline_audit_and_event(
    client: TestClient, session: Session, world: World, operator_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator, "inspection_failed")
    session.commit()
    body = _ask(client, operator_headers, record.id)
    assert body["status"] == "pending" and body["record_version"] == 1
    # 15 working days from receipt, the bureau's own rule where the guideline sets none.
    assert body["due_on"] == add_working_days(TODAY, CORRECTION_DECISION.working_days).isoformat()
    assert "requested_by_id" not in body and "decided_by_id" not in body
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "correction.request")).one()
    [event] = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "correction.requested")).all()
    assert event.payload["correction_id"] == body["id"]
    assert "本局自定规则" in CORRECTION_DECISION.legal_basis_zh


def test_one_pending_request_per_record(
    client: TestClient, session: Session, world: World, operator_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator)
    session.commit()
    _ask(client, operator_headers, record.id)
    resp = client.post(
        f"/api/v1/records/{record.id}/corrections",
        json={"action": "revoke", "reasons": "再次申请"},
        headers=operator_headers,
    )
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "correction_pending"


def test_only_the_operators_own_user_may_ask(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    theirs = make_record(session, world.other_operator)
    mine = make_record(session, world.operator)
    session.commit()
    body = {"action": "revoke", "reasons": "不实"}
    assert (
        client.post(
            f"/api/v1/records/{theirs.id}/corrections", json=body, headers=operator_headers
        ).status_code
        == 404
    )
    assert (
        client.post(f"/api/v1/records/{mine.id}/corrections", json=body, headers=staff_headers).status_code
        == 403
    )


def test_revoke_decision_revokes_the_record_and_restores_the_class(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    record = make_record(session, world.operator, "inspection_failed")
    rating.rerate_operator(session, world.operator.id or 0)
    session.commit()
    asked = _ask(client, operator_headers, record.id)
    resp = client.post(
        f"/api/v1/corrections/{asked['id']}/decide",
        json={"decision": "revoke", "reasons": "复核检查记录，确认登记错误"},
        headers=staff_headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "revoked" and resp.json()["decided_by_id"] == world.staff.id
    stored = session.get(IntegrityRecord, record.id)
    assert stored is not None and stored.state is RecordState.REVOKED and stored.version == 2
    [event] = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "correction.decided")).all()
    assert event.payload == {
        "correction_id": asked["id"],
        "record_id": record.id,
        "operator_id": world.operator.id,
        "decision": "revoke",
    }
    rating.rerate_operator(session, world.operator.id or 0)
    assert rating.current(session, world.operator).cls is IntegrityClass.BASICALLY_TRUSTWORTHY
    again = client.post(
        f"/api/v1/corrections/{asked['id']}/decide",
        json={"decision": "reject", "reasons": "x"},
        headers=staff_headers,
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "correction_decided"


def test_correct_decision_applies_the_requested_change_as_a_new_version(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    record = make_record(session, world.operator, "short_weight", fact_date=TODAY - timedelta(days=20))
    session.commit()
    new_date = (TODAY - timedelta(days=400)).isoformat()
    asked = _ask(
        client, operator_headers, record.id, action="correct", requested_change={"fact_date": new_date}
    )
    resp = client.post(
        f"/api/v1/corrections/{asked['id']}/decide",
        json={"decision": "correct", "reasons": "核对票据，日期更正"},
        headers=staff_headers,
    )
    assert resp.status_code == 200 and resp.json()["status"] == "corrected"
    detail = client.get(f"/api/v1/records/{record.id}", headers=staff_headers).json()
    assert detail["fact_date"] == new_date and detail["state"] == "verified"
    assert [v["change"] for v in detail["versions"]] == ["create", "correct"]
    assert detail["versions"][1]["reason"].startswith(f"更正申请 {asked['id']}")


def test_correct_without_any_change_is_422(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    record = make_record(session, world.operator)
    session.commit()
    asked = _ask(client, operator_headers, record.id)
    resp = client.post(
        f"/api/v1/corrections/{asked['id']}/decide",
        json={"decision": "correct", "reasons": "x"},
        headers=staff_headers,
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "changes_required"


def test_reject_leaves_the_record_and_the_operator_sees_the_decision(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    record = make_record(session, world.operator)
    session.commit()
    asked = _ask(client, operator_headers, record.id)
    client.post(
        f"/api/v1/corrections/{asked['id']}/decide",
        json={"decision": "reject", "reasons": "投诉经现场复称查实"},
        headers=staff_headers,
    )
    assert session.get(IntegrityRecord, record.id).version == 1  # type: ignore[union-attr]
    mine = client.get("/api/v1/me/corrections", headers=operator_headers).json()
    assert [(m["status"], m["decision_reasons"]) for m in mine] == [("rejected", "投诉经现场复称查实")]


def test_staff_of_another_county_get_404(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    other_staff_headers: dict[str, str],
) -> None:
    record = make_record(session, world.operator)
    session.commit()
    asked = _ask(client, operator_headers, record.id)
    assert client.get(f"/api/v1/corrections/{asked['id']}", headers=other_staff_headers).status_code == 404
    resp = client.post(
        f"/api/v1/corrections/{asked['id']}/decide",
        json={"decision": "revoke", "reasons": "x"},
        headers=other_staff_headers,
    )
    assert resp.status_code == 404
    assert client.get("/api/v1/corrections", headers=other_staff_headers).json()["total"] == 0


def test_overdue_requests_are_listed_for_staff(
    client: TestClient,
    session: Session,
    world: World,
    operator_headers: dict[str, str],
    staff_headers: dict[str, str],
) -> None:
    late, fresh = make_record(session, world.operator), make_record(session, world.operator)
    session.commit()
    late_id = _ask(client, operator_headers, late.id)["id"]
    _ask(client, operator_headers, fresh.id)
    row = session.get(CorrectionRequest, late_id)
    assert row is not None
    row.due_on = TODAY - timedelta(days=1)
    session.add(row)
    session.commit()
    overdue = client.get("/api/v1/corrections", params={"overdue": "true"}, headers=staff_headers).json()
    assert [(i["id"], i["overdue"]) for i in overdue["items"]] == [(late_id, True)]
    pending = client.get("/api/v1/corrections", params={"status": "pending"}, headers=staff_headers).json()
    assert pending["total"] == 2
