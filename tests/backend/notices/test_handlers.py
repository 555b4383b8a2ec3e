"""Event handlers: who is told what for each topic, stale events dropped, no complainant data to operators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.audit.service import SYSTEM
from backend.auth.models import Account, Role
from backend.complaints.models import Complaint, ComplaintCategory, ComplaintSource
from backend.db import utcnow
from backend.instruments.models import InstrumentStatus
from backend.notices.delivery import resolve_context
from backend.notices.handlers import HANDLERS, Localized, Notice, notices_for
from backend.operators.models import Operator
from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.records import service as records
from backend.records.models import CorrectionAction, CorrectionRequest, RecordSource
from backend.records.service import bureau_today
from backend.supervision.models import Interview, InterviewKind, InterviewStatus
from notifications.templates import KINDS, is_identifying_key, render
from tests.factories import COUNTY_A, make_account, make_instrument, make_operator


@dataclass
class Shop:
    """An operator with two users (one disabled), its county's staff and a consumer."""

    staff: Account
    operator: Operator
    user: Account
    consumer: Account


@pytest.fixture
def shop(session: Session) -> Shop:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff, name="西溪菜场")
    user = make_account(session, Role.operator, operator_id=operator.id)
    disabled = make_account(session, Role.operator, operator_id=operator.id)
    disabled.is_active = False
    session.add(disabled)
    consumer = make_account(session, Role.consumer_device)
    session.flush()
    return Shop(staff, operator, user, consumer)


def _event(session: Session, topic: str, payload: dict[str, Any]) -> OutboxEvent:
    emit(session, topic, payload)
    event = session.exec(
        select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(col(OutboxEvent.id).desc())
    ).first()
    assert event is not None
    return event


def _render_all(notice: Notice) -> None:
    """Every notice must render in both languages (the contract between handler and template)."""
    for locale in ("zh-CN", "en"):
        render(notice.kind, locale, resolve_context(notice.context, locale, "Asia/Shanghai"))


def _complaint(session: Session, filer: Account, operator: Operator, source: ComplaintSource) -> Complaint:
    complaint = Complaint(
        account_id=filer.id or 0,
        filer_role=filer.role,
        source=source,
        category=ComplaintCategory.short_weight,
        operator_id=operator.id,
        contact_name="李四",
        contact_phone="13900139000",
    )
    session.add(complaint)
    session.flush()
    return complaint


def test_every_notification_topic_has_a_handler_and_is_routed_to_dispatch() -> None:
    assert set(HANDLERS) == set(relay.NOTIFICATION_TOPICS)
    for topic in relay.NOTIFICATION_TOPICS:
        assert "gongping.notifications.dispatch" in relay.TOPIC_TASKS[topic]
    # The other consumers of shared topics are kept.
    assert "gongping.complaints.process_photos" in relay.TOPIC_TASKS["complaint.created"]
    assert "gongping.records.rerate_operator" in relay.TOPIC_TASKS["record.changed"]


def test_instrument_due_tells_active_operator_users(session: Session, shop: Shop) -> None:
    today = bureau_today()
    instrument = make_instrument(session, shop.operator, verified_on=today - timedelta(days=358))
    assert instrument.valid_until is not None
    days_left = (instrument.valid_until - today).days
    payload = {
        "instrument_id": instrument.id,
        "operator_id": shop.operator.id,
        "valid_until": instrument.valid_until.isoformat(),
        "threshold": "7d",
        "as_of": today.isoformat(),
    }
    [notice] = notices_for(session, _event(session, "instrument.due", payload))
    assert notice.recipients == (shop.user.id,) and notice.kind == "verification_due"
    assert (
        notice.context["days_left"] == days_left and notice.context["valid_until"] == instrument.valid_until
    )
    name = notice.context["instrument_name"]
    assert isinstance(name, Localized) and instrument.serial in name.zh and "电子计价秤" in name.zh
    assert "price-computing scale" in name.en
    _render_all(notice)
    # Re-verified meanwhile: the reminder about the old date is dropped.
    stale = {**payload, "valid_until": (instrument.valid_until - timedelta(days=365)).isoformat()}
    assert notices_for(session, _event(session, "instrument.due", stale)) == []
    assert notices_for(session, _event(session, "instrument.due", {**payload, "threshold": "9d"})) == []
    instrument.status = InstrumentStatus.retired
    session.add(instrument)
    session.flush()
    assert notices_for(session, _event(session, "instrument.due", payload)) == []


def test_instrument_overdue_is_the_required_notice(session: Session, shop: Shop) -> None:
    instrument = make_instrument(session, shop.operator, verified_on=bureau_today() - timedelta(days=400))
    assert instrument.valid_until is not None
    payload = {
        "instrument_id": instrument.id,
        "operator_id": shop.operator.id,
        "valid_until": instrument.valid_until.isoformat(),
    }
    [notice] = notices_for(session, _event(session, "instrument.overdue", payload))
    assert notice.kind == "verification_overdue" and notice.recipients == (shop.user.id,)
    assert not KINDS[notice.kind].mutable
    _render_all(notice)


