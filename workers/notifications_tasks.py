"""Notification tasks: handle an event (inbox + pushes), send pushes, retry due ones, the reminder sweeps.

The push channel is built once per worker process, after the fork (``worker_process_init`` for prefork
children, lazily on first use otherwise), because the firebase App's connection pool and cached access
token do not survive ``fork``. Without credentials push is off — the worker says so at start-up — and
every notice still reaches the in-app inbox.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, cast

from celery import Task
from celery.signals import celeryd_after_setup, worker_process_init, worker_process_shutdown
from sqlalchemy.exc import DBAPIError, OperationalError

from backend.config import get_settings
from backend.db import session_scope, utcnow
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
from backend.notices.reminders import sweep_due_instruments, sweep_interview_reminders
from notifications.push import PushChannel, build_push_channel
from workers.celery_app import celery_app

log = logging.getLogger(__name__)

MAX_RETRIES = 8
#: Topics the sweeps emit by the ten thousand: their pushes are left to the retry sweep, which sends them 500
#: to a send_each_async round, instead of one FCM round per event. Non-urgent reminders can
#: wait the half minute; notices a person is waiting for still go out at once.
BATCH_SEND_TOPICS = frozenset({"instrument.due", "instrument.overdue"})
#: A retry sooner than this is scheduled as a Celery countdown; later ones are left to the retry sweep
#: (long countdowns sit unacknowledged in a worker and outlive Redis' visibility timeout).
COUNTDOWN_MAX_S = 300.0

_lock = threading.Lock()
_channel: tuple[int, PushChannel | None] | None = None


def _task(**options: Any) -> Callable[[Callable[..., Any]], Task[Any, Any]]:
    """``celery_app.task`` with a type: Celery's decorator is untyped."""
    return cast(Callable[[Callable[..., Any]], "Task[Any, Any]"], celery_app.task(**options))


def push_channel() -> PushChannel | None:
    """This process's push channel (None when push is off), built on first use after a fork."""
    global _channel
    with _lock:
        if _channel is None or _channel[0] != os.getpid():
            settings = get_settings()
            channel = build_push_channel(
                settings.fcm_credentials, settings.fcm_endpoint, concurrency=settings.fcm_concurrency
            )
            _channel = (os.getpid(), channel)
        return _channel[1]


def close_push_channel() -> None:
    """Release this process's channel (tests, worker shutdown)."""
    global _channel
    with _lock:
        if _channel is not None and _channel[0] == os.getpid() and _channel[1] is not None:
            _channel[1].close()
        _channel = None


@celeryd_after_setup.connect
def _announce(**_kwargs: Any) -> None:
    """Say at start-up (logging is set up, nothing consumed yet) whether push is on; bad credentials stop it."""
    settings = get_settings()
    if settings.fcm_credentials is None:
        log.warning(
            "推送通知已关闭：未配置 GONGPING_FIREBASE_CREDENTIALS，仅写入站内信 / "
            "push notifications OFF: GONGPING_FIREBASE_CREDENTIALS is not set; the in-app inbox still works"
        )
        return
    from firebase_admin import credentials

    # Parse it here, in the parent: a typo must stop the worker, not silently make every notice inbox-only.
    # SystemExit, because Celery logs and swallows ordinary exceptions raised by signal handlers.
    try:
        certificate = credentials.Certificate(os.fspath(settings.fcm_credentials))
    except (OSError, ValueError) as exc:
        log.critical("FCM credentials %s unusable: %s", settings.fcm_credentials, exc)
        raise SystemExit(
            f"GONGPING_FIREBASE_CREDENTIALS 文件无法使用 / unusable FCM credentials file: {exc}"
        ) from exc
    log.info(
        "推送通知已开启 / push notifications ON: project=%s endpoint=%s",
        certificate.project_id,
        settings.fcm_endpoint or "https://fcm.googleapis.com",
    )


@worker_process_init.connect
def _build_after_fork(**_kwargs: Any) -> None:
    """Prefork children build their channel as they start, not on the first notice."""
    push_channel()


@worker_process_shutdown.connect
def _close_on_exit(**_kwargs: Any) -> None:
    """Release the firebase App when a child exits."""
    close_push_channel()


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying: the database briefly unavailable (the inbox write included)."""
    # InboxUnavailable: the inbox write failed, so nothing of the event was kept and all of it is retried.
    if isinstance(exc, OperationalError | InboxUnavailable):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _backoff(retries: int) -> int:
    return int(min(600, 5 * 2**retries))


def _queue_of(task: Task[Any, Any]) -> str | None:
    """The queue the running task came from: follow-up sends stay on it (a dedicated notifications queue)."""
    info = getattr(task.request, "delivery_info", None) or {}
    queue = info.get("routing_key")
    return str(queue) if queue else None


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
    try:
        report, due = dispatch(event_id, push_enabled=push_channel() is not None)
    except Exception as exc:
        if not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    sent = _send(due, _queue_of(self)) if report.topic not in BATCH_SEND_TOPICS else SendReport()
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
    try:
        reports = dispatch_many(
            [int(i) for i in event_ids], push_enabled=push_channel() is not None, skip_broken=True
        )
    except Exception as exc:
        if not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    due = sorted(i for r in reports if r.topic not in BATCH_SEND_TOPICS for i in r.due_ids)
    queue = _queue_of(self)
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
        report = _send([int(i) for i in delivery_ids], _queue_of(self))
    except Exception as exc:
        if not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
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
    queue = _queue_of(self)
    for part in chunks(ids):
        send_push_task.apply_async(args=[part], queue=queue)
    return len(ids)


@_task(name="gongping.notifications.sweep_due_instruments")
def sweep_due_instruments_task(today: str | None = None) -> int:
    """Beat: emit ``instrument.due`` for verifications due in 30, 7 and 1 days (once per step and date)."""
    return sweep_due_instruments(date.fromisoformat(today) if today else None)


@_task(name="gongping.notifications.sweep_interview_reminders")
def sweep_interview_reminders_task(now: str | None = None) -> int:
    """Beat: emit ``interview.reminder`` 24 h and 1 h before each open interview (once per step and time)."""
    return sweep_interview_reminders(datetime.fromisoformat(now) if now else None)
