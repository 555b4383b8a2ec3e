"""The Celery application: at-least-once delivery, JSON only, time limits, and the beat schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from celery import Celery, Task
from celery.schedules import crontab
from sqlalchemy.exc import DBAPIError, OperationalError

from backend.config import Settings, get_settings
from backend.hooks import install as install_hooks
from backend.outbox.broker import client_conf


def make_celery(settings: Settings | None = None) -> Celery:
    """Build the Celery app for ``settings``."""
    settings = settings or get_settings()
    # The worker is an entry point: its sessions keep the public store current like the API's.
    install_hooks()
    app = Celery(
        "gongping",
        broker=settings.broker_url,
        include=[
            "workers.tasks",
            "workers.complaints_tasks",
            "workers.cases_tasks",
            "workers.records_tasks",
            "workers.notifications_tasks",
            "workers.sms_tasks",
            "workers.reminders_tasks",
            "workers.push_signals",
            "workers.intake_tasks",
            "workers.delivery_tracking",
            "workers.public_tasks",
            "workers.role_health",
            "workers.pool_signals",
        ],
    )
    app.conf.update(client_conf(settings))
    app.conf.update(
        # At-least-once: acknowledge after the task ran, and give the message back if the worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_time_limit=300,
        task_soft_time_limit=240,
        timezone=settings.timezone,
        enable_utc=True,
        worker_hijack_root_logger=False,
        # The filesystem transport has no fan-out exchange, so remote control cannot work there.
        worker_enable_remote_control=not settings.uses_embedded_broker,
        beat_schedule={
            "outbox-relay": {"task": "gongping.outbox.relay", "schedule": 5.0},
            "outbox-redrive": {"task": "gongping.outbox.redrive", "schedule": 300.0},
            # Pages people were reading when their operator changed are rendered again within seconds.
            "public-refresh": {"task": "gongping.public.refresh", "schedule": 5.0},
            "instrument-sweep": {"task": "gongping.instruments.sweep", "schedule": 3600.0},
            "complaint-photo-sweep": {"task": "gongping.complaints.sweep_pending_photos", "schedule": 900.0},
            "complaint-routing-sweep": {"task": "gongping.complaints.route_stale", "schedule": 600.0},
            # Deadlines end at 24:00 bureau time; a quarter-hourly sweep tells the parent within 15 minutes.
            "case-deadline-sweep": {"task": "gongping.cases.deadline_sweep", "schedule": 900.0},
            # Rating windows close at midnight (bureau time): re-rate everyone once the day has turned.
            "rating-nightly": {"task": "gongping.records.rerate_all", "schedule": crontab(hour=1, minute=30)},
            "upload-purge": {"task": "gongping.uploads.purge_expired", "schedule": 900.0},
            "idempotency-key-purge": {
                "task": "gongping.complaints.purge_idempotency_keys",
                "schedule": 3600.0,
            },
            # Pushes held for quiet hours or waiting out a retry delay go out when due.
            "push-retry-due": {"task": "gongping.notifications.retry_due", "schedule": 30.0},
            # Idempotent per step and due date, so hourly only makes a missed day cost an hour, not a day.
            "verification-due-reminders": {
                "task": "gongping.notifications.sweep_due_instruments",
                "schedule": 3600.0,
            },
            # Unread required notices fall back to SMS (working hours counted when they were written).
            "sms-sweep": {"task": "gongping.sms.sweep", "schedule": 60.0},
            "sms-settle": {"task": "gongping.sms.settle", "schedule": 60.0},
            "interview-reminders": {
                "task": "gongping.notifications.sweep_interview_reminders",
                "schedule": 300.0,
            },
        },
    )
    return app


celery_app = make_celery()


def task(**options: Any) -> Callable[[Callable[..., Any]], Task[Any, Any]]:
    """``celery_app.task`` with a type: Celery's decorator is untyped."""
    return cast(Callable[[Callable[..., Any]], "Task[Any, Any]"], celery_app.task(**options))


def database_unavailable(exc: BaseException) -> bool:
    """Whether a task failed because the database was briefly unavailable (worth a retry)."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def backoff(retries: int, base: int = 5) -> int:
    """Seconds before retry number ``retries``: doubling from ``base``, at most ten minutes."""
    return int(min(600, base * 2**retries))


def queue_of(task: Task[Any, Any]) -> str | None:
    """The queue the running task came from: follow-up sends stay on it (a dedicated queue, say)."""
    info = getattr(task.request, "delivery_info", None) or {}
    queue = info.get("routing_key")
    return str(queue) if queue else None
