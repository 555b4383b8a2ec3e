"""The records contract: create, verify, dismiss, revoke, correct; versions, audit, scope, the operator's view."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.audit.service import SYSTEM
from backend.outbox.models import OutboxEvent
from backend.records import service
from backend.records.models import IntegrityRecord, IntegrityRecordVersion
from tests.backend.records.conftest import World
from tests.factories import make_record

DAY = date.today() - timedelta(days=10)


def _body(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operator_id": world.operator.id,
        "kind": "short_weight",
        "fact_date": DAY.isoformat(),
        "summary": "复称缺 50 克",
        "evidence_refs": ["case:7"],
    }
    body.update(overrides)
    return body


def _actions(session: Session, entity_id: int) -> list[str]:
    return list(
        session.exec(
            select(AuditEntry.action)
            .where(AuditEntry.entity_type == "integrity_record", AuditEntry.entity_id == str(entity_id))
            .order_by(col(AuditEntry.seq))
        ).all()
    )


def _events(session: Session, topic: str) -> list[OutboxEvent]:
    return list(session.exec(select(OutboxEvent).where(OutboxEvent.topic == topic)).all())


def test_create_record_contract(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    resp = client.post("/api/v1/records", json=_body(world), headers=staff_headers)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["state"] == "reported" and body["source"] == "staff" and body["version"] == 1
    assert body["kind_label_zh"] == "缺斤短两" and body["bad"] is True
    assert body["author_id"] == world.staff.id and body["public_eligible"] is False
    assert _actions(session, body["id"]) == ["record.create"]
    # A reported record cannot move the class, so no re-rating is queued.
    assert _events(session, "record.changed") == []


def test_staff_may_record_an_established_finding_as_verified(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    body = _body(world, kind="short_changing_penalty", verified=True, source_ref="杭西市监罚〔2026〕12号")
    resp = client.post("/api/v1/records", json=body, headers=staff_headers)
    assert resp.status_code == 201 and resp.json()["state"] == "verified"
    assert [e.payload["record_id"] for e in _events(session, "record.changed")] == [resp.json()["id"]]


def test_finding_the_kind_cannot_carry_is_422(
    client: TestClient, world: World, staff_headers: dict[str, str]
) -> None:
    resp = client.post(
        "/api/v1/records", json=_body(world, instrument_still_in_use=True), headers=staff_headers
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "finding_not_applicable"
    resp = client.post("/api/v1/records", json=_body(world, social_impact=False), headers=staff_headers)
    assert resp.json()["error"]["code"] == "finding_not_applicable"


def test_future_fact_date_is_422(client: TestClient, world: World, staff_headers: dict[str, str]) -> None:
    future = (date.today() + timedelta(days=3)).isoformat()
    resp = client.post("/api/v1/records", json=_body(world, fact_date=future), headers=staff_headers)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "fact_date_in_future"


def test_instrument_of_another_operator_is_422(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    from tests.factories import make_instrument

    foreign = make_instrument(session, world.other_operator)
    session.commit()
    body = _body(world, kind="instrument_overdue", instrument_id=foreign.id)
    resp = client.post("/api/v1/records", json=body, headers=staff_headers)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "instrument_not_of_operator"


def test_staff_of_another_county_cannot_create_see_or_touch(
    client: TestClient,
    session: Session,
    world: World,
    other_staff_headers: dict[str, str],
) -> None:
    record = make_record(session, world.operator, verified=False)
    session.commit()
    resp = client.post("/api/v1/records", json=_body(world), headers=other_staff_headers)
    assert resp.status_code == 404
    assert client.get(f"/api/v1/records/{record.id}", headers=other_staff_headers).status_code == 404
    for action, body in (
        ("verify", {}),
        ("dismiss", {"reason": "x"}),
        ("revoke", {"reason": "x"}),
        ("correct", {"reason": "x", "summary": "y"}),
    ):
        resp = client.post(f"/api/v1/records/{record.id}/{action}", json=body, headers=other_staff_headers)
        assert resp.status_code == 404, action
    listed = client.get("/api/v1/records", headers=other_staff_headers).json()
    assert listed["total"] == 0
    assert session.get(IntegrityRecord, record.id).version == 1  # type: ignore[union-attr]


def test_list_is_scoped_filtered_and_audited(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    a = make_record(session, world.operator, "short_weight", verified=False)
    b = make_record(session, world.operator, "complaint_substantiated")
    make_record(session, world.other_operator, "short_weight")
    session.commit()
    resp = client.get(
        "/api/v1/records", params={"operator_id": world.operator.id}, headers=staff_headers
    ).json()
    assert {r["id"] for r in resp["items"]} == {a.id, b.id} and resp["total"] == 2
    resp = client.get(
        "/api/v1/records",
        params={"operator_id": world.operator.id, "state": "verified"},
        headers=staff_headers,
    ).json()
    assert [r["id"] for r in resp["items"]] == [b.id]
    resp = client.get("/api/v1/records", params={"kind": "short_weight"}, headers=staff_headers).json()
    assert resp["total"] == 2
    entries = session.exec(
        select(AuditEntry).where(AuditEntry.action == "record.list").order_by(col(AuditEntry.seq))
    ).all()
    assert len(entries) == 3 and entries[0].actor_id == world.staff.id


def test_verify_makes_a_version_an_audit_entry_and_a_rerating_event(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator, "instrument_overdue", verified=False)
    session.commit()
    resp = client.post(
        f"/api/v1/records/{record.id}/verify",
        json={"reason": "现场核实仍在使用", "instrument_still_in_use": True},
        headers=staff_headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "verified" and resp.json()["version"] == 2
    assert resp.json()["instrument_still_in_use"] is True
    assert _actions(session, record.id or 0) == ["record.create", "record.verify"]
    events = _events(session, "record.changed")
    assert [(e.payload["record_id"], e.payload["version"]) for e in events] == [(record.id, 2)]
    again = client.post(f"/api/v1/records/{record.id}/verify", json={}, headers=staff_headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_record_state"


def test_detail_has_every_version_and_is_audited(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator, verified=False)
    session.commit()
    client.post(f"/api/v1/records/{record.id}/verify", json={"reason": "查实"}, headers=staff_headers)
    client.post(
        f"/api/v1/records/{record.id}/correct",
        json={"reason": "日期录入错误", "fact_date": (DAY - timedelta(days=1)).isoformat()},
        headers=staff_headers,
    )
    detail = client.get(f"/api/v1/records/{record.id}", headers=staff_headers).json()
    assert [v["change"] for v in detail["versions"]] == ["create", "verify", "correct"]
    assert [v["version"] for v in detail["versions"]] == [1, 2, 3]
    assert detail["versions"][1]["reason"] == "查实" and detail["versions"][1]["actor_id"] == world.staff.id
    # Each version is a full snapshot: the old date is still readable in version 2.
    assert detail["versions"][2]["snapshot"]["fact_date"] == (DAY - timedelta(days=1)).isoformat()
    assert detail["versions"][1]["snapshot"]["fact_date"] != detail["versions"][2]["snapshot"]["fact_date"]
    assert "record.read" in _actions(session, record.id or 0)


def test_dismiss_needs_a_reason_and_is_final_for_verification(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator, verified=False)
    session.commit()
    resp = client.post(f"/api/v1/records/{record.id}/dismiss", json={"reason": ""}, headers=staff_headers)
    assert resp.status_code == 422
    resp = client.post(
        f"/api/v1/records/{record.id}/dismiss", json={"reason": "查无实据"}, headers=staff_headers
    )
    assert resp.status_code == 200 and resp.json()["state"] == "dismissed"
    assert (
        client.post(f"/api/v1/records/{record.id}/verify", json={}, headers=staff_headers).status_code == 409
    )


def test_revoke_keeps_the_record_and_queues_a_rerating(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator)
    session.commit()
    resp = client.post(
        f"/api/v1/records/{record.id}/revoke", json={"reason": "经复核不实"}, headers=staff_headers
    )
    assert resp.status_code == 200 and resp.json()["state"] == "revoked"
    assert session.get(IntegrityRecord, record.id) is not None
    assert [e.payload["version"] for e in _events(session, "record.changed")] == [1, 2]
    assert (
        client.post(
            f"/api/v1/records/{record.id}/revoke", json={"reason": "again"}, headers=staff_headers
        ).status_code
        == 409
    )


def test_correct_changes_fields_as_a_new_version(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator, "instrument_overdue", instrument_still_in_use=True)
    session.commit()
    resp = client.post(
        f"/api/v1/records/{record.id}/correct",
        json={"reason": "实为缺斤短两", "kind": "short_weight"},
        headers=staff_headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # The Art. 13(3) finding does not fit the new kind and is dropped with the change.
    assert body["kind"] == "short_weight" and body["instrument_still_in_use"] is None and body["version"] == 2
    nothing = client.post(
        f"/api/v1/records/{record.id}/correct",
        json={"reason": "x", "kind": "short_weight"},
        headers=staff_headers,
    )
    assert nothing.status_code == 422 and nothing.json()["error"]["code"] == "nothing_to_correct"
    no_reason = client.post(
        f"/api/v1/records/{record.id}/correct", json={"summary": "y"}, headers=staff_headers
    )
    assert no_reason.status_code == 422


def test_correct_refuses_a_finding_the_new_kind_cannot_carry(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator, "short_weight")
    session.commit()
    resp = client.post(
        f"/api/v1/records/{record.id}/correct",
        json={"reason": "x", "social_impact": True},
        headers=staff_headers,
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "finding_not_applicable"


def test_create_is_idempotent_on_source_ref_and_kind(session: Session, world: World) -> None:
    first = service.create(
        session,
        operator=world.operator,
        kind="complaint_substantiated",
        fact_date=DAY,
        source="complaint",
        source_ref="complaint:123",
        state="verified",
        actor=SYSTEM,
    )
    again = service.create(
        session,
        operator=world.operator,
        kind="complaint_substantiated",
        fact_date=DAY,
        source="complaint",
        source_ref="complaint:123",
        state="verified",
        actor=SYSTEM,
    )
    assert again.id == first.id
    service.revoke(session, first, actor=SYSTEM, reason="撤销")
    reopened = service.create(
        session,
        operator=world.operator,
        kind="complaint_substantiated",
        fact_date=DAY,
        source="complaint",
        source_ref="complaint:123",
        state="verified",
        actor=SYSTEM,
    )
    assert reopened.id != first.id
    versions = session.exec(
        select(IntegrityRecordVersion)
        .where(IntegrityRecordVersion.record_id == first.id)
        .order_by(col(IntegrityRecordVersion.version))
    ).all()
    assert [v.change for v in versions] == ["create", "revoke"]


def test_operator_reads_its_own_records_without_author_or_evidence(
    client: TestClient, session: Session, world: World, operator_headers: dict[str, str]
) -> None:
    mine = make_record(session, world.operator)
    theirs = make_record(session, world.other_operator)
    session.commit()
    listed = client.get("/api/v1/me/records", headers=operator_headers).json()
    assert [r["id"] for r in listed["items"]] == [mine.id]
    item = listed["items"][0]
    for hidden in ("author_id", "evidence_refs", "source_ref", "summary", "public_eligible"):
        assert hidden not in item
    assert client.get(f"/api/v1/me/records/{mine.id}", headers=operator_headers).status_code == 200
    assert client.get(f"/api/v1/me/records/{theirs.id}", headers=operator_headers).status_code == 404


def test_operator_users_cannot_use_staff_endpoints(
    client: TestClient, session: Session, world: World, operator_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator)
    session.commit()
    assert client.get("/api/v1/records", headers=operator_headers).status_code == 403
    assert client.get(f"/api/v1/records/{record.id}", headers=operator_headers).status_code == 403
    assert client.post("/api/v1/records", json=_body(world), headers=operator_headers).status_code == 403
    assert client.get("/api/v1/records").status_code == 401


def test_staff_cannot_use_operator_endpoints(
    client: TestClient, world: World, staff_headers: dict[str, str]
) -> None:
    assert client.get("/api/v1/me/records", headers=staff_headers).status_code == 403
