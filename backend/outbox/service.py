"""Write outbox events in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from backend.db import utcnow
from backend.outbox.models import OutboxEvent


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
