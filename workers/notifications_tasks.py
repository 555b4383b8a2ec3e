"""Notification tasks: handle an event (inbox + pushes), send pushes, retry due ones.

The work is in ``backend/notices/``; the push channel's life in a worker process is ``push_signals.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from backend.db import session_scope, utcnow
from backend.notices.channel import providers_of, push_channel
from backend.notices.delivery import (
    InboxUnavailable,
    SendReport,
    chunks,
    dispatch,
    dispatch_many,
    queue_due,
    reclaim_stale,
    send_pushes,
)
from workers.celery_app import backoff, database_unavailable, queue_of
from workers.celery_app import task as _task

log = logging.getLogger(__name__)

MAX_RETRIES = 8
#: Topics the sweeps emit by the ten thousand: their pushes are left to the retry sweep, which sends them 500
#: to a send_each_async round, instead of one FCM round per event. Non-urgent reminders can
#: wait the half minute; notices a person is waiting for still go out at once.
BATCH_SEND_TOPICS = frozenset({"instrument.due", "instrument.overdue"})
#: A retry sooner than this is scheduled as a Celery countdown; later ones are left to the retry sweep
#: (long countdowns sit unacknowledged in a worker and outlive Redis' visibility timeout).
COUNTDOWN_MAX_S = 300.0


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying: the database briefly unavailable (the inbox write included)."""
    # InboxUnavailable: the inbox write failed, so nothing of the event was kept and all of it is retried.
    return isinstance(exc, InboxUnavailable) or database_unavailable(exc)


def _schedule_retries(report: SendReport, queue: str | None) -> None:
    """Send soon-due retries again by countdown; the retry sweep picks up the rest when they fall due."""
    soon = sorted(i for i, delay in report.retry.items() if delay <= COUNTDOWN_MAX_S)
    if not soon:
        return
    # One task for the batch, timed for the slowest of them, so none is claimed before its Retry-After.
    countdown = max(report.retry[i] for i in soon)
    for ids in chunks(soon):
        send_push_task.apply_async(args=[ids], countdown=countdown, queue=queue)


def _send(ids: list[int], queue: str | None) -> SendReport:
    channel = push_channel()
    if channel is None or not ids:
        return SendReport()
    report = send_pushes(channel, ids)
    _schedule_retries(report, queue)
    return report


@_task(name="gongping.notifications.dispatch", bind=True, max_retries=MAX_RETRIES)
def dispatch_task(self: Task[Any, Any], event_id: int) -> dict[str, int]:
    """Handle one outbox event: inbox entries always, pushes when on and allowed; idempotent."""
    channel = push_channel()
    try:
        report, due = dispatch(event_id, push_enabled=channel is not None, providers=providers_of(channel))
    except Exception as exc:
        if not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    sent = _send(due, queue_of(self)) if report.topic not in BATCH_SEND_TOPICS else SendReport()
    return {
        "notices": report.notices,
        "inbox_written": report.inbox_written,
        "pushes_created": report.pushes_created,
        "sent": sent.sent,
        "retrying": len(sent.retry),
    }


@_task(name="gongping.notifications.dispatch_batch", bind=True, max_retries=MAX_RETRIES)
def dispatch_batch_task(self: Task[Any, Any], event_ids: list[int]) -> dict[str, int]:
    """Handle many outbox events in one transaction (a relay or sweep hands them over together).

    The same as ``gongping.notifications.dispatch`` for each event, at a few round trips for the batch:
    pushes of the sweep topics are left to the retry sweep, the others are sent at once. An event whose
    handler raises is logged and skipped; a database error retries the batch (nothing of it was kept).
    """
    channel = push_channel()
    try:
        reports = dispatch_many(
            [int(i) for i in event_ids],
            push_enabled=channel is not None,
            skip_broken=True,
            providers=providers_of(channel),
        )
    except Exception as exc:
        if not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    due = sorted(i for r in reports if r.topic not in BATCH_SEND_TOPICS for i in r.due_ids)
    queue = queue_of(self)
    sent = retrying = 0
    for part in chunks(due):
        report = _send(part, queue)
        sent += report.sent
        retrying += len(report.retry)
    return {
        "events": len(reports),
        "skipped": sum(r.error for r in reports),
        "notices": sum(r.notices for r in reports),
        "inbox_written": sum(r.inbox_written for r in reports),
        "pushes_created": sum(r.pushes_created for r in reports),
        "sent": sent,
        "retrying": retrying,
    }


@_task(name="gongping.notifications.send_push", bind=True, max_retries=MAX_RETRIES)
def send_push_task(self: Task[Any, Any], delivery_ids: list[int]) -> dict[str, int]:
    """Send the given push rows that are still pending and due; the rest are someone else's or not yet due."""
    try:
        report = _send([int(i) for i in delivery_ids], queue_of(self))
    except Exception as exc:
        if not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return {"sent": report.sent, "retrying": len(report.retry), "invalid_token": report.invalid_token}


@_task(name="gongping.notifications.retry_due", bind=True)
def retry_due_task(self: Task[Any, Any]) -> int:
    """Beat: hand out pushes whose time has come (quiet hours over, retry delay passed) to send tasks."""
    if push_channel() is None:
        return 0
    now = utcnow()
    with session_scope() as session:
        reclaim_stale(session, now)
        ids = queue_due(session, now)
    queue = queue_of(self)
    for part in chunks(ids):
        send_push_task.apply_async(args=[part], queue=queue)
    return len(ids)
