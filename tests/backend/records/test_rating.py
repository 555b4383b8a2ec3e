"""Stored ratings: the contract, recompute end to end, class history, audit, events, idempotency, scope."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.audit.service import SYSTEM
from backend.operators.models import ManagementAssessment
from backend.outbox.models import OutboxEvent
from backend.records import rating, service
from backend.records.engine import OperatorFacts, rate
from backend.records.models import OperatorRating, RatingChange, RatingTrigger
from backend.records.rules import IntegrityClass, rule_table
from tests.backend.records.conftest import World
from tests.factories import login, make_record

TODAY = service.bureau_today()


def _changes(session: Session, operator_id: int) -> list[RatingChange]:
    return list(
        session.exec(
            select(RatingChange).where(RatingChange.operator_id == operator_id).order_by(col(RatingChange.id))
        ).all()
    )


def test_an_operator_without_records_is_rated_live_from_its_assessment(
    client: TestClient, world: World, staff_headers: dict[str, str]
) -> None:
    resp = client.get(f"/api/v1/operators/{world.operator.id}/rating", headers=staff_headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["class"] == "basically_trustworthy" and body["class_zh"] == "基本守信"
    assert body["stored"] is False and body["as_of"] == TODAY.isoformat()
    assert [r["rule"] for r in body["reasons"]] == ["management_not_assessed"]


def test_verified_failure_makes_the_operator_untrustworthy_end_to_end(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    created = client.post(
        "/api/v1/records",
        json={
            "operator_id": world.operator.id,
            "kind": "inspection_failed",
            "fact_date": (TODAY - timedelta(days=3)).isoformat(),
        },
        headers=staff_headers,
    ).json()
    client.post(f"/api/v1/records/{created['id']}/verify", json={"reason": "复核"}, headers=staff_headers)
    # What the record.changed worker runs after commit.
    report = rating.rerate_operator(session, world.operator.id or 0)
    assert report.written == 1 and report.class_changes == 1

    body = client.get(f"/api/v1/operators/{world.operator.id}/rating", headers=staff_headers).json()
    assert body["class"] == "untrustworthy" and body["stored"] is True
    assert body["reasons"][0] == {
        "rule": "art13_1_inspection_failed",
        "article": "13(1)",
        "record_ids": [created["id"]],
        "explanation_zh": body["reasons"][0]["explanation_zh"],
        "explanation_en": body["reasons"][0]["explanation_en"],
    }
    assert "第十三条第（一）项" in body["reasons"][0]["explanation_zh"]

    [change] = _changes(session, world.operator.id or 0)
    assert (change.from_cls, change.to_cls, change.trigger) == (
        IntegrityClass.BASICALLY_TRUSTWORTHY,
        IntegrityClass.UNTRUSTWORTHY,
        RatingTrigger.record,
    )
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "rating.change")).one()
    assert entry.before == {"class": "basically_trustworthy"} and entry.after is not None
    assert entry.after["class"] == "untrustworthy" and entry.after["change_id"] == change.id
    [event] = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "rating.changed")).all()
    assert event.payload == {
        "operator_id": world.operator.id,
        "change_id": change.id,
        "from": "basically_trustworthy",
        "to": "untrustworthy",
        "as_of": TODAY.isoformat(),
    }
    assert event.dedupe_key == f"rating.changed:{change.id}"


def test_rerating_is_idempotent(session: Session, world: World) -> None:
    make_record(session, world.operator, "inspection_failed")
    assert rating.rerate_operator(session, world.operator.id or 0).written == 1
    again = rating.rerate_operator(session, world.operator.id or 0)
    assert again.written == 0 and again.class_changes == 0
    assert len(_changes(session, world.operator.id or 0)) == 1


def test_revoking_the_record_restores_the_class_and_keeps_the_history(session: Session, world: World) -> None:
    record = make_record(session, world.operator, "inspection_failed")
    rating.rerate_operator(session, world.operator.id or 0)
    service.revoke(session, record, actor=SYSTEM, reason="检查记录有误")
    rating.rerate_operator(session, world.operator.id or 0)
    stored = session.get(OperatorRating, world.operator.id)
    assert stored is not None and stored.cls is IntegrityClass.BASICALLY_TRUSTWORTHY
    assert [(c.from_cls, c.to_cls) for c in _changes(session, world.operator.id or 0)] == [
        (IntegrityClass.BASICALLY_TRUSTWORTHY, IntegrityClass.UNTRUSTWORTHY),
        (IntegrityClass.UNTRUSTWORTHY, IntegrityClass.BASICALLY_TRUSTWORTHY),
    ]


def test_reasons_change_without_a_class_change_update_the_row_only(session: Session, world: World) -> None:
    first = make_record(session, world.operator, "inspection_failed")
    rating.rerate_operator(session, world.operator.id or 0)
    second = make_record(session, world.operator, "inspection_failed", fact_date=TODAY - timedelta(days=2))
    report = rating.rerate_operator(session, world.operator.id or 0)
    assert report.written == 1 and report.class_changes == 0
    stored = session.exec(
        select(OperatorRating)
        .where(OperatorRating.operator_id == world.operator.id)
        .execution_options(populate_existing=True)
    ).one()
    assert stored.reasons[0]["record_ids"] == [first.id, second.id] and stored.revision == 2
    assert len(_changes(session, world.operator.id or 0)) == 1


def test_three_substantiated_complaints_are_untrustworthy_two_are_the_gap(
    session: Session, world: World
) -> None:
    for days in (40, 30):
        make_record(
            session, world.operator, "complaint_substantiated", fact_date=TODAY - timedelta(days=days)
        )
    rating.rerate_operator(session, world.operator.id or 0)
    current = rating.current(session, world.operator)
    assert current.cls is IntegrityClass.BASICALLY_TRUSTWORTHY
    assert [r["rule"] for r in current.reasons] == ["bad_record_below_untrustworthy_threshold"]
    make_record(session, world.operator, "complaint_substantiated", fact_date=TODAY - timedelta(days=20))
    rating.rerate_operator(session, world.operator.id or 0)
    current = rating.current(session, world.operator)
    assert current.cls is IntegrityClass.UNTRUSTWORTHY
    assert current.reasons[0]["rule"] == "art13_4_complaints_substantiated"
    assert len(current.reasons[0]["record_ids"]) == 3


def test_reported_records_never_count(session: Session, world: World) -> None:
    make_record(session, world.operator, "inspection_failed", verified=False)
    report = rating.rerate_operator(session, world.operator.id or 0)
    assert report.written == 0
    assert session.get(OperatorRating, world.operator.id) is None


def test_stored_rating_matches_the_engine(session: Session, world: World) -> None:
    records = [
        make_record(session, world.operator, "short_changing_penalty", fact_date=TODAY - timedelta(days=300)),
        make_record(session, world.operator, "short_changing_penalty", fact_date=TODAY - timedelta(days=100)),
        make_record(session, world.operator, "commitment_kept", fact_date=TODAY - timedelta(days=50)),
    ]
    rating.rerate_operator(session, world.operator.id or 0)
    facts = rating.load_verified(session, as_of=TODAY, operator_ids=[world.operator.id or 0])
    expected = rate(OperatorFacts(None), facts[world.operator.id or 0], TODAY)
    current = rating.current(session, world.operator)
    assert current.cls is expected.cls is IntegrityClass.UNTRUSTWORTHY
    assert current.reasons == rating.reasons_json(expected)
    assert current.reasons[-1]["rule"] == "good_record" and current.reasons[-1]["record_ids"] == [
        records[2].id
    ]


def test_operator_reads_its_own_rating_but_not_anothers(
    client: TestClient, session: Session, world: World, operator_headers: dict[str, str]
) -> None:
    own = client.get(f"/api/v1/operators/{world.operator.id}/rating", headers=operator_headers)
    assert own.status_code == 200
    other = client.get(f"/api/v1/operators/{world.other_operator.id}/rating", headers=operator_headers)
    assert other.status_code == 404
    # Operators' reads of their own rating are not staff reads of non-public data.
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "rating.read")).all() == []


def test_staff_of_another_county_get_404_and_reads_are_audited(
    client: TestClient,
    session: Session,
    world: World,
    staff_headers: dict[str, str],
    other_staff_headers: dict[str, str],
) -> None:
    path = f"/api/v1/operators/{world.operator.id}/rating"
    assert client.get(path, headers=other_staff_headers).status_code == 404
    assert client.get(path + "/history", headers=other_staff_headers).status_code == 404
    assert client.post(path + "/refresh", headers=other_staff_headers).status_code == 404
    assert client.get(path, headers=staff_headers).status_code == 200
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "rating.read")).all()
    assert entry.actor_id == world.staff.id and entry.entity_id == str(world.operator.id)


def test_history_lists_class_changes_newest_first(
    client: TestClient, session: Session, world: World, operator_headers: dict[str, str]
) -> None:
    record = make_record(session, world.operator, "inspection_failed")
    rating.rerate_operator(session, world.operator.id or 0)
    service.revoke(session, record, actor=SYSTEM, reason="撤销")
    rating.rerate_operator(session, world.operator.id or 0)
    session.commit()
    history = client.get(
        f"/api/v1/operators/{world.operator.id}/rating/history", headers=operator_headers
    ).json()
    assert [(h["from_cls"], h["to_cls"]) for h in history] == [
        ("untrustworthy", "basically_trustworthy"),
        ("basically_trustworthy", "untrustworthy"),
    ]


def test_refresh_picks_up_a_new_management_assessment(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    make_record(session, world.operator, "commitment_kept")
    rating.rerate_operator(session, world.operator.id or 0)
    world.operator.management_assessment = ManagementAssessment.sound
    session.add(world.operator)
    session.commit()
    resp = client.post(f"/api/v1/operators/{world.operator.id}/rating/refresh", headers=staff_headers)
    assert resp.status_code == 200 and resp.json()["class"] == "trustworthy"
    [change] = _changes(session, world.operator.id or 0)
    assert change.trigger is RatingTrigger.manual and change.to_cls is IntegrityClass.TRUSTWORTHY
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "rating.change")).one()
    assert entry.actor_id == world.staff.id


def test_a_stale_revision_is_not_written(session: Session, world: World) -> None:
    operator_id = world.operator.id or 0
    make_record(session, world.operator, "inspection_failed")
    rating.rerate_operator(session, operator_id)
    stored = rating.load_stored(session, operator_ids=[operator_id], with_reasons=True)[operator_id]
    make_record(session, world.operator, "short_weight")
    records = rating.load_verified(session, as_of=TODAY, operator_ids=[operator_id])[operator_id]
    pending = rating.decide(operator_id, None, records, stored, TODAY)
    assert pending is not None and pending.read_revision == 1
    # Another writer (the next record's worker) gets there first.
    assert rating.rerate_operator(session, operator_id).written == 1
    assert rating.write(session, [pending], trigger=RatingTrigger.nightly) == []


def test_rating_rules_are_public_data(client: TestClient) -> None:
    resp = client.get("/api/v1/rating-rules")
    assert resp.status_code == 200
    assert [r["rule"] for r in resp.json()] == [r["rule"] for r in rule_table()]
    gap = next(r for r in resp.json() if r["rule"] == "bad_record_below_untrustworthy_threshold")
    assert gap["outcome_class"] == "basically_trustworthy" and "第二十条" in gap["choice_reasoning_zh"]


def test_the_rating_date_is_the_bureaus_today(client: TestClient, world: World) -> None:
    headers = login(client, world.operator_user)
    body = client.get(f"/api/v1/operators/{world.operator.id}/rating", headers=headers).json()
    assert date.fromisoformat(body["as_of"]) == TODAY
