"""Reminder sweeps on beat: verification due in 30, 7 and 1 days; interviews 24 h and 1 h before.

Both only emit outbox events; the notifications follow through ``gongping.notifications.dispatch``. Each
event's dedupe key names the step and the date or time it is about, so a sweep run any number of times
(hourly, after an outage, twice by mistake) emits each reminder once, and a renewed verification or a moved
interview starts a fresh set. Overdue verifications are the existing ``instrument.overdue`` sweep's events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlmodel import Session, col

from backend.db import UnitOfWork, aware, session_scope, utcnow
from backend.instruments.models import Instrument, InstrumentStatus
from backend.outbox.service import emit_many
from backend.records.service import bureau_today
from backend.supervision.models import Interview, InterviewKind, InterviewStatus
from notifications.policy import DueThreshold, due_thresholds, interview_event_id, interview_reminders

log = logging.getLogger(__name__)


#: Instruments per read (each batch is its own transaction, so the sweep holds no long locks).
BATCH = 5000
#: The earliest reminder step (30 days before the validity ends).
DUE_HORIZON_DAYS = 30
_OPEN_INTERVIEW = (InterviewStatus.scheduled, InterviewStatus.acknowledged)

DueRow = tuple[int, date, int]  # instrument id, valid_until, operator id


def find_due(session: Session, today: date, after: tuple[date, int] | None, batch: int) -> Sequence[DueRow]:
    """In-use instruments valid until today … today + 30 days, in (valid_until, id) order after ``after``.

    A range scan on ``ix_instrument_sweep`` (status, valid_until); paging on the same order lets each page
    start where the last ended instead of re-sorting the whole window by id.
    """
    end = today + timedelta(days=DUE_HORIZON_DAYS)
    where = [col(Instrument.status) == InstrumentStatus.in_use, col(Instrument.valid_until) <= end]
    if after is None:
        where.append(col(Instrument.valid_until) >= today)
    else:
        last_until, last_id = after
        where += [
            col(Instrument.valid_until) >= last_until,
            or_(
                col(Instrument.valid_until) > last_until,
                and_(col(Instrument.valid_until) == last_until, col(Instrument.id) > last_id),
            ),
        ]
    rows = session.execute(
        select(col(Instrument.id), col(Instrument.valid_until), col(Instrument.operator_id))
        .where(*where)
        .order_by(col(Instrument.valid_until), col(Instrument.id))
        .limit(batch)
    ).all()
    return [(int(r[0]), r[1], int(r[2])) for r in rows]


def due_event(row: DueRow, today: date) -> tuple[dict[str, Any], str] | None:
    """The ``instrument.due`` payload and dedupe key for one instrument today, or None (no step, or overdue)."""
    instrument_id, valid_until, operator_id = row
    threshold = due_thresholds(valid_until, today)
    if threshold is None or threshold is DueThreshold.OVERDUE:
        return None
    due = valid_until.isoformat()
    payload = {
        "instrument_id": instrument_id,
        "operator_id": operator_id,
        "valid_until": due,
        "threshold": threshold.value,
        "as_of": today.isoformat(),
    }
    return payload, f"instrument.due:{instrument_id}:{due}:{threshold.value}"


def sweep_due_instruments(
    today: date | None = None, *, batch: int = BATCH, unit_of_work: UnitOfWork = session_scope
) -> int:
    """Emit one ``instrument.due`` per instrument, due date and step (30/7/1 days); returns how many were new."""
    today = today or bureau_today()
    emitted = 0
    after: tuple[date, int] | None = None
    while True:
        with unit_of_work() as session:
            rows = find_due(session, today, after, batch)
            events = [e for e in (due_event(row, today) for row in rows) if e is not None]
            emitted += emit_many(session, "instrument.due", events)
        if len(rows) < batch:
            break
        after = (rows[-1][1], rows[-1][0])
    if emitted:
        log.info("verification reminders: %d new instrument.due events for %s", emitted, today)
    return emitted


def sweep_interview_reminders(
    now: datetime | None = None, *, unit_of_work: UnitOfWork = session_scope
) -> int:
    """Emit the reminder step reached for each open interview in the next 24 hours; returns how many were new.

    The steps planned are those still ahead when the interview was scheduled (a short-notice interview is
    covered by its summons); of those reached, only the most urgent is sent, so a late sweep does not send
    a stale 24-hour reminder an hour before the interview.
    """
    now = now or utcnow()
    with unit_of_work() as session:
        rows = session.execute(
            select(
                col(Interview.id),
                col(Interview.operator_id),
                col(Interview.scheduled_at),
                col(Interview.created_at),
            ).where(
                col(Interview.kind) == InterviewKind.interview,
                col(Interview.status).in_(_OPEN_INTERVIEW),
                col(Interview.scheduled_at) > now,
                col(Interview.scheduled_at) <= now + timedelta(hours=24),
            )
        ).all()
        events: list[tuple[dict[str, Any], str]] = []
        for interview_id, operator_id, scheduled_at, created_at in rows:
            at = aware(scheduled_at)
            reached = [r for r, send_at in interview_reminders(at, aware(created_at)) if send_at <= now]
            if not reached:
                continue
            step = reached[-1]
            payload = {
                "interview_id": int(interview_id),
                "operator_id": int(operator_id),
                "scheduled_at": at.astimezone(UTC).isoformat(),
                "reminder": step.value,
            }
            key = "interview.reminder:" + interview_event_id(str(interview_id), at, step).removeprefix(
                "interview:"
            )
            events.append((payload, key))
        emitted = emit_many(session, "interview.reminder", events)
    if emitted:
        log.info("interview reminders: %d new interview.reminder events", emitted)
    return emitted
