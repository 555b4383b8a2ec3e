"""Self-commitment (Art. 8): signing is a good record; a later verified violation records the breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.service import SYSTEM
from backend.operators.models import SelfCommitment
from backend.records import rating, service
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import IntegrityClass, RecordKind, RecordState
from tests.backend.records.conftest import World
from tests.factories import make_record

TODAY = service.bureau_today()


def _sign(session: Session, world: World, days_ago: int) -> SelfCommitment:
    """A commitment signed ``days_ago`` days ago (written directly: signing stamps the current time)."""
    from backend.operators import service as operators
    from backend.operators.schemas import SelfCommitmentCreate

    commitment = operators.sign_commitment(
        session,
        operator=world.operator,
        data=SelfCommitmentCreate(text_version="2017-1", signer="周明"),
        actor=world.operator_user,
    )
    commitment.signed_at = datetime.now(UTC) - timedelta(days=days_ago)
    session.add(commitment)
    session.flush()
    return commitment


def _breaches(session: Session, world: World) -> list[IntegrityRecord]:
    return list(
        session.exec(
            select(IntegrityRecord)
            .where(
                IntegrityRecord.operator_id == world.operator.id,
                IntegrityRecord.kind == RecordKind.COMMITMENT_BREACHED,
            )
            .order_by(col(IntegrityRecord.id))
            .execution_options(populate_existing=True)
        ).all()
    )


def test_signing_in_the_app_creates_a_verified_good_record(
    client: TestClient, session: Session, world: World, operator_headers: dict[str, str]
) -> None:
    resp = client.post(
        f"/api/v1/operators/{world.operator.id}/self-commitment",
        json={"text_version": "2017-1", "signer": "周明"},
        headers=operator_headers,
    )
    assert resp.status_code == 201, resp.text
    [record] = session.exec(
        select(IntegrityRecord).where(IntegrityRecord.kind == RecordKind.COMMITMENT_KEPT)
    ).all()
    assert record.state is RecordState.VERIFIED and record.source is RecordSource.self_commitment
    assert record.source_ref == f"self_commitment:{resp.json()['id']}"
    assert record.fact_date == TODAY and record.author_id == world.operator_user.id
    rating.rerate_operator(session, world.operator.id or 0)
    reasons = rating.current(session, world.operator).reasons
    assert reasons[-1]["rule"] == "good_record" and reasons[-1]["record_ids"] == [record.id]


def test_a_verified_violation_under_the_commitment_records_the_breach(session: Session, world: World) -> None:
    commitment = _sign(session, world, days_ago=60)
    violation = make_record(session, world.operator, "short_weight", fact_date=TODAY - timedelta(days=10))
    [breach] = _breaches(session, world)
    assert breach.state is RecordState.VERIFIED and breach.source_ref == f"self_commitment:{commitment.id}"
    assert breach.evidence_refs == [f"record:{violation.id}"] and breach.fact_date == violation.fact_date
    # A breach is a bad record of Art. 8 but no Art. 13 condition: the gap rule, citing both records.
    rating.rerate_operator(session, world.operator.id or 0)
    current = rating.current(session, world.operator)
    assert current.cls is IntegrityClass.BASICALLY_TRUSTWORTHY
    gap = current.reasons[0]
    assert gap["rule"] == "bad_record_below_untrustworthy_threshold"
    assert sorted(gap["record_ids"]) == sorted([violation.id, breach.id])


def test_a_violation_before_or_on_the_signing_day_is_no_breach(session: Session, world: World) -> None:
    _sign(session, world, days_ago=10)
    make_record(session, world.operator, "short_weight", fact_date=TODAY - timedelta(days=10))
    make_record(session, world.operator, "metrology_cheating", fact_date=TODAY - timedelta(days=30))
    assert _breaches(session, world) == []


def test_reported_violations_and_other_kinds_do_not_breach(session: Session, world: World) -> None:
    _sign(session, world, days_ago=60)
    make_record(session, world.operator, "short_weight", fact_date=TODAY - timedelta(days=5), verified=False)
    make_record(session, world.operator, "association_warning", fact_date=TODAY - timedelta(days=5))
    assert _breaches(session, world) == []


def test_one_breach_per_commitment_following_its_earliest_violation(session: Session, world: World) -> None:
    _sign(session, world, days_ago=100)
    later = make_record(session, world.operator, "short_weight", fact_date=TODAY - timedelta(days=10))
    earlier = make_record(
        session, world.operator, "complaint_substantiated", fact_date=TODAY - timedelta(days=40)
    )
    [breach] = _breaches(session, world)
    assert breach.evidence_refs == [f"record:{earlier.id}"] and breach.version == 2
    service.revoke(session, earlier, actor=SYSTEM, reason="投诉经复核不实")
    [breach] = _breaches(session, world)
    assert breach.evidence_refs == [f"record:{later.id}"] and breach.fact_date == later.fact_date
    service.revoke(session, later, actor=SYSTEM, reason="称重记录有误")
    [breach] = _breaches(session, world)
    assert breach.state is RecordState.REVOKED


def test_a_breach_staff_revoked_stays_revoked(session: Session, world: World) -> None:
    _sign(session, world, days_ago=60)
    violation = make_record(session, world.operator, "short_weight", fact_date=TODAY - timedelta(days=10))
    [breach] = _breaches(session, world)
    service.revoke(session, breach, actor=SYSTEM, reason="承诺书签署无效")
    service.correct(session, violation, actor=SYSTEM, reason="补充说明", changes={"summary": "补充"})
    assert [b.state for b in _breaches(session, world)] == [RecordState.REVOKED]
