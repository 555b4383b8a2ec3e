"""Concurrent senders on PostgreSQL: each push row goes to exactly one of them, and none waits or deadlocks."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.db import is_postgres, new_session, utcnow
from backend.notices import delivery
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.records.service import bureau_today
from tests.backend.notices.conftest import zone_at_local_hour
from tests.factories import COUNTY_A, make_account, make_device, make_instrument, make_operator


def _pending_rows(session: Session) -> list[int]:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    user = make_account(session, Role.operator, operator_id=operator.id)
    zone = zone_at_local_hour(10, 16)
    for _ in range(2):
        make_device(session, user, timezone=zone)
    instrument = make_instrument(session, operator, verified_on=bureau_today() - timedelta(days=400))
    assert instrument.valid_until is not None
    emit(
        session,
        "instrument.overdue",
        {
            "instrument_id": instrument.id,
            "operator_id": operator.id,
            "valid_until": instrument.valid_until.isoformat(),
        },
    )
    event = session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    session.commit()
    assert event is not None
    _report, due = delivery.dispatch(event.id or 0, push_enabled=True)
    assert len(due) == 2
    return due


def test_a_second_sender_skips_rows_the_first_holds(committed_session: Session) -> None:
    if not is_postgres(committed_session):
        pytest.skip("row locks are PostgreSQL's; SQLite serialises whole write transactions")
    ids = _pending_rows(committed_session)
    now = utcnow()
    with new_session() as first, new_session() as second:
        taken = delivery.claim(first, ids, now)
        started = time.monotonic()
        assert delivery.claim(second, ids, now) == []  # skipped, not waited for
        assert time.monotonic() - started < 2
        second.rollback()
        first.commit()
        assert sorted(c.row.id or 0 for c in taken) == sorted(ids)


def test_concurrent_retry_sweeps_hand_out_disjoint_rows(committed_session: Session) -> None:
    if not is_postgres(committed_session):
        pytest.skip("row locks are PostgreSQL's; SQLite serialises whole write transactions")
    ids = _pending_rows(committed_session)
    now = utcnow()
    with new_session() as first, new_session() as second:
        one = delivery.queue_due(first, now, limit=1)
        other = delivery.queue_due(second, now, limit=5)
        first.commit()
        second.commit()
    assert len(one) == 1 and set(one) | set(other) == set(ids) and not set(one) & set(other)
