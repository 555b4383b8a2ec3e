"""Reminder sweeps: each step once per due date or interview time, however often the sweep runs."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import date, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.db import utcnow
from backend.instruments.models import Instrument, InstrumentStatus
from backend.notices import delivery
from backend.notices import reminders as reminder_sweeps
from backend.notices.reminders import sweep_due_instruments, sweep_interview_reminders
from backend.operators.models import Operator
from backend.outbox.models import OutboxEvent
from backend.supervision.models import Interview, InterviewKind, InterviewStatus
from tests.factories import COUNTY_A, make_account, make_instrument, make_operator

TODAY = date(2026, 6, 1)


@pytest.fixture
def operator(session: Session) -> Operator:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    make_account(session, Role.operator, operator_id=operator.id)
    return operator


def _instrument(
    session: Session, operator: Operator, valid_until: date | None, **values: object
) -> Instrument:
    instrument = make_instrument(session, operator)
    instrument.last_verified_on = TODAY - timedelta(days=300) if valid_until else None
    instrument.last_passed = True if valid_until else None
    instrument.valid_until = valid_until
    for key, value in values.items():
        setattr(instrument, key, value)
    session.add(instrument)
    session.flush()
    return instrument


def _due_keys(session: Session) -> list[str]:
    rows = session.exec(
        select(OutboxEvent.dedupe_key)
        .where(OutboxEvent.topic == "instrument.due")
        .order_by(col(OutboxEvent.id))
    )
    return [k for k in rows.all() if k is not None]


def _sweep(session: Session, today: date, batch: int = reminder_sweeps.BATCH) -> int:
    return sweep_due_instruments(today, batch=batch, unit_of_work=lambda: nullcontext(session))


def test_each_step_is_emitted_once_per_due_date(session: Session, operator: Operator) -> None:
    days = {30: "30d", 8: "30d", 7: "7d", 2: "7d", 1: "1d", 0: "1d"}
    made = {d: _instrument(session, operator, TODAY + timedelta(days=d)) for d in days}
    _instrument(session, operator, TODAY + timedelta(days=31))  # not yet
    _instrument(session, operator, TODAY - timedelta(days=1))  # overdue: the overdue sweep's event
    _instrument(session, operator, TODAY + timedelta(days=3), status=InstrumentStatus.retired)
    _instrument(session, operator, None)  # never verified
    assert _sweep(session, TODAY) == len(days)
    expected = {
        f"instrument.due:{made[d].id}:{(TODAY + timedelta(days=d)).isoformat()}:{step}"
        for d, step in days.items()
    }
    assert set(_due_keys(session)) == expected
    # The same day again, and in small pages: nothing new.
    assert _sweep(session, TODAY) == 0
    assert _sweep(session, TODAY, batch=2) == 0
    assert set(_due_keys(session)) == expected
    event = session.exec(select(OutboxEvent).where(OutboxEvent.dedupe_key == sorted(expected)[0])).one()
    assert set(event.payload) == {"instrument_id", "operator_id", "valid_until", "threshold", "as_of"}


def test_next_steps_follow_as_days_pass_and_renewal_starts_afresh(
    session: Session, operator: Operator
) -> None:
    instrument = _instrument(session, operator, TODAY + timedelta(days=8))
    assert _sweep(session, TODAY) == 1  # 30d step
    assert _sweep(session, TODAY + timedelta(days=1)) == 1  # 7 days left: the 7d step
    assert _sweep(session, TODAY + timedelta(days=2)) == 0
    assert _sweep(session, TODAY + timedelta(days=7)) == 1  # 1 day left
    assert _sweep(session, TODAY + timedelta(days=9)) == 0  # overdue: not this sweep's event
    assert len(_due_keys(session)) == 3
    instrument.valid_until = TODAY + timedelta(days=375)
    session.add(instrument)
    session.flush()
    assert _sweep(session, TODAY + timedelta(days=345)) == 1  # a new due date, a new 30d reminder


def test_missed_days_skip_stale_steps(session: Session, operator: Operator) -> None:
    _instrument(session, operator, TODAY + timedelta(days=5))
    assert _sweep(session, TODAY) == 1
    assert _due_keys(session)[0].endswith(":7d")  # the 30d step was missed and is not sent late


def test_pages_cover_ties_on_the_due_date_exactly_once(session: Session, operator: Operator) -> None:
    for _ in range(7):
        _instrument(session, operator, TODAY + timedelta(days=10))
    for _ in range(3):
        _instrument(session, operator, TODAY + timedelta(days=11))
    seen = []
    after = None
    while True:
        rows = reminder_sweeps.find_due(session, TODAY, after, 3)
        seen += [r[0] for r in rows]
        if len(rows) < 3:
            break
        after = (rows[-1][1], rows[-1][0])
    assert len(seen) == len(set(seen)) == 10
    assert _sweep(session, TODAY, batch=3) == 10


def test_due_events_become_inbox_reminders(session: Session, operator: Operator) -> None:
    from backend.records.service import bureau_today

    today = bureau_today()
    _instrument(session, operator, today + timedelta(days=7))
    assert _sweep(session, today) == 1
    event = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "instrument.due")).one()
    report, _due = delivery.dispatch(
        event.id or 0, push_enabled=False, unit_of_work=lambda: nullcontext(session)
    )
    assert report.inbox_written == 1


def _interview(
    session: Session, operator: Operator, at: datetime, created: datetime, **values: object
) -> Interview:
    interview = Interview(
        operator_id=operator.id or 0,
        kind=values.pop("kind", InterviewKind.interview),
        scheduled_at=at,
        place="三楼会议室",
        subject="约谈",
        legal_basis="第十二条",
        class_at_scheduling="untrustworthy",
        created_at=created,
        **values,
    )
    session.add(interview)
    session.flush()
    return interview


def _reminders(session: Session) -> list[str]:
    rows = session.exec(
        select(OutboxEvent.payload)
        .where(OutboxEvent.topic == "interview.reminder")
        .order_by(col(OutboxEvent.id))
    )
    return [str(p["reminder"]) for p in rows.all()]


def _isweep(session: Session, now: datetime) -> int:
    return sweep_interview_reminders(now, unit_of_work=lambda: nullcontext(session))


def test_interview_reminders_24h_then_1h_once_each(session: Session, operator: Operator) -> None:
    now = utcnow()
    at = now + timedelta(days=2)
    _interview(session, operator, at, created=now - timedelta(days=1))
    assert _isweep(session, now) == 0  # more than 24 h ahead
    assert _isweep(session, at - timedelta(hours=23)) == 1
    assert _isweep(session, at - timedelta(hours=22)) == 0
    assert _isweep(session, at - timedelta(minutes=50)) == 1
    assert _isweep(session, at - timedelta(minutes=10)) == 0
    assert _isweep(session, at + timedelta(minutes=1)) == 0
    assert _reminders(session) == ["24h", "1h"]


def test_late_sweep_sends_only_the_most_urgent_step(session: Session, operator: Operator) -> None:
    now = utcnow()
    at = now + timedelta(days=2)
    _interview(session, operator, at, created=now - timedelta(days=1))
    assert _isweep(session, at - timedelta(minutes=30)) == 1
    assert _reminders(session) == ["1h"]


def test_short_notice_and_closed_interviews(session: Session, operator: Operator) -> None:
    now = utcnow()
    at = now + timedelta(days=2)
    # Scheduled three hours ahead: its summons is the notice; the 24 h reminder is never planned.
    _interview(session, operator, at, created=at - timedelta(hours=3))
    _interview(session, operator, at, created=now - timedelta(days=3), status=InterviewStatus.cancelled)
    _interview(session, operator, at, created=now - timedelta(days=3), status=InterviewStatus.held)
    _interview(session, operator, at, created=now - timedelta(days=3), kind=InterviewKind.reminder)
    assert _isweep(session, at - timedelta(hours=2)) == 0
    assert _isweep(session, at - timedelta(minutes=30)) == 1
    assert _reminders(session) == ["1h"]


def test_moved_interview_gets_its_own_reminders(session: Session, operator: Operator) -> None:
    now = utcnow()
    at = now + timedelta(days=2)
    interview = _interview(session, operator, at, created=now - timedelta(days=1))
    assert _isweep(session, at - timedelta(hours=20)) == 1
    interview.scheduled_at = at + timedelta(hours=3)
    session.add(interview)
    session.flush()
    assert _isweep(session, at - timedelta(hours=20)) == 1
    assert _reminders(session) == ["24h", "24h"]


def test_overdue_sweep_emits_one_event_per_instrument_and_due_date_in_pages(
    session: Session, operator: Operator
) -> None:
    from backend.instruments.sweep import sweep_overdue_instruments

    overdue = [_instrument(session, operator, TODAY - timedelta(days=d)) for d in (1, 2, 40, 400)]
    _instrument(session, operator, TODAY)  # valid through today
    _instrument(session, operator, TODAY - timedelta(days=3), status=InstrumentStatus.retired)
    _instrument(session, operator, None)

    def sweep(today: date, batch: int) -> int:
        return sweep_overdue_instruments(today, batch=batch, unit_of_work=lambda: nullcontext(session))

    assert sweep(TODAY, 3) == 4  # two pages of three
    assert sweep(TODAY, 3) == 0
    assert sweep(TODAY + timedelta(days=1), 5000) == 1  # the one valid through today is overdue now
    rows = session.exec(
        select(OutboxEvent).where(OutboxEvent.topic == "instrument.overdue").order_by(col(OutboxEvent.id))
    ).all()
    keys = {row.dedupe_key for row in rows}
    assert {f"instrument.overdue:{i.id}:{i.valid_until}" for i in overdue} <= keys
    assert len(keys) == len(rows) == 5
    first = next(
        row
        for row in rows
        if row.dedupe_key == f"instrument.overdue:{overdue[0].id}:{overdue[0].valid_until}"
    )
    assert first.payload == {
        "instrument_id": overdue[0].id,
        "operator_id": operator.id,
        "valid_until": (TODAY - timedelta(days=1)).isoformat(),
    }
    assert first.published_at is None and first.available_at is not None
