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
from backend.notices.handlers import HANDLERS
from backend.outbox.broker import celery_sender
from backend.outbox.models import OutboxEvent, OutboxTaskDone

log = logging.getLogger(__name__)

#: Notification dispatch takes the events of one relay pass together (one transaction for the batch).
DISPATCH_TASK = "gongping.notifications.dispatch"
DISPATCH_BATCH_TASK = "gongping.notifications.dispatch_batch"

#: Which Celery tasks each topic fans out to. A topic with no task is only marked published.
TOPIC_TASKS: dict[str, tuple[str, ...]] = {
    "instrument.overdue": ("gongping.events.log", "gongping.records.record_overdue_instrument"),
    "record.changed": ("gongping.records.rerate_operator",),
    "operator.rating_inputs_changed": ("gongping.records.rerate_operator",),
    "complaint.created": ("gongping.complaints.process_photos", "gongping.complaints.route"),
    "intake.job_submitted": ("gongping.intake.run_job",),
}

#: Topics somebody is notified about: every topic with a notice handler (``backend/notices/handlers.py``, where
#: the payload contracts are documented) also goes to the notification dispatcher.
NOTIFICATION_TOPICS: tuple[str, ...] = tuple(HANDLERS)
for _topic in NOTIFICATION_TOPICS:
    TOPIC_TASKS[_topic] = (*TOPIC_TASKS.get(_topic, ()), DISPATCH_TASK)

#: Publishes one task: (task name, arguments, message id). ``celery_sender`` in production, a stand-in in tests.
Sender = Callable[[str, list[Any], str], None]


def task_id_for(event_ids: list[int], task: str) -> str:
    """The message id of ``task`` for these events: stable, so a republished message is recognisable."""
    if len(event_ids) == 1:
        return f"outbox-{event_ids[0]}-{task}"
    return f"outbox-{event_ids[0]}-{event_ids[-1]}-{len(event_ids)}-{task}"


def tasks_per_topic() -> dict[str, int]:
    """How many tasks each topic fans out to (an event is handled once that many have finished)."""
    return {topic: len(tasks) for topic, tasks in TOPIC_TASKS.items()}


def _publish(rows: list[OutboxEvent], sender: Sender) -> None:
    """Send every task of these rows; notification dispatch as one batch task. Raises if the broker fails."""
    batch: list[int] = []
    for row in rows:
        assert row.id is not None
        for task in TOPIC_TASKS.get(row.topic, ()):
            if task == DISPATCH_TASK:
                batch.append(row.id)
            else:
                sender(task, [row.id], task_id_for([row.id], task))
    if batch:
        sender(DISPATCH_BATCH_TASK, [batch], task_id_for(batch, DISPATCH_BATCH_TASK))


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
    rows = list(session.execute(stmt).scalars().all())
    if not rows:
        return 0
    try:
        _publish(rows, sender)
    except Exception as exc:
        # Broker down: keep the rows (some of their tasks may have gone out: tasks are idempotent and their
        # ids stable), back off, and try again later.
        for row in rows:
            row.attempts += 1
            row.last_error = f"{type(exc).__name__}: {exc}"[:500]
            row.available_at = utcnow() + timedelta(seconds=min(60, 2 ** min(row.attempts, 6)))
            session.add(row)
        session.flush()
        log.warning("outbox relay: broker unavailable (%s); %s row(s) waiting", exc, len(rows))
        return 0
    published_at = utcnow()
    for row in rows:
        row.published_at = published_at
        if not TOPIC_TASKS.get(row.topic):
            row.handled_at = published_at
        session.add(row)
    session.flush()
    return len(rows)


def redrive_once(
    session: Session,
    *,
    older_than: timedelta,
    window: timedelta,
    batch: int = 500,
    sender: Sender = celery_sender,
) -> int:
    """Publish again the events published more than ``older_than`` ago whose tasks have not all finished.

    A broker that loses messages (Redis restarted without persistence) would otherwise lose that work for
    good. ``older_than`` must exceed the broker's own redelivery of unacknowledged messages (the visibility
    timeout), so a task still queued or running is not doubled needlessly; tasks are idempotent either way.
    Only the unfinished tasks are sent; an event whose tasks have all finished is closed (handled), not sent
    again. Events older than ``window`` with work still unfinished are given up and logged.
    """
    now = utcnow()
    stmt = (
        select(OutboxEvent)
        .where(
            col(OutboxEvent.handled_at).is_(None),
            col(OutboxEvent.published_at).is_not(None),
            col(OutboxEvent.published_at) < now - older_than,
        )
        .order_by(col(OutboxEvent.published_at))
        .limit(batch)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.execute(stmt).scalars().all())
    if not rows:
        return 0
    ids = [row.id for row in rows if row.id is not None]
    done: set[tuple[int, str]] = {
        (event_id, task)
        for event_id, task in session.execute(
            select(col(OutboxTaskDone.event_id), col(OutboxTaskDone.task)).where(
                col(OutboxTaskDone.event_id).in_(ids)
            )
        ).all()
    }
    redriven = closed = 0
    dispatch: list[int] = []
    for row in rows:
        assert row.id is not None
        unfinished = [task for task in TOPIC_TASKS.get(row.topic, ()) if (row.id, task) not in done]
        if not unfinished:
            # Every task finished but the completion was not recorded on the event: close it, do not redo it.
            row.handled_at = now
            session.add(row)
            closed += 1
            continue
        if row.created_at < now - window:
            # Past the window: stop trying, keep the row for the record.
            row.handled_at = now
            row.last_error = "redrive window passed with tasks unfinished"
            session.add(row)
            log.error("outbox event %s (%s) given up after %s redrives", row.id, row.topic, row.redrives)
            continue
        try:
            for task in unfinished:
                if task == DISPATCH_TASK:
                    dispatch.append(row.id)
                else:
                    sender(task, [row.id], task_id_for([row.id], task))
        except Exception as exc:
            log.warning("outbox redrive: broker unavailable (%s)", exc)
            break
        row.published_at = now
        row.redrives += 1
        session.add(row)
        redriven += 1
    if dispatch:
        try:
            sender(DISPATCH_BATCH_TASK, [dispatch], task_id_for(dispatch, DISPATCH_BATCH_TASK))
        except Exception as exc:
            log.warning("outbox redrive: broker unavailable (%s)", exc)
    session.flush()
    if redriven:
        log.warning("outbox redrive: %s event(s) published again (tasks unfinished)", redriven)
    if closed:
        log.info("outbox redrive: %s event(s) closed (every task had finished)", closed)
    return redriven


def run_forever(
    poll_seconds: float = 0.5,
    batch: int = 200,
    stop: Callable[[], bool] = lambda: False,
    turned: Callable[[], None] = lambda: None,
) -> None:
    """Poll and publish until ``stop()``; a standalone process next to the workers.

    ``stop()`` is asked between passes only: a pass under way (its batch sent and marked) always commits, so a
    SIGTERM never leaves a batch sent but unmarked. ``turned()`` is called after every pass (liveness).
    """
    while not stop():
        try:
            with session_scope() as session:
                published = relay_once(session, batch=batch)
        except Exception:
            log.exception("outbox relay pass failed")
            published = 0
        turned()
        if published < batch:
            # Sleep in short steps so a stop request is seen within a tenth of a second.
            deadline = time.monotonic() + poll_seconds
            while not stop() and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(0.1, left))
