"""The outbox relay publishes committed events once each and keeps them while the broker is down."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit, mark_tasks_done


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


def _sent_for(broker: FakeBroker, event_id: int) -> list[str]:
    return [
        name for name, args, _ in broker.sent if event_id in (args[0] if isinstance(args[0], list) else args)
    ]


def _emit_one(session: Session, topic: str = "test.topic") -> OutboxEvent:
    emit(session, topic, {"x": 1})
    row = session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    assert row is not None and row.id is not None
    return row


def _age(session: Session, row: OutboxEvent, minutes: int) -> None:
    assert row.published_at is not None
    row.published_at = row.published_at - timedelta(minutes=minutes)
    session.add(row)
    session.flush()


def test_notification_dispatch_goes_out_as_one_batch_per_pass(session: Session, broker: FakeBroker) -> None:
    first, second = _emit_one(session, "rating.changed"), _emit_one(session, "rating.changed")
    assert relay.relay_once(session, sender=broker) >= 2
    batches = [(args, tid) for name, args, tid in broker.sent if name == relay.DISPATCH_BATCH_TASK]
    assert len(batches) == 1
    assert {first.id, second.id} <= set(batches[0][0][0])
    assert batches[0][1].startswith("outbox-") and batches[0][1].endswith(relay.DISPATCH_BATCH_TASK)
    assert not [name for name, _, _ in broker.sent if name == relay.DISPATCH_TASK]


def test_topic_without_tasks_is_handled_when_published(session: Session, broker: FakeBroker) -> None:
    row = _emit_one(session, "test.no-tasks")
    relay.relay_once(session, sender=broker)
    session.refresh(row)
    assert row.published_at is not None and row.handled_at == row.published_at


def test_unfinished_tasks_are_published_again_and_finished_ones_not(
    session: Session, broker: FakeBroker
) -> None:
    row = _emit_one(session)
    relay.relay_once(session, sender=broker)
    assert row.id is not None
    # Task a finished; b's message was lost (say, Redis restarted without persistence).
    assert mark_tasks_done(session, "gongping.test.a", [row.id], relay.tasks_per_topic()) == 0
    broker.sent.clear()
    # Not yet old enough: nothing is sent again.
    relay.redrive_once(session, older_than=timedelta(minutes=75), window=timedelta(hours=48), sender=broker)
    assert _sent_for(broker, row.id) == []
    _age(session, row, 80)
    assert (
        relay.redrive_once(
            session, older_than=timedelta(minutes=75), window=timedelta(hours=48), sender=broker
        )
        >= 1
    )
    assert _sent_for(broker, row.id) == ["gongping.test.b"]
    session.refresh(row)
    assert row.redrives == 1 and row.handled_at is None
    # b finishes (twice: a redelivered duplicate): the event is handled and never sent again.
    assert mark_tasks_done(session, "gongping.test.b", [row.id], relay.tasks_per_topic()) == 1
    assert mark_tasks_done(session, "gongping.test.b", [row.id], relay.tasks_per_topic()) == 0
    session.refresh(row)
    assert row.handled_at is not None
    broker.sent.clear()
    _age(session, row, 80)
    relay.redrive_once(session, older_than=timedelta(minutes=75), window=timedelta(hours=48), sender=broker)
    assert _sent_for(broker, row.id) == []


def test_redrive_gives_up_after_the_window(session: Session, broker: FakeBroker) -> None:
    row = _emit_one(session)
    relay.relay_once(session, sender=broker)
    row.created_at = row.created_at - timedelta(hours=49)
    _age(session, row, 80)
    broker.sent.clear()
    relay.redrive_once(session, older_than=timedelta(minutes=75), window=timedelta(hours=48), sender=broker)
    assert row.id is not None and _sent_for(broker, row.id) == []
    session.refresh(row)
    assert row.handled_at is not None and row.last_error == "redrive window passed with tasks unfinished"
