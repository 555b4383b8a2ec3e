"""The outbox relay: turns committed outbox rows into Celery tasks, never losing one.

Each row fans out to the tasks registered for its topic. A message's task id is derived from the row and the
task, so a row published twice (a crash between send and mark) is recognisable downstream; tasks are
idempotent anyway. If the broker is down the rows stay unpublished and are retried with backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from backend.db import is_postgres, session_scope, utcnow
from backend.outbox.models import OutboxEvent

log = logging.getLogger(__name__)

#: Which Celery tasks each topic fans out to. A topic with no task is only marked published.
TOPIC_TASKS: dict[str, tuple[str, ...]] = {
    "instrument.overdue": ("gongping.events.log", "gongping.records.record_overdue_instrument"),
    "record.changed": ("gongping.records.rerate_operator",),
    "complaint.created": ("gongping.complaints.process_photos", "gongping.complaints.route"),
}

#: Topics somebody is notified about: each also goes to the notification dispatcher, which has a handler per
#: topic in workers/notification_handlers.py (the payload contracts are documented there).
NOTIFICATION_TOPICS: tuple[str, ...] = (
    "instrument.due",
    "instrument.overdue",
    "complaint.created",
    "record.changed",
    "rating.changed",
    "interview.scheduled",
    "interview.reminder",
    "correction.decided",
    "case.assigned",
    "case.overdue",
    "case.outcome",
)
for _topic in NOTIFICATION_TOPICS:
    TOPIC_TASKS[_topic] = (*TOPIC_TASKS.get(_topic, ()), "gongping.notifications.dispatch")

Sender = Callable[[str, list[Any], str], None]


def celery_sender(name: str, args: list[Any], task_id: str) -> None:
    """Publish one task through the configured broker."""
    from workers.celery_app import celery_app

    celery_app.send_task(name, args=args, task_id=task_id, retry=True, retry_policy={"max_retries": 2})


def relay_once(session: Session, *, batch: int = 200, sender: Sender = celery_sender) -> int:
    """Publish up to ``batch`` pending rows; returns how many were published."""
    now = utcnow()
    stmt = (
        select(OutboxEvent)
        .where(col(OutboxEvent.published_at).is_(None), col(OutboxEvent.available_at) <= now)
        .order_by(col(OutboxEvent.id))
        .limit(batch)
    )
    if is_postgres(session):
        # Several relays may run; each takes rows no other holds.
        stmt = stmt.with_for_update(skip_locked=True)
    rows = session.execute(stmt).scalars().all()
    published = 0
    for row in rows:
        try:
            for task in TOPIC_TASKS.get(row.topic, ()):
                sender(task, [row.id], f"outbox-{row.id}-{task}")
        except Exception as exc:
            # Broker down: keep the row, back off, and stop this pass (later rows would fail the same way).
            row.attempts += 1
            row.last_error = f"{type(exc).__name__}: {exc}"[:500]
            row.available_at = utcnow() + timedelta(seconds=min(60, 2 ** min(row.attempts, 6)))
            session.add(row)
            log.warning(
                "outbox relay: broker unavailable (%s); %s row(s) waiting", exc, len(rows) - published
            )
            break
        row.published_at = utcnow()
        session.add(row)
        published += 1
    session.flush()
    return published


def run_forever(
    poll_seconds: float = 0.5, batch: int = 200, stop: Callable[[], bool] = lambda: False
) -> None:
    """Poll and publish until ``stop()``; a standalone process next to the workers."""
    while not stop():
        try:
            with session_scope() as session:
                published = relay_once(session, batch=batch)
        except Exception:
            log.exception("outbox relay pass failed")
            published = 0
        if published < batch:
            time.sleep(poll_seconds)