def test_complaint_created_acknowledges_the_consumer_only(session: Session, shop: Shop) -> None:
    complaint = _complaint(session, shop.consumer, shop.operator, ComplaintSource.consumer)
    [notice] = notices_for(
        session, _event(session, "complaint.created", {"complaint_id": complaint.id, "photo_ids": []})
    )
    assert notice.recipients == (shop.consumer.id,) and notice.kind == "complaint_received"
    assert notice.context == {
        "complaint_ref": str(complaint.id),
        "case_no": f"TS{bureau_today().year}{complaint.id:08d}",
        "received_on": bureau_today(),
    }
    _render_all(notice)
    supervisor = make_account(session, Role.supervisor, COUNTY_A)
    report = _complaint(session, supervisor, shop.operator, ComplaintSource.supervisor)
    assert notices_for(session, _event(session, "complaint.created", {"complaint_id": report.id})) == []


def test_verified_bad_record_is_a_finding_for_the_operator(session: Session, shop: Shop) -> None:
    record = records.create(
        session,
        operator=shop.operator,
        kind="short_weight",
        fact_date=bureau_today() - timedelta(days=3),
        source=RecordSource.complaint,
        state="reported",
        actor=SYSTEM,
    )
    reported = {"record_id": record.id, "operator_id": shop.operator.id, "version": record.version}
    assert notices_for(session, _event(session, "record.changed", reported)) == []
    records.verify(session, record, actor=SYSTEM, reason="查实")
    verified = {"record_id": record.id, "operator_id": shop.operator.id, "version": record.version}
    [notice] = notices_for(session, _event(session, "record.changed", verified))
    assert notice.kind == "finding_against_operator" and notice.recipients == (shop.user.id,)
    assert notice.context["record_kind"] == "short_weight"
    assert "西湖区" in str(notice.context["bureau_name"])
    assert notice.context["finding_id"] == str(record.id)
    _render_all(notice)
    # A good record is no finding.
    good = records.create(
        session,
        operator=shop.operator,
        kind="commitment_kept",
        fact_date=bureau_today() - timedelta(days=1),
        source=RecordSource.self_commitment,
        state="verified",
        actor=SYSTEM,
    )
    payload = {"record_id": good.id, "operator_id": shop.operator.id, "version": good.version}
    assert notices_for(session, _event(session, "record.changed", payload)) == []


def test_rating_and_correction_notices(session: Session, shop: Shop) -> None:
    payload = {
        "operator_id": shop.operator.id,
        "change_id": 1,
        "from": "basically_trustworthy",
        "to": "untrustworthy",
        "as_of": "2026-11-20",
    }
    [rating] = notices_for(session, _event(session, "rating.changed", payload))
    assert rating.kind == "rating_changed" and rating.context["effective_on"] == date(2026, 11, 20)
    _render_all(rating)
    record = records.create(
        session,
        operator=shop.operator,
        kind="short_weight",
        fact_date=bureau_today() - timedelta(days=3),
        source=RecordSource.staff,
        state="verified",
        actor=SYSTEM,
    )
    expected = {"correct": "partially_approved", "revoke": "approved", "reject": "rejected"}
    for decision, outcome in expected.items():
        row = CorrectionRequest(
            record_id=record.id or 0,
            operator_id=shop.operator.id or 0,
            requested_by_id=shop.user.id or 0,
            action=CorrectionAction.revoke,
            reasons="称已校准",
            record_version=record.version,
            due_on=bureau_today(),
            decided_at=utcnow(),
        )
        session.add(row)
        session.flush()
        event = _event(
            session,
            "correction.decided",
            {
                "correction_id": row.id,
                "record_id": record.id,
                "operator_id": shop.operator.id,
                "decision": decision,
            },
        )
        [notice] = notices_for(session, event)
        assert notice.kind == "correction_decided" and notice.context["decision"] == outcome
        _render_all(notice)


def _interview(session: Session, shop: Shop, **values: Any) -> Interview:
    interview = Interview(
        operator_id=shop.operator.id or 0,
        kind=values.pop("kind", InterviewKind.interview),
        scheduled_at=values.pop("scheduled_at", utcnow() + timedelta(days=2)),
        place="西湖区市场监管局三楼会议室",
        subject="计量器具超期使用",
        legal_basis="第十二条",
        class_at_scheduling="untrustworthy",
        created_by_id=shop.staff.id,
        **values,
    )
    session.add(interview)
    session.flush()
    return interview


