"""Records tasks after commit: the relay's record.changed re-rates, overdue instruments become records, nightly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.auth.scope import Scope
from backend.instruments.sweep import sweep_overdue_instruments
from backend.jurisdictions.models import Jurisdiction
from backend.operators import service as operators
from backend.operators.models import ManagementAssessment
from backend.operators.schemas import OperatorUpdate
from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from backend.records import rating, service
from backend.records.models import (
    IntegrityRecord,
    OperatorRating,
    RatingChange,
    RatingTrigger,
    RecordSource,
)
from backend.records.rules import IntegrityClass, RecordKind, RecordState
from tests.factories import make_account, make_instrument, make_operator, make_record
from workers import records_tasks
from workers.celery_app import celery_app

TODAY = service.bureau_today()


class Broker:
    """A broker stand-in: collects what the relay sends, and runs this issue's tasks as a worker would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    def __call__(self, name: str, args: list[Any], task_id: str) -> None:
        self.sent.append((name, args))

    def work(self) -> None:
        """Run the records tasks sent so far (after the relay's commit, like a separate worker process)."""
        for name, args in self.sent:
            if name.startswith("gongping.records."):
                celery_app.tasks[name](*args)
        self.sent.clear()


def _relay_and_work(session: Session) -> None:
    broker = Broker()
    relay.relay_once(session, sender=broker)
    session.commit()
    broker.work()


def test_record_change_is_rerated_by_the_worker_after_commit(committed_session: Session) -> None:
    session = committed_session
    staff = make_account(session, Role.staff, "330106")
    operator = make_operator(session, staff)
    record = make_record(session, operator, "inspection_failed")
    session.commit()
    _relay_and_work(session)

    stored = session.exec(
        select(OperatorRating)
        .where(OperatorRating.operator_id == operator.id)
        .execution_options(populate_existing=True)
    ).one()
    assert stored.cls is IntegrityClass.UNTRUSTWORTHY and stored.reasons[0]["record_ids"] == [record.id]
    [change] = session.exec(select(RatingChange).where(RatingChange.operator_id == operator.id)).all()
    [event] = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "rating.changed")).all()
    assert event.payload["change_id"] == change.id and event.published_at is None

    # Delivered again (a crash between send and mark): nothing more happens.
    record_event = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "record.changed")).one()
    session.commit()  # SQLite: every transaction takes the write lock, so end ours before the worker's
    assert records_tasks.rerate_operator_task(record_event.id) is False
    assert len(session.exec(select(RatingChange).where(RatingChange.operator_id == operator.id)).all()) == 1


def test_overdue_sweep_leads_to_a_reported_record(committed_session: Session) -> None:
    session = committed_session
    staff = make_account(session, Role.staff, "330106")
    operator = make_operator(session, staff)
    scale = make_instrument(session, operator, verified_on=TODAY - timedelta(days=800))
    session.commit()
    assert sweep_overdue_instruments(TODAY) == 1
    _relay_and_work(session)
    [record] = session.exec(
        select(IntegrityRecord)
        .where(IntegrityRecord.instrument_id == scale.id)
        .execution_options(populate_existing=True)
    ).all()
    assert record.kind is RecordKind.INSTRUMENT_OVERDUE and record.state is RecordState.REPORTED
    assert record.source is RecordSource.overdue_sweep and record.fact_date == scale.valid_until + timedelta(
        days=1
    )  # type: ignore[operator]
    event = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "instrument.overdue")).one()
    session.commit()
    assert records_tasks.record_overdue_instrument_task(event.id) == record.id  # idempotent on its reference
    assert session.exec(select(RatingChange).where(RatingChange.operator_id == operator.id)).all() == []


def test_a_reverified_instrument_gets_no_overdue_record(session: Session) -> None:
    staff = make_account(session, Role.staff, "330106")
    operator = make_operator(session, staff)
    scale = make_instrument(session, operator, verified_on=TODAY - timedelta(days=10))
    assert scale.valid_until is not None
    stale = scale.valid_until - timedelta(days=400)
    assert service.record_overdue_instrument(session, instrument_id=scale.id or 0, valid_until=stale) is None


