"""The outbox relay publishes committed events once each and keeps them while the broker is down."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from workers import relay


class FakeBroker:
    """Records what would have been sent; can be switched off."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], str]] = []
        self.down = False

    def __call__(self, name: str, args: list[Any], task_id: str) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.sent.append((name, args, task_id))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    fake = FakeBroker()
    monkeypatch.setitem(relay.TOPIC_TASKS, "test.topic", ("gongping.test.a", "gongping.test.b"))
    return fake


def _pending(session: Session) -> list[OutboxEvent]:
    return list(
        session.exec(
            select(OutboxEvent).where(col(OutboxEvent.published_at).is_(None)).order_by(col(OutboxEvent.id))
        ).all()
    )


def test_event_fans_out_to_every_task_once(session: Session, broker: FakeBroker) -> None:
    emit(session, "test.topic", {"x": 1})
    assert relay.relay_once(session, sender=broker) == 1
    assert [s[0] for s in broker.sent] == ["gongping.test.a", "gongping.test.b"]
    assert len({s[2] for s in broker.sent}) == 2  # distinct, deterministic task ids
    assert relay.relay_once(session, sender=broker) == 0
    assert len(broker.sent) == 2


def test_broker_down_keeps_rows_and_backs_off(session: Session, broker: FakeBroker) -> None:
    emit(session, "test.topic", {"x": 1})
    emit(session, "test.topic", {"x": 2})
    broker.down = True
    assert relay.relay_once(session, sender=broker) == 0
    pending = _pending(session)
    assert len(pending) >= 2 and pending[0].attempts == 1 and pending[0].last_error
    # Once the broker is back and the back-off has passed, everything goes out, in order.
    broker.down = False
    for row in pending:
        row.available_at = row.created_at
        session.add(row)
    session.flush()
    assert relay.relay_once(session, sender=broker) >= 2
    assert _pending(session) == []


def test_dedupe_key_stores_an_event_once(session: Session) -> None:
    assert emit(session, "test.topic", {"x": 1}, dedupe_key="same") is True
    assert emit(session, "test.topic", {"x": 1}, dedupe_key="same") is False
    rows = session.exec(select(OutboxEvent).where(OutboxEvent.dedupe_key == "same")).all()
    assert len(rows) == 1
