"""Celery tasks. Each reloads what it needs by id, is idempotent, and commits its own unit of work."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from backend import faults
from backend.config import get_settings
from backend.dates import bureau_date
from backend.db import session_scope
from backend.instruments.sweep import sweep_overdue_instruments
from backend.outbox.models import OutboxEvent
from backend.outbox.relay import redrive_once, relay_once
from workers.celery_app import celery_app

log = logging.getLogger(__name__)


@celery_app.task(name="gongping.outbox.relay")
def relay_task() -> int:
    """Beat's safety net for the relay process: publish whatever is pending."""
    with session_scope() as session:
        return relay_once(session)


@celery_app.task(name="gongping.outbox.redrive")
def redrive_task() -> int:
    """Publish again the events whose tasks never finished (a message the broker lost)."""
    settings = get_settings()
    with session_scope() as session:
        return redrive_once(
            session,
            older_than=timedelta(seconds=settings.outbox_redrive_after_seconds),
            window=timedelta(hours=settings.outbox_redrive_window_hours),
        )


@celery_app.task(name="gongping.instruments.sweep")
def instrument_sweep_task(today: str | None = None) -> int:
    """Find instruments that became overdue; one ``instrument.overdue`` event per instrument and due date."""
    day = date.fromisoformat(today) if today else bureau_date()
    return sweep_overdue_instruments(day)


@celery_app.task(name="gongping.events.log")
def log_event_task(event_id: int) -> None:
    """Record that an event reached the workers (consumers for each topic come with their issues)."""
    faults.pause("events.log")  # tests: a task in flight when a worker is stopped
    with session_scope() as session:
        event = session.get(OutboxEvent, event_id)
        if event is not None:
            log.info("event %s %s %s", event.id, event.topic, event.payload)