def test_nightly_task_fans_out_one_task_per_range(
    committed_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = committed_session
    staff = make_account(session, Role.staff, "330106")
    operators = [make_operator(session, staff) for _ in range(3)]
    make_record(session, operators[1], "complaint_substantiated", fact_date=TODAY - timedelta(days=9))
    session.commit()
    sent: list[list[Any]] = []
    monkeypatch.setattr(records_tasks, "RANGE_SIZE", 2)
    monkeypatch.setattr(
        records_tasks.rerate_range_task,
        "apply_async",
        lambda args: sent.append(args) or records_tasks.rerate_range_task(*args),
    )
    count = records_tasks.rerate_all_task(TODAY.isoformat())
    assert count == len(sent) >= 2
    session.expire_all()
    stored = session.exec(
        select(OperatorRating).where(col(OperatorRating.operator_id).in_([o.id for o in operators]))
    ).all()
    assert [(r.operator_id, r.cls) for r in stored] == [
        (operators[1].id, IntegrityClass.BASICALLY_TRUSTWORTHY)
    ]


def test_a_changed_management_assessment_is_rerated_by_the_worker(committed_session: Session) -> None:
    session = committed_session
    staff = make_account(session, Role.staff, "330106")
    operator = make_operator(session, staff)
    make_record(session, operator, "commitment_kept")  # a stored row: 基本守信 while not assessed
    session.commit()
    _relay_and_work(session)
    jurisdiction = session.get(Jurisdiction, "330106")
    assert jurisdiction is not None
    scope = Scope(staff, jurisdiction.path)
    operators.update(
        session,
        operator=operator,
        data=OperatorUpdate(management_assessment=ManagementAssessment.sound),
        scope=scope,
    )
    session.commit()
    broker = Broker()
    relay.relay_once(session, sender=broker)
    session.commit()
    assert ("gongping.records.rerate_operator", [ANY]) in broker.sent
    broker.work()
    session.expire_all()
    changes = session.exec(
        select(RatingChange).where(RatingChange.operator_id == operator.id).order_by(col(RatingChange.id))
    ).all()
    assert [(c.to_cls, c.trigger) for c in changes][-1] == (IntegrityClass.TRUSTWORTHY, RatingTrigger.manual)
    entry = session.exec(
        select(AuditEntry).where(AuditEntry.action == "rating.change").order_by(col(AuditEntry.seq).desc())
    ).first()
    assert entry is not None and entry.after is not None and entry.after["trigger"] == "manual"


def test_the_worker_rewrites_reasons_without_a_class_change_and_matches_the_engine(
    committed_session: Session,
) -> None:
    session = committed_session
    staff = make_account(session, Role.staff, "330106")
    operator = make_operator(session, staff)
    first = make_record(session, operator, "inspection_failed", fact_date=TODAY - timedelta(days=20))
    session.commit()
    _relay_and_work(session)
    second = make_record(session, operator, "inspection_failed", fact_date=TODAY - timedelta(days=2))
    make_record(session, operator, "commitment_kept", fact_date=TODAY - timedelta(days=1))
    session.commit()
    _relay_and_work(session)
    session.expire_all()
    stored = session.exec(select(OperatorRating).where(OperatorRating.operator_id == operator.id)).one()
    assert stored.cls is IntegrityClass.UNTRUSTWORTHY and stored.revision == 2
    assert stored.reasons[0]["record_ids"] == sorted([first.id, second.id])
    # What is stored is exactly what the per-operator path derives (reasons, signature), so it has nothing to do.
    expected = rating.load_stored(session, operator_ids=[operator.id or 0], with_reasons=True)[
        operator.id or 0
    ]
    assert rating.rerate_operator(session, operator.id or 0).candidates == 0
    assert expected.signature == stored.signature
    assert len(session.exec(select(RatingChange).where(RatingChange.operator_id == operator.id)).all()) == 1
    # An event for an operator that does not exist any more (or a lost event) is a no-op.
    session.commit()
    assert rating.rerate_for_event(10**9) == rating.RerateReport()
