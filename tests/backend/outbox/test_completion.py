"""Marking an event handled is right when its tasks finish together, and the redrive closes finished events."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session

from backend.db import is_postgres, new_session, utcnow
from backend.outbox import relay
from backend.outbox.models import OutboxEvent, OutboxTaskDone
from backend.outbox.service import mark_tasks_done

TASKS = ("gongping.test.a", "gongping.test.b")
REDRIVE: dict[str, Any] = {"older_than": timedelta(minutes=75), "window": timedelta(hours=48)}


@pytest.fixture
def two_tasks(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    monkeypatch.setitem(relay.TOPIC_TASKS, "test.topic", TASKS)
    return relay.tasks_per_topic()


def _published_event(session: Session, *, age: timedelta = timedelta(0)) -> int:
    now = utcnow()
    row = OutboxEvent(topic="test.topic", payload={}, created_at=now - age, published_at=now - age)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def test_two_tasks_finishing_together_mark_the_event_handled(
    committed_session: Session, two_tasks: dict[str, int]
) -> None:
    if not is_postgres(committed_session):
        pytest.skip("SQLite serialises whole write transactions; the race needs PostgreSQL's concurrency")
    event_id = _published_event(committed_session)
    committed_session.commit()
    first_marked = threading.Event()
    second_marked = threading.Event()
    handled: list[int] = []
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with new_session() as session:
                handled.append(mark_tasks_done(session, TASKS[0], [event_id], two_tasks))
                first_marked.set()
                # Stay uncommitted while the second task finishes (or waits for this one, as it should).
                second_marked.wait(timeout=1.5)
                session.commit()
        except BaseException as exc:  # surfaced in the test's thread
            errors.append(exc)
            first_marked.set()

    def second() -> None:
        try:
            first_marked.wait(timeout=10)
            with new_session() as session:
                handled.append(mark_tasks_done(session, TASKS[1], [event_id], two_tasks))
                second_marked.set()
                session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert sorted(handled) == [0, 1]
    committed_session.expire_all()
    row = committed_session.get(OutboxEvent, event_id)
    assert row is not None and row.handled_at is not None


def test_redrive_closes_an_event_whose_tasks_are_all_done(
    session: Session, two_tasks: dict[str, int]
) -> None:
    sent: list[str] = []
    event_id = _published_event(session, age=timedelta(minutes=80))
    session.add_all(OutboxTaskDone(event_id=event_id, task=task) for task in TASKS)
    session.flush()
    relay.redrive_once(session, sender=lambda name, _args, _tid: sent.append(name), **REDRIVE)
    row = session.get(OutboxEvent, event_id)
    assert row is not None
    session.refresh(row)
    assert sent == [] and row.handled_at is not None
    assert row.redrives == 0 and row.last_error is None


def test_redrive_past_the_window_closes_finished_work_instead_of_giving_up(
    session: Session, two_tasks: dict[str, int]
) -> None:
    event_id = _published_event(session, age=timedelta(hours=49))
    session.add_all(OutboxTaskDone(event_id=event_id, task=task) for task in TASKS)
    session.flush()
    relay.redrive_once(session, sender=lambda *_: None, **REDRIVE)
    row = session.get(OutboxEvent, event_id)
    assert row is not None
    session.refresh(row)
    assert row.handled_at is not None and row.last_error is None
