"""Out-of-order commits on real, concurrent transactions (PostgreSQL): a class change whose transaction took
its id first but commits last still reaches the department, after a page that already went past that id."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from backend.audit.service import SYSTEM
from backend.auth.models import Role
from backend.auth.scope import Scope
from backend.db import is_postgres
from backend.exchange import service as exchange
from backend.exchange.models import ExchangeApiKey, FeedField
from backend.exchange.schemas import ApiKeyCreate
from backend.records.models import RatingChange, RatingTrigger
from backend.records.rules import IntegrityClass
from tests.factories import COUNTY_A, make_account, make_operator


def _change(operator_id: int, to_cls: IntegrityClass) -> RatingChange:
    return RatingChange(
        operator_id=operator_id,
        from_cls=IntegrityClass.BASICALLY_TRUSTWORTHY,
        to_cls=to_cls,
        as_of=date.today(),
        reasons=[],
        rules_version="test",
        trigger=RatingTrigger.record,
    )


def _read(engine: Engine, key_id: int, cursor: int) -> exchange.FeedResult:
    with Session(engine, expire_on_commit=False) as reader:
        key = reader.get(ExchangeApiKey, key_id)
        assert key is not None
        result = exchange.read_feed(reader, key, cursor=cursor, limit=100)
        reader.commit()
        return result


def test_a_change_committed_late_with_a_lower_id_is_not_lost(
    committed_session: Session, db_engine: Engine
) -> None:
    if not is_postgres(committed_session):
        pytest.skip("SQLite runs one writer at a time: commits cannot interleave")
    staff = make_account(committed_session, Role.staff, COUNTY_A)
    operator = make_operator(committed_session, staff)
    key, _ = exchange.create_key(
        committed_session,
        scope=Scope(SYSTEM, "/"),
        data=ApiKeyCreate(
            name="t",
            department="d",
            jurisdiction_codes=[COUNTY_A],
            fields=[FeedField.integrity_class],
            expires_at=datetime.now(UTC) + timedelta(days=1),
        ),
    )
    committed_session.commit()
    operator_id, key_id = operator.id or 0, key.id or 0

    slow = Session(db_engine, expire_on_commit=False)
    fast = Session(db_engine, expire_on_commit=False)
    try:
        late = _change(operator_id, IntegrityClass.UNTRUSTWORTHY)
        slow.add(late)
        slow.flush()  # takes its id now, commits later
        early = _change(operator_id, IntegrityClass.TRUSTWORTHY)
        fast.add(early)
        fast.commit()
        assert (early.id or 0) > (late.id or 0)

        first = _read(db_engine, key_id, 0)
        assert [e.class_change.to_class for e in first.events if e.class_change] == [
            IntegrityClass.TRUSTWORTHY
        ]
        slow.commit()
        second = _read(db_engine, key_id, first.cursor_to)
        assert [e.class_change.to_class for e in second.events if e.class_change] == [
            IntegrityClass.UNTRUSTWORTHY
        ]
        assert _read(db_engine, key_id, second.cursor_to).events == []
    finally:
        slow.close()
        fast.close()


def test_a_reader_meeting_a_capture_in_progress_skips_nothing(
    committed_session: Session, db_engine: Engine
) -> None:
    if not is_postgres(committed_session):
        pytest.skip("SQLite runs one writer at a time: captures cannot overlap")
    staff = make_account(committed_session, Role.staff, COUNTY_A)
    operator = make_operator(committed_session, staff)
    key, _ = exchange.create_key(
        committed_session,
        scope=Scope(SYSTEM, "/"),
        data=ApiKeyCreate(
            name="t",
            department="d",
            jurisdiction_codes=[COUNTY_A],
            fields=[FeedField.integrity_class],
            expires_at=datetime.now(UTC) + timedelta(days=1),
        ),
    )
    committed_session.add(_change(operator.id or 0, IntegrityClass.UNTRUSTWORTHY))
    committed_session.commit()
    key_id = key.id or 0

    capturing = Session(db_engine, expire_on_commit=False)
    try:
        exchange.capture(capturing)  # holds the capture lock, its entries not yet committed
        during = _read(db_engine, key_id, 0)
        assert during.events == []
        capturing.commit()
        after = _read(db_engine, key_id, during.cursor_to)
        assert [e.class_change.to_class for e in after.events if e.class_change] == [
            IntegrityClass.UNTRUSTWORTHY
        ]
    finally:
        capturing.close()
