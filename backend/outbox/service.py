"""Write outbox events in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from backend.db import utcnow
from backend.outbox.models import OutboxEvent, OutboxTaskDone


def emit(session: Session, topic: str, payload: dict[str, Any], *, dedupe_key: str | None = None) -> bool:
    """Store an event for the relay; with a dedupe key a repeated event is dropped. Returns whether stored."""
    if dedupe_key is None:
        session.add(OutboxEvent(topic=topic, payload=payload))
        session.flush()
        return True
    dialect = session.get_bind().dialect.name
    values = {
        "topic": topic,
        "payload": payload,
        "dedupe_key": dedupe_key,
        "created_at": utcnow(),
        "available_at": utcnow(),
        "attempts": 0,
    }
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(OutboxEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(col(OutboxEvent.id))
    )
    # RETURNING yields a row only when the insert happened (rowcount is unreliable for ORM inserts).
    return session.execute(stmt).first() is not None


def mark_tasks_done(session: Session, task: str, event_ids: list[int], tasks_of: dict[str, int]) -> int:
    """Record that ``task`` finished for these events; events whose every task is done become handled.

    ``tasks_of`` maps a topic to how many tasks it fans out to (the relay's table; the backend does not import
    workers). Returns how many events became handled. A redelivered duplicate changes nothing.
    """
    if not event_ids:
        return 0
    ids = sorted(set(event_ids))
    # Lock the events first (in id order, so a batch and a single task never deadlock): two tasks of one event
    # finishing together would otherwise each count the done rows without the other's uncommitted one, and
    # neither would mark the event handled. The second waits here and, under READ COMMITTED, counts both.
    session.execute(
        select(col(OutboxEvent.id))
        .where(col(OutboxEvent.id).in_(ids))
        .order_by(col(OutboxEvent.id))
        .with_for_update()
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    session.execute(
        insert(OutboxTaskDone)
        .values([{"event_id": i, "task": task, "done_at": now} for i in ids])
        .on_conflict_do_nothing(index_elements=["event_id", "task"])
    )
    done: dict[int, int] = {
        int(event_id): int(count)
        for event_id, count in session.execute(
            select(col(OutboxTaskDone.event_id), func.count())
            .where(col(OutboxTaskDone.event_id).in_(ids))
            .group_by(col(OutboxTaskDone.event_id))
        ).all()
    }
    handled = [
        event_id
        for event_id, topic in session.execute(
            select(col(OutboxEvent.id), col(OutboxEvent.topic)).where(
                col(OutboxEvent.id).in_(ids), col(OutboxEvent.handled_at).is_(None)
            )
        ).all()
        if done.get(event_id, 0) >= tasks_of.get(topic, 0)
    ]
    if handled:
        session.execute(update(OutboxEvent).where(col(OutboxEvent.id).in_(handled)).values(handled_at=now))
    return len(handled)