def test_interview_scheduled_and_reminders(session: Session, shop: Shop) -> None:
    interview = _interview(session, shop)
    payload = {"interview_id": interview.id, "operator_id": shop.operator.id, "kind": "interview"}
    [notice] = notices_for(session, _event(session, "interview.scheduled", payload))
    assert notice.kind == "interview_scheduled" and "西湖区" in str(notice.context["bureau_name"])
    assert isinstance(notice.context["scheduled_at"], datetime)
    _render_all(notice)
    assert interview.scheduled_at is not None
    at = interview.scheduled_at.astimezone(UTC).isoformat()
    reminder = {
        "interview_id": interview.id,
        "operator_id": shop.operator.id,
        "scheduled_at": at,
        "reminder": "1h",
    }
    [notice] = notices_for(session, _event(session, "interview.reminder", reminder))
    assert notice.kind == "interview_reminder" and notice.context["lead"] == "1h"
    _render_all(notice)
    moved = {**reminder, "scheduled_at": (interview.scheduled_at + timedelta(hours=2)).isoformat()}
    assert notices_for(session, _event(session, "interview.reminder", moved)) == []
    interview.status = InterviewStatus.cancelled
    session.add(interview)
    session.flush()
    assert notices_for(session, _event(session, "interview.reminder", reminder)) == []
    assert notices_for(session, _event(session, "interview.scheduled", payload)) == []
    # The cancellation is notified (once the interview really is cancelled, and only for a summons).
    [cancelled] = notices_for(session, _event(session, "interview.cancelled", payload))
    assert cancelled.kind == "interview_cancelled" and cancelled.recipients == (shop.user.id,)
    assert cancelled.context["scheduled_at"] == interview.scheduled_at
    assert "西湖区" in str(cancelled.context["bureau_name"])
    _render_all(cancelled)


def test_written_reminder_is_its_own_notice_and_its_cancellation_is_not_notified(
    session: Session, shop: Shop
) -> None:
    # A written reminder (提醒) has no time and place: not a summons, a reminder notice.
    written = _interview(session, shop, kind=InterviewKind.reminder, scheduled_at=None)
    payload = {"interview_id": written.id, "operator_id": shop.operator.id, "kind": "reminder"}
    [notice] = notices_for(session, _event(session, "interview.scheduled", payload))
    assert notice.kind == "reminder_notice" and notice.recipients == (shop.user.id,)
    assert set(notice.context) == {"interview_id", "bureau_name"} and "西湖区" in str(
        notice.context["bureau_name"]
    )
    _render_all(notice)
    written.status = InterviewStatus.cancelled
    session.add(written)
    session.flush()
    assert notices_for(session, _event(session, "interview.scheduled", payload)) == []
    assert notices_for(session, _event(session, "interview.cancelled", payload)) == []
    # An interview still open is not "cancelled", whatever an event says.
    still_on = _interview(session, shop)
    assert notices_for(session, _event(session, "interview.cancelled", {"interview_id": still_on.id})) == []


def test_case_topics_follow_the_documented_contract(session: Session, shop: Shop) -> None:
    other_staff = make_account(session, Role.staff, COUNTY_A)
    payload = {"case_id": 7, "case_no": "XH-2026-0007", "jurisdiction_code": COUNTY_A, "due_on": "2026-12-04"}
    [assigned] = notices_for(session, _event(session, "case.assigned", payload))
    assert assigned.kind == "case_assigned" and set(assigned.recipients) == {shop.staff.id, other_staff.id}
    _render_all(assigned)
    [overdue] = notices_for(
        session, _event(session, "case.overdue", {**payload, "assignee_id": other_staff.id})
    )
    assert overdue.kind == "case_overdue" and overdue.recipients == (other_staff.id,)
    _render_all(overdue)
    complaint = _complaint(session, shop.consumer, shop.operator, ComplaintSource.consumer)
    outcome = {
        "case_id": 7,
        "case_no": "TS202600000007",
        "complaint_id": complaint.id,
        "jurisdiction_code": COUNTY_A,
        "outcome": "mediated",
    }
    [told] = notices_for(session, _event(session, "case.outcome", outcome))
    assert told.kind == "complaint_outcome" and told.recipients == (shop.consumer.id,)
    assert told.context["case_no"] == "TS202600000007"
    _render_all(told)
    supervisor = make_account(session, Role.supervisor, COUNTY_A)
    report = _complaint(session, supervisor, shop.operator, ComplaintSource.supervisor)
    [adopted] = notices_for(
        session,
        _event(session, "case.outcome", {**outcome, "complaint_id": report.id, "outcome": "substantiated"}),
    )
    assert adopted.kind == "supervisor_report_outcome" and adopted.context["outcome"] == "adopted"
    assert adopted.recipients == (supervisor.id,)
    _render_all(adopted)
    assert notices_for(session, _event(session, "case.outcome", {**outcome, "outcome": "won"})) == []


def test_operator_facing_contexts_never_identify_anyone_else(session: Session, shop: Shop) -> None:
    # Every handler's operator-facing notice, built from events about complaints and supervisor reports too.
    complaint = _complaint(session, shop.consumer, shop.operator, ComplaintSource.consumer)
    record = records.create(
        session,
        operator=shop.operator,
        kind="complaint_substantiated",
        fact_date=bureau_today() - timedelta(days=2),
        source=RecordSource.complaint,
        source_ref=f"complaint:{complaint.id}",
        state="verified",
        actor=SYSTEM,
    )
    event = _event(
        session, "record.changed", {"record_id": record.id, "operator_id": shop.operator.id, "version": 1}
    )
    [notice] = notices_for(session, event)
    assert KINDS[notice.kind].audience == "operator"
    assert not [key for key in notice.context if is_identifying_key(key)]
    flat = " ".join(str(v) for v in notice.context.values())
    for personal in ("李四", "13900139000", shop.consumer.username):
        assert personal not in flat
