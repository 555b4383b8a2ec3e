"""Rating inputs that are not records (Art. 8, 10): the management assessment and the demonstration-unit flag.

Staff edit them on the operator; the edit is audited, the demonstration unit's good record follows the flag,
and the operator is re-rated on the same outbox path as a record change.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.outbox.models import OutboxEvent
from backend.records import rating, service
from backend.records.models import IntegrityRecord, IntegrityRecordVersion, RatingChange, RatingTrigger
from backend.records.rules import IntegrityClass, RecordKind, RecordState
from tests.backend.records.conftest import World


def _patch(client: TestClient, world: World, headers: dict[str, str], **body: object) -> dict[str, object]:
    resp = client.patch(f"/api/v1/operators/{world.operator.id}", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    result: dict[str, object] = resp.json()
    return result


def _events(session: Session, topic: str) -> list[OutboxEvent]:
    session.expire_all()
    return list(
        session.exec(
            select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(col(OutboxEvent.id))
        ).all()
    )


def _demo_records(session: Session, operator_id: int) -> list[IntegrityRecord]:
    session.expire_all()
    return list(
        session.exec(
            select(IntegrityRecord)
            .where(
                IntegrityRecord.operator_id == operator_id,
                IntegrityRecord.kind == RecordKind.DEMONSTRATION_UNIT,
            )
            .order_by(col(IntegrityRecord.id))
        ).all()
    )


def test_a_changed_management_assessment_rerates_through_the_outbox(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    operator_id = world.operator.id or 0
    _patch(client, world, staff_headers, management_assessment="sound")
    [event] = _events(session, service.RATING_INPUTS_CHANGED)
    assert event.payload == {
        "operator_id": operator_id,
        "trigger": "manual",
        "management_assessment": "sound",
    }
    # The edit itself is audited with the assessment before and after.
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "operator.update")).one()
    assert entry.before is not None and entry.before["management_assessment"] == "not_assessed"
    assert entry.after is not None and entry.after["management_assessment"] == "sound"
    # Editing anything else, or saving the same assessment again, asks for no re-rating.
    _patch(client, world, staff_headers, management_assessment="sound", address="新地址 1 号")
    assert len(_events(session, service.RATING_INPUTS_CHANGED)) == 1
    _patch(client, world, staff_headers, management_assessment="not_fully_sound")
    assert [e.payload["management_assessment"] for e in _events(session, service.RATING_INPUTS_CHANGED)] == [
        "sound",
        "not_fully_sound",
    ]


def test_the_assessment_moves_the_class_between_trustworthy_and_basically_trustworthy(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    operator_id = world.operator.id or 0
    _patch(client, world, staff_headers, is_demonstration_unit=True)  # a stored row: a verified good record
    rating.rerate_operator(session, operator_id)
    assert rating.load_stored(session, operator_ids=[operator_id])[operator_id].cls is (
        IntegrityClass.BASICALLY_TRUSTWORTHY
    )
    _patch(client, world, staff_headers, management_assessment="sound")
    report = rating.rerate_operator(session, operator_id, trigger=RatingTrigger.manual)
    assert report.class_changes == 1
    change = session.exec(select(RatingChange).order_by(col(RatingChange.id).desc())).first()
    assert change is not None and change.trigger is RatingTrigger.manual
    assert (change.from_cls, change.to_cls) == (
        IntegrityClass.BASICALLY_TRUSTWORTHY,
        IntegrityClass.TRUSTWORTHY,
    )


def test_setting_the_demonstration_flag_makes_a_verified_good_record_and_clearing_it_revokes_it(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    operator_id = world.operator.id or 0
    body = _patch(client, world, staff_headers, is_demonstration_unit=True)
    assert body["is_demonstration_unit"] is True
    [record] = _demo_records(session, operator_id)
    assert record.state is RecordState.VERIFIED and record.source_ref == service.demonstration_ref(
        operator_id
    )
    assert record.author_id == world.staff.id and record.fact_date == service.bureau_today()
    changed = _events(session, "record.changed")
    assert [e.payload["record_id"] for e in changed] == [record.id]
    # Saving the flag again makes no second record.
    _patch(client, world, staff_headers, is_demonstration_unit=True)
    assert len(_demo_records(session, operator_id)) == 1

    _patch(client, world, staff_headers, is_demonstration_unit=False)
    [revoked] = _demo_records(session, operator_id)
    assert revoked.state is RecordState.REVOKED and revoked.version == 2
    versions = session.exec(
        select(IntegrityRecordVersion)
        .where(IntegrityRecordVersion.record_id == record.id)
        .order_by(col(IntegrityRecordVersion.version))
    ).all()
    assert [v.change.value for v in versions] == ["create", "revoke"]
    actions = [e.action for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()]
    assert actions.count("record.create") == 1 and actions.count("record.revoke") == 1
    assert len(_events(session, "record.changed")) == 2

    # Designated again later: a new record (the revoked one stays revoked, with its history).
    _patch(client, world, staff_headers, is_demonstration_unit=True)
    states = [r.state for r in _demo_records(session, operator_id)]
    assert states == [RecordState.REVOKED, RecordState.VERIFIED]


def test_the_good_record_counts_for_the_operator_rating(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    operator_id = world.operator.id or 0
    _patch(client, world, staff_headers, is_demonstration_unit=True, management_assessment="sound")
    rating.rerate_operator(session, operator_id)
    body = client.get(f"/api/v1/operators/{operator_id}/rating", headers=staff_headers).json()
    assert body["class"] == "trustworthy" and body["stored"] is True
    [record] = _demo_records(session, operator_id)
    assert any(record.id in r["record_ids"] for r in body["reasons"])
    _patch(client, world, staff_headers, is_demonstration_unit=False)
    rating.rerate_operator(session, operator_id)
    body = client.get(f"/api/v1/operators/{operator_id}/rating", headers=staff_headers).json()
    assert all(record.id not in r["record_ids"] for r in body["reasons"])
