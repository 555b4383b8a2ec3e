"""The Celery application: at-least-once delivery, JSON only, time limits, and the beat schedule."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab

from backend.config import Settings, get_settings


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Transport options; the embedded broker is kombu's filesystem transport in a folder under var/."""
    if settings.uses_embedded_broker:
        queue = settings.broker_dir / "queue"
        processed = settings.broker_dir / "processed"
        control = settings.broker_dir / "control"
        for folder in (queue, processed, control):
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(processed),
            "control_folder": str(control),
            "store_processed": False,
        }
    # Redis: a message not acknowledged within this time is redelivered (must exceed the longest task).
    options: dict[str, Any] = {"visibility_timeout": settings.broker_visibility_timeout}
    if settings.broker_visibility_timeout < 60:
        # A short timeout (fault tests) needs the sweep for abandoned messages to run every second, not 100 s.
        options |= {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
    return options


def make_celery(settings: Settings | None = None) -> Celery:
    """Build the Celery app for ``settings``."""
    settings = settings or get_settings()
    app = Celery(
        "gongping",
        broker=settings.broker_url,
        include=[
            "workers.tasks",
            "workers.complaints_tasks",
            "workers.cases_tasks",
            "workers.records_tasks",
            "workers.notifications_tasks",
            "workers.intake_tasks",
            "workers.delivery_tracking",
            "workers.public_tasks",
        ],
    )
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        # At-least-once: acknowledge after the task ran, and give the message back if the worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_time_limit=300,
        task_soft_time_limit=240,
        task_default_queue="gongping",
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
            "interview-reminders": {
                "task": "gongping.notifications.sweep_interview_reminders",
                "schedule": 300.0,
            },
        },
    )
    return app


celery_app = make_celery()
