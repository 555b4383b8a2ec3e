"""The one writer of the outbox: ``emit`` and ``emit_many`` store events in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from backend.db import table_of, utcnow
from backend.outbox.models import OutboxEvent, OutboxTaskDone
from backend.outbox.topics import Topic

#: Rows per INSERT: 7 columns each stays under SQLite's 32,766 bound parameters.
INSERT_CHUNK = 1000


def emit(session: Session, topic: Topic, payload: dict[str, Any], *, dedupe_key: str | None = None) -> bool:
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


def emit_many(
    session: Session,
    topic: Topic,
    events: Sequence[tuple[Mapping[str, Any], str]],
    *,
    known_new: bool = False,
) -> int:
    """Store events (payload, dedupe key) whose key is new, in set-based inserts; returns how many were stored.

    ``known_new`` skips the look-up of existing keys when the caller's keys cannot repeat (a fresh id in each);
    ON CONFLICT still drops a duplicate either way.
    """
    if not events:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        return _emit_many_postgres(session, topic, events, known_new=known_new)
    table = table_of(OutboxEvent)
    keys = [key for _payload, key in events]
    existing: set[str] = set()
    for start in range(0, 0 if known_new else len(keys), INSERT_CHUNK):
        existing.update(
            session.execute(
                select(table.c.dedupe_key).where(table.c.dedupe_key.in_(keys[start : start + INSERT_CHUNK]))
            ).scalars()
        )
    now = utcnow()
    rows = [
        {
            "topic": topic,
            "payload": payload,
            "dedupe_key": key,
            "created_at": now,
            "available_at": now,
            "attempts": 0,
        }
        for payload, key in events
        if key not in existing
    ]
    stored = 0
    for start in range(0, len(rows), INSERT_CHUNK):
        # The pre-check skips known keys cheaply; ON CONFLICT still settles a race with a concurrent sweep.
        stmt = (
            sqlite.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(table.c.id)
        )
        stored += len(session.execute(stmt, rows[start : start + INSERT_CHUNK]).all())
    return stored


def _emit_many_postgres(
    session: Session, topic: str, events: Sequence[tuple[Mapping[str, Any], str]], *, known_new: bool
) -> int:
    # Two array parameters instead of thousands of placeholders: the driver's per-placeholder query
    # rewriting, not the database, was what made multi-row VALUES slow (≈ 0.3 ms a row).
    keys = [key for _payload, key in events]
    existing: set[str] = set()
    if not known_new:
        existing.update(
            session.execute(
                text("SELECT dedupe_key FROM outbox_event WHERE dedupe_key = ANY(CAST(:keys AS text[]))"),
                {"keys": keys},
            ).scalars()
        )
    fresh = [(json.dumps(payload, ensure_ascii=False), key) for payload, key in events if key not in existing]
    if not fresh:
        return 0
    now = utcnow()
    result = session.execute(
        text(
            """
            INSERT INTO outbox_event (topic, payload, dedupe_key, created_at, available_at, attempts)
            SELECT :topic, CAST(t.payload AS json), t.dedupe_key, :now, :now, 0
            FROM unnest(CAST(:payloads AS text[]), CAST(:keys AS text[])) AS t(payload, dedupe_key)
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING id
            """
        ),
        {"topic": topic, "now": now, "payloads": [p for p, _k in fresh], "keys": [k for _p, k in fresh]},
    )
    return len(result.all())


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
