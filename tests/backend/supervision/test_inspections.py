"""Inspections (Art. 14): failures become verified records; scope; the class follows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.notices.handlers import notices_for
from backend.outbox.models import OutboxEvent
from backend.records import rating, service
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import IntegrityClass, RecordKind, RecordState
from tests.backend.supervision.conftest import World
from tests.factories import make_instrument

TODAY = service.bureau_today()


def _body(world: World, items: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operator_id": world.operator.id,
        "inspected_on": (TODAY - timedelta(days=1)).isoformat(),
        "items": items,
        "notes": "例行检查",
    }
    body.update(overrides)
    return body


PASS_ALL = [
    {"item": "verification_marks", "result": "pass"},
    {"item": "scale_accuracy", "result": "pass"},
    {"item": "commitment_displayed", "result": "pass"},
]


def test_a_passed_inspection_makes_no_record(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    resp = client.post("/api/v1/inspections", json=_body(world, PASS_ALL), headers=staff_headers)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["result"] == "pass" and body["record_ids"] == [] and body["inspector_id"] == world.staff.id
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "inspection.create")).one()


def test_failures_become_verified_records(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    scale = make_instrument(session, world.operator)
    session.commit()
    items = [
        {
            "item": "verification_marks",
            "result": "fail",
            "note": "检定标志过期",
            "instrument_id": scale.id,
            "instrument_finding": "overdue",
        },
        {"item": "net_content_sampling", "result": "fail", "note": "5 件中 2 件净含量不足"},
        {"item": "commitment_displayed", "result": "pass"},
    ]
    body = client.post("/api/v1/inspections", json=_body(world, items), headers=staff_headers).json()
    assert body["result"] == "fail" and len(body["record_ids"]) == 3
    made = {r.kind: r for r in (session.get(IntegrityRecord, i) for i in body["record_ids"]) if r is not None}
    assert set(made) == {
        RecordKind.INSPECTION_FAILED,
        RecordKind.INSTRUMENT_OVERDUE,
        RecordKind.NET_CONTENT_NONCOMPLIANT,
    }
    for record in made.values():
        assert record.state is RecordState.VERIFIED and record.source is RecordSource.inspection
        assert record.fact_date == TODAY - timedelta(days=1) and record.author_id == world.staff.id
    overdue = made[RecordKind.INSTRUMENT_OVERDUE]
    assert overdue.instrument_id == scale.id and overdue.instrument_still_in_use is True
    assert made[RecordKind.INSPECTION_FAILED].source_ref == f"inspection:{body['id']}"
    rating.rerate_operator(session, world.operator.id or 0)
    current = rating.current(session, world.operator)
    assert current.cls is IntegrityClass.UNTRUSTWORTHY
    assert [r["rule"] for r in current.reasons][:2] == [
        "art13_1_inspection_failed",
        "art13_3_instrument_in_use",
    ]


def test_a_missing_verification_mark_defaults_to_unverified(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    items = [{"item": "verification_marks", "result": "fail"}, {"item": "scale_accuracy", "result": "fail"}]
    body = client.post("/api/v1/inspections", json=_body(world, items), headers=staff_headers).json()
    kinds = sorted(session.get(IntegrityRecord, i).kind for i in body["record_ids"])  # type: ignore[union-attr]
    # A failed accuracy check without a finding is the inspection failure alone.
    assert kinds == [RecordKind.INSPECTION_FAILED, RecordKind.INSTRUMENT_UNVERIFIED]


def test_instrument_finding_only_on_a_failed_instrument_item(
    client: TestClient, world: World, staff_headers: dict[str, str]
) -> None:
    items = [{"item": "commitment_displayed", "result": "fail", "instrument_finding": "overdue"}]
    resp = client.post("/api/v1/inspections", json=_body(world, items), headers=staff_headers)
    assert resp.status_code == 422
    items = [{"item": "verification_marks", "result": "pass", "instrument_finding": "overdue"}]
    assert (
        client.post("/api/v1/inspections", json=_body(world, items), headers=staff_headers).status_code == 422
    )


def test_empty_items_and_future_dates_are_422(
    client: TestClient, world: World, staff_headers: dict[str, str]
) -> None:
    assert client.post("/api/v1/inspections", json=_body(world, []), headers=staff_headers).status_code == 422
    future = (TODAY + timedelta(days=2)).isoformat()
    resp = client.post(
        "/api/v1/inspections", json=_body(world, PASS_ALL, inspected_on=future), headers=staff_headers
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "fact_date_in_future"


def test_scope(
    client: TestClient,
    world: World,
    staff_headers: dict[str, str],
    other_staff_headers: dict[str, str],
) -> None:
    assert (
        client.post(
            "/api/v1/inspections", json=_body(world, PASS_ALL), headers=other_staff_headers
        ).status_code
        == 404
    )
    client.post("/api/v1/inspections", json=_body(world, PASS_ALL), headers=staff_headers)
    assert client.get("/api/v1/inspections", headers=other_staff_headers).json()["total"] == 0
    listed = client.get(
        "/api/v1/inspections", params={"operator_id": world.operator.id}, headers=staff_headers
    ).json()
    assert listed["total"] == 1 and listed["items"][0]["items"][0]["item"] == "verification_marks"


def test_plan_entry_must_be_for_the_operator(
    client: TestClient, world: World, staff_headers: dict[str, str]
) -> None:
    resp = client.post(
        "/api/v1/inspections", json=_body(world, PASS_ALL, plan_entry_id=999999), headers=staff_headers
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "plan_entry_mismatch"


def test_a_failed_inspection_is_one_notice_to_the_operator(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    items = [
        {"item": "verification_marks", "result": "fail", "note": "电子秤无检定标志"},
        {"item": "net_content_sampling", "result": "fail", "note": "大米 5kg 袋装短少 60g"},
    ]
    resp = client.post("/api/v1/inspections", json=_body(world, items), headers=staff_headers)
    assert resp.status_code == 201, resp.text
    made = resp.json()["record_ids"]
    assert len(made) == 3  # the failed inspection, the unverified instrument, the net content
    session.expire_all()
    events = session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id))).all()
    told = [(e.topic, n) for e in events for n in notices_for(session, e)]
    assert [(topic, n.kind) for topic, n in told] == [("finding.decided", "findings_against_operator")]
    notice = told[0][1]
    assert notice.recipients == (world.operator_user.id,) and notice.context["record_kinds"] == (
        "inspection_failed,instrument_unverified,net_content_noncompliant"
    )
