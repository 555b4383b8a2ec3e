"""The publication gate (Art. 18): four eyes, three explicit confirmations, scope, reasons, withdrawal, audit."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.outbox.models import OutboxEvent
from backend.publication.models import PublicationStatus, RecordPublication
from backend.records import service as record_service
from backend.records.models import IntegrityRecord
from tests.backend.publication.conftest import ALL_CONFIRMED, Bureau, publish, record_by
from tests.factories import login, make_account

Headers = dict[str, dict[str, str]]


def _url(record_id: int, action: str = "") -> str:
    return f"/api/v1/records/{record_id}/publication" + (f"/{action}" if action else "")


def _audit(session: Session, action: str, entity_id: int | str) -> list[AuditEntry]:
    return list(
        session.execute(
            select(AuditEntry)
            .where(col(AuditEntry.action) == action, col(AuditEntry.entity_id) == str(entity_id))
            .order_by(col(AuditEntry.seq))
        ).scalars()
    )


def _publications(session: Session, record_id: int) -> list[RecordPublication]:
    return list(
        session.execute(
            select(RecordPublication)
            .where(col(RecordPublication.record_id) == record_id)
            .order_by(col(RecordPublication.id))
        ).scalars()
    )


def _flag(session: Session, record_id: int) -> bool:
    session.expire_all()
    record = session.get(IntegrityRecord, record_id)
    assert record is not None
    return record.public_eligible


def test_request_queues_and_a_second_staff_member_publishes(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    resp = client.post(_url(record.id or 0, "request"), json={"note": "拟公开"}, headers=headers["author"])
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "pending" and resp.json()["requested_by_id"] == bureau.author.id
    assert _flag(session, record.id or 0) is False

    queue = client.get("/api/v1/publishing/queue", headers=headers["reviewer"]).json()
    item = next(i for i in queue["items"] if i["record_id"] == record.id)
    assert item["can_review"] is True and item["operator_name"] == "西溪水产批发部"
    assert item["kind"] == "complaint_substantiated" and item["kind_label_zh"] == "消费者投诉举报经查实"
    mine = client.get("/api/v1/publishing/queue", headers=headers["author"]).json()
    assert next(i for i in mine["items"] if i["record_id"] == record.id)["can_review"] is False

    resp = client.post(
        _url(record.id or 0, "approve"), json={**ALL_CONFIRMED, "note": "已审"}, headers=headers["reviewer"]
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "published" and body["reviewed_by_id"] == bureau.reviewer.id
    assert body["no_state_or_trade_secret"] and body["no_personal_data"]
    assert body["no_undisclosed_information_of_other_organs"] and body["published_at"]
    assert _flag(session, record.id or 0) is True
    state = client.get(_url(record.id or 0), headers=headers["author"]).json()
    assert state["public_eligible"] is True and state["current"]["status"] == "published"
    # The queue of pending requests no longer holds it; the published filter does.
    pending = client.get("/api/v1/publishing/queue", headers=headers["reviewer"]).json()["items"]
    assert all(i["record_id"] != record.id for i in pending)
    published = client.get(
        "/api/v1/publishing/queue", params={"status": "published"}, headers=headers["reviewer"]
    ).json()["items"]
    assert [i["record_id"] for i in published] == [record.id]


def test_the_author_cannot_approve_their_own_record(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    assert (
        client.post(_url(record.id or 0, "request"), json={}, headers=headers["reviewer"]).status_code == 201
    )
    resp = client.post(_url(record.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["author"])
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "four_eyes_required"
    assert resp.json()["error"]["details"] == {"involved_as": "author_or_verifier"}
    assert _flag(session, record.id or 0) is False
    assert _publications(session, record.id or 0)[0].status is PublicationStatus.pending
    assert _audit(session, "publication.approve", _publications(session, record.id or 0)[0].id or 0) == []


def test_the_requester_cannot_approve_their_own_request(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    assert (
        client.post(_url(record.id or 0, "request"), json={}, headers=headers["reviewer"]).status_code == 201
    )
    resp = client.post(_url(record.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["reviewer"])
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "four_eyes_required"
    assert resp.json()["error"]["details"] == {"involved_as": "requester"}
    ok = client.post(_url(record.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["colleague"])
    assert ok.status_code == 200 and ok.json()["reviewed_by_id"] == bureau.colleague.id


def test_whoever_verified_the_record_cannot_approve(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    from backend.audit.service import SYSTEM

    record = record_by(session, bureau.operator, SYSTEM, verified=False)
    verified = client.post(
        f"/api/v1/records/{record.id}/verify", json={"reason": "现场核实"}, headers=headers["reviewer"]
    )
    assert verified.status_code == 200, verified.text
    assert client.post(_url(record.id or 0, "request"), json={}, headers=headers["author"]).status_code == 201
    resp = client.post(_url(record.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["reviewer"])
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "four_eyes_required"
    assert (
        client.post(
            _url(record.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["colleague"]
        ).status_code
        == 200
    )


def test_every_confirmation_is_required(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    client.post(_url(record.id or 0, "request"), json={}, headers=headers["author"])
    for missing in ALL_CONFIRMED:
        body = {**ALL_CONFIRMED, missing: False}
        resp = client.post(_url(record.id or 0, "approve"), json=body, headers=headers["reviewer"])
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["code"] == "confirmations_required"
        assert resp.json()["error"]["details"] == {"missing": [missing]}
    resp = client.post(_url(record.id or 0, "approve"), json={}, headers=headers["reviewer"])
    assert resp.status_code == 422 and len(resp.json()["error"]["details"]["missing"]) == 3
    english = client.post(
        _url(record.id or 0, "approve"), params={"lang": "en"}, json={}, headers=headers["reviewer"]
    )
    assert "confirm each confidentiality check" in english.json()["error"]["message"]
    assert "保密审查" in resp.json()["error"]["message"]
    bad = client.post(
        _url(record.id or 0, "approve"), json={**ALL_CONFIRMED, "extra": 1}, headers=headers["reviewer"]
    )
    assert bad.status_code == 422
    not_bool = client.post(
        _url(record.id or 0, "approve"),
        json={**ALL_CONFIRMED, "no_personal_data": "maybe"},
        headers=headers["reviewer"],
    )
    assert not_bool.status_code == 422
    assert _flag(session, record.id or 0) is False
    assert _publications(session, record.id or 0)[0].status is PublicationStatus.pending


def test_outside_the_scope_is_not_found(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    other = headers["other_county"]
    assert client.post(_url(record.id or 0, "request"), json={}, headers=other).status_code == 404
    client.post(_url(record.id or 0, "request"), json={}, headers=headers["author"])
    for action, body in (
        ("approve", ALL_CONFIRMED),
        ("refuse", {"reason": "x"}),
        ("unpublish", {"reason": "x"}),
    ):
        resp = client.post(_url(record.id or 0, action), json=body, headers=other)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert client.get(_url(record.id or 0), headers=other).status_code == 404
    assert client.get("/api/v1/publishing/queue", headers=other).json()["items"] == []
    assert client.post(_url(999_999_999, "request"), json={}, headers=headers["author"]).status_code == 404
    assert _publications(session, record.id or 0)[0].status is PublicationStatus.pending
    # An admin reaches every jurisdiction (and is a second pair of eyes here).
    assert (
        client.post(_url(record.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["admin"]).status_code
        == 200
    )


def test_only_staff_use_the_gate(client: TestClient, session: Session, bureau: Bureau) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    for role in (Role.operator, Role.consumer, Role.supervisor, Role.department):
        account = make_account(
            session,
            role,
            "330106" if role is Role.supervisor else None,
            operator_id=bureau.operator.id if role is Role.operator else None,
        )
        session.commit()
        auth = login(client, account)
        assert client.post(_url(record.id or 0, "request"), json={}, headers=auth).status_code == 403
        assert client.get("/api/v1/publishing/queue", headers=auth).status_code == 403
    assert client.post(_url(record.id or 0, "request"), json={}).status_code == 401
    assert client.get("/api/v1/publishing/queue").status_code == 401
    assert _publications(session, record.id or 0) == []


def test_only_verified_records_and_one_open_request(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    reported = record_by(session, bureau.operator, bureau.author, verified=False)
    resp = client.post(_url(reported.id or 0, "request"), json={}, headers=headers["author"])
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "record_not_verified"
    record = record_by(session, bureau.operator, bureau.author)
    assert client.post(_url(record.id or 0, "request"), json={}, headers=headers["author"]).status_code == 201
    again = client.post(_url(record.id or 0, "request"), json={}, headers=headers["colleague"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "publication_open"
    nothing = client.post(_url(reported.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["reviewer"])
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "no_pending_publication"
    too_long = client.post(
        _url(record.id or 0, "request"), json={"note": "x" * 2001}, headers=headers["author"]
    )
    assert too_long.status_code == 422


def test_refusal_needs_reasons_and_allows_a_new_request(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    client.post(_url(record.id or 0, "request"), json={}, headers=headers["author"])
    for body in ({}, {"reason": "   "}):
        resp = client.post(_url(record.id or 0, "refuse"), json=body, headers=headers["reviewer"])
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "reason_required"
    resp = client.post(
        _url(record.id or 0, "refuse"), json={"reason": "摘要含当事人身份信息"}, headers=headers["reviewer"]
    )
    assert resp.status_code == 200
    assert resp.json()["status"] == "refused" and resp.json()["review_note"] == "摘要含当事人身份信息"
    assert _flag(session, record.id or 0) is False
    publication_id = resp.json()["id"]
    [entry] = _audit(session, "publication.refuse", publication_id)
    assert entry.actor_id == bureau.reviewer.id and entry.after and entry.after["status"] == "refused"
    assert client.post(_url(record.id or 0, "request"), json={}, headers=headers["author"]).status_code == 201
    history = client.get(_url(record.id or 0), headers=headers["reviewer"]).json()["history"]
    assert [h["status"] for h in history] == ["pending", "refused"]


def test_unpublishing_needs_reasons_and_takes_the_record_down(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    publication = publish(client, record.id or 0, headers["author"], headers["reviewer"])
    for body in ({}, {"reason": ""}, {"reason": " \n "}):
        resp = client.post(_url(record.id or 0, "unpublish"), json=body, headers=headers["author"])
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "reason_required"
    assert _flag(session, record.id or 0) is True
    resp = client.post(
        _url(record.id or 0, "unpublish"), json={"reason": "公示期满"}, headers=headers["author"]
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "unpublished" and resp.json()["end_reason"] == "公示期满"
    assert resp.json()["ended_by_id"] == bureau.author.id
    assert _flag(session, record.id or 0) is False
    again = client.post(_url(record.id or 0, "unpublish"), json={"reason": "x"}, headers=headers["author"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_published"
    events = session.execute(
        select(OutboxEvent).where(col(OutboxEvent.topic) == "publication.changed")
    ).scalars()
    mine = [e.payload for e in events if e.payload.get("publication_id") == publication["id"]]
    assert [p["status"] for p in mine] == ["published", "unpublished"]
    assert all(p["record_id"] == record.id and p["operator_id"] == bureau.operator.id for p in mine)
    assert len(_audit(session, "record.unpublish", record.id or 0)) == 1


def test_approval_is_audited_with_the_record_flag(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    publication = publish(client, record.id or 0, headers["author"], headers["reviewer"])
    [requested] = _audit(session, "publication.request", publication["id"])
    assert requested.actor_id == bureau.author.id and requested.before is None
    [approved] = _audit(session, "publication.approve", publication["id"])
    assert approved.actor_id == bureau.reviewer.id and approved.actor_role == "staff"
    assert approved.before and approved.before["status"] == "pending"
    assert approved.after and approved.after["status"] == "published"
    assert approved.after["no_personal_data"] is True
    [flag] = _audit(session, "record.publish", record.id or 0)
    assert flag.entity_type == "integrity_record" and flag.actor_id == bureau.reviewer.id
    assert flag.before and flag.before["public_eligible"] is False
    assert flag.after and flag.after["public_eligible"] is True
    # Staff reads of the queue and of a record's publication are audited too (Art. 20).
    client.get("/api/v1/publishing/queue", headers=headers["colleague"])
    client.get(_url(record.id or 0), headers=headers["colleague"])
    lists = session.execute(
        select(AuditEntry).where(
            col(AuditEntry.action) == "publication.list", col(AuditEntry.actor_id) == bureau.colleague.id
        )
    ).all()
    assert len(lists) == 1 and len(_audit(session, "publication.read", record.id or 0)) == 1


def _revoke(client: TestClient, record_id: int, auth: dict[str, str]) -> Any:
    return client.post(f"/api/v1/records/{record_id}/revoke", json={"reason": "经复核不实"}, headers=auth)


def test_revocation_withdraws_the_publication(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    publication = publish(client, record.id or 0, headers["author"], headers["reviewer"])
    assert _revoke(client, record.id or 0, headers["colleague"]).status_code == 200
    assert _flag(session, record.id or 0) is False
    [row] = _publications(session, record.id or 0)
    assert row.status is PublicationStatus.withdrawn and row.ended_by_id == bureau.colleague.id
    assert "经复核不实" in row.end_reason
    [withdrawn] = _audit(session, "publication.withdrawn", publication["id"])
    assert withdrawn.before and withdrawn.before["status"] == "published"
    [revoked] = _audit(session, "record.revoke", record.id or 0)
    assert revoked.before and revoked.before["public_eligible"] is True
    assert revoked.after and revoked.after["public_eligible"] is False
    statuses = [
        e.payload["status"]
        for e in session.execute(
            select(OutboxEvent).where(col(OutboxEvent.topic) == "publication.changed")
        ).scalars()
        if e.payload.get("publication_id") == publication["id"]
    ]
    assert statuses == ["published", "withdrawn"]
    # A revoked record cannot be published again.
    resp = client.post(_url(record.id or 0, "request"), json={}, headers=headers["author"])
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "record_not_verified"


def test_correction_withdraws_publications_and_pending_requests(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    published = record_by(session, bureau.operator, bureau.author)
    publish(client, published.id or 0, headers["author"], headers["reviewer"])
    pending = record_by(session, bureau.operator, bureau.author)
    client.post(_url(pending.id or 0, "request"), json={}, headers=headers["author"])
    for record in (published, pending):
        resp = client.post(
            f"/api/v1/records/{record.id}/correct",
            json={"summary": "更正后的摘要", "reason": "经营者申请更正"},
            headers=headers["colleague"],
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["public_eligible"] is False
        assert [p.status for p in _publications(session, record.id or 0)] == [PublicationStatus.withdrawn]
    # The corrected version needs a fresh review; the corrector is now one of its authors.
    client.post(_url(published.id or 0, "request"), json={}, headers=headers["author"])
    resp = client.post(_url(published.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["colleague"])
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "four_eyes_required"
    ok = client.post(_url(published.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["reviewer"])
    assert ok.status_code == 200 and ok.json()["record_version"] == 2


def test_a_pending_correction_request_blocks_approval(
    client: TestClient, session: Session, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    user = make_account(session, Role.operator, operator_id=bureau.operator.id)
    session.commit()
    filed = client.post(
        f"/api/v1/records/{record.id}/corrections",
        json={"action": "revoke", "reasons": "当日秤已送检，记录有误"},
        headers=login(client, user),
    )
    assert filed.status_code == 201, filed.text
    client.post(_url(record.id or 0, "request"), json={}, headers=headers["author"])
    resp = client.post(_url(record.id or 0, "approve"), json=ALL_CONFIRMED, headers=headers["reviewer"])
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "correction_pending"
    assert _flag(session, record.id or 0) is False


def test_records_service_changes_withdraw_without_the_api(
    session: Session, client: TestClient, bureau: Bureau, headers: Headers
) -> None:
    record = record_by(session, bureau.operator, bureau.author)
    publish(client, record.id or 0, headers["author"], headers["reviewer"])
    session.expire_all()
    fresh = session.get(IntegrityRecord, record.id)
    assert fresh is not None
    record_service.revoke(session, fresh, actor=bureau.colleague, reason="系统内撤销")
    session.commit()
    assert _flag(session, record.id or 0) is False
    assert _publications(session, record.id or 0)[0].status is PublicationStatus.withdrawn
