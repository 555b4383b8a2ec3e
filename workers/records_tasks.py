"""Records tasks: re-rate an operator after a record changes, the nightly full re-rating, overdue records."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import date
from typing import Any

from celery import Task

from backend.db import session_scope
from backend.outbox.models import OutboxEvent
from backend.records import rating
from backend.records import service as records
from workers.celery_app import database_unavailable
from workers.celery_app import task as _task

log = logging.getLogger(__name__)

MAX_RETRIES = 6
#: Operator ids per nightly range task: a few seconds of work each, far inside the task time limit.
RANGE_SIZE = 20_000


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying: the database briefly unavailable."""
    return database_unavailable(exc)


def _payload(event_id: int) -> dict[str, Any] | None:
    with session_scope() as session:
        event = session.get(OutboxEvent, event_id)
        return dict(event.payload) if event is not None else None


def rerate_for_event(event_id: int, *, as_of: date | None = None) -> rating.RerateReport:
    """What a ``record.changed`` or ``operator.rating_inputs_changed`` event asks for: re-rate its operator."""
    return rating.rerate_for_event(event_id, as_of=as_of)


@_task(name="gongping.records.rerate_operator", bind=True, max_retries=MAX_RETRIES)
def rerate_operator_task(self: Task[Any, Any], event_id: int) -> bool:
    """The ``record.changed`` / ``operator.rating_inputs_changed`` consumer; a no-op when nothing changed."""
    try:
        report = rerate_for_event(event_id)
    except Exception as exc:
        if not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=min(600, 10 * 2**self.request.retries)) from exc
    return report.class_changes > 0


@_task(name="gongping.records.rerate_all")
def rerate_all_task(as_of: str | None = None) -> int:
    """The nightly re-rating (windows expire): one range task per block of operator ids."""
    day = date.fromisoformat(as_of) if as_of else records.bureau_today()
    with session_scope() as session:
        ranges = rating.operator_ranges(session, RANGE_SIZE)
    for lo, hi in ranges:
        rerate_range_task.apply_async(args=[lo, hi, day.isoformat()])
    return len(ranges)


@_task(name="gongping.records.rerate_range", bind=True, max_retries=MAX_RETRIES)
def rerate_range_task(self: Task[Any, Any], lo: int, hi: int, as_of: str) -> dict[str, int]:
    """Re-rate operators with ids in [lo, hi) on ``as_of``; idempotent, so a redelivery is harmless."""
    try:
        with session_scope() as session:
            report = rating.rerate_range(session, lo, hi, as_of=date.fromisoformat(as_of))
    except Exception as exc:
        if not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=min(600, 10 * 2**self.request.retries)) from exc
    if report.mismatches:
        log.error("re-rating %s..%s: %s set-based mismatches", lo, hi, report.mismatches)
    return asdict(report)


@_task(name="gongping.records.record_overdue_instrument")
def record_overdue_instrument_task(event_id: int) -> int | None:
    """The ``instrument.overdue`` consumer: a reported record for staff to verify (Art. 13(3))."""
    payload = _payload(event_id)
    if payload is None:
        return None
    with session_scope() as session:
        record = records.record_overdue_instrument(
            session,
            instrument_id=int(payload["instrument_id"]),
            valid_until=date.fromisoformat(str(payload["valid_until"])),
        )
        return record.id if record is not None else None
