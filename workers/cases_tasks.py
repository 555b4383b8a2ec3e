"""Case tasks: route each new complaint to its bureau, re-route any the relay missed, sweep the deadlines."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task
from sqlmodel import col, select

from backend import faults
from backend.cases.routing import GeocoderRetry
from backend.cases.service import route_complaint
from backend.cases.sweep import sweep_deadlines
from backend.complaints.models import Complaint, RoutingStatus
from backend.db import UnitOfWork, session_scope, utcnow
from backend.outbox.models import OutboxEvent
from backend.records.correction_sweep import sweep_corrections
from workers.celery_app import backoff, database_unavailable
from workers.celery_app import task as _task

log = logging.getLogger(__name__)

MAX_RETRIES = 6
#: A complaint still pending routing this long after filing lost its task: the sweep routes it.
STALE_AFTER = timedelta(minutes=10)
SWEEP_LIMIT = 500


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying: the database briefly unavailable, or the geocoder."""
    return isinstance(exc, GeocoderRetry) or database_unavailable(exc)


def route_one(
    complaint_id: int, *, final_attempt: bool = False, unit_of_work: UnitOfWork = session_scope
) -> str | None:
    """Route one complaint in its own transaction; the case number, or None for an unknown complaint."""
    with unit_of_work() as session:
        case = route_complaint(session, complaint_id, final_attempt=final_attempt)
        return case.case_no if case is not None else None


def route_event(
    event_id: int, *, final_attempt: bool = False, unit_of_work: UnitOfWork = session_scope
) -> str | None:
    """Route the complaint of a ``complaint.created`` event in one transaction; None for an unknown event."""
    with unit_of_work() as session:
        event = session.get(OutboxEvent, event_id)
        if event is None:
            return None
        case = route_complaint(session, int(event.payload["complaint_id"]), final_attempt=final_attempt)
        faults.pause("route.before_commit")
        return case.case_no if case is not None else None


def _route(task: Task[Any, Any], event_id: int) -> str | None:
    # On the last attempt a geocoder that keeps failing no longer holds the report back: it goes to triage.
    final = task.request.retries >= MAX_RETRIES
    try:
        return route_event(event_id, final_attempt=final)
    except Exception as exc:
        if not _transient(exc):
            raise
        log.warning("event %s: routing failed transiently, retrying: %s", event_id, exc)
        raise task.retry(exc=exc, countdown=backoff(task.request.retries, base=10)) from exc


@_task(name="gongping.complaints.route", bind=True, max_retries=MAX_RETRIES)
def route_task(self: Task[Any, Any], event_id: int) -> str | None:
    """The ``complaint.created`` consumer: route the complaint into a case; a no-op once routed."""
    return _route(self, event_id)


@_task(name="gongping.complaints.route_stale")
def route_stale_task() -> int:
    """Route complaints still pending long after filing (their event was lost or its task gave up)."""
    with session_scope() as session:
        ids = list(
            session.execute(
                select(col(Complaint.id))
                .where(
                    col(Complaint.routing_status) == RoutingStatus.pending,
                    col(Complaint.created_at) < utcnow() - STALE_AFTER,
                )
                .order_by(col(Complaint.created_at))
                .limit(SWEEP_LIMIT)
            ).scalars()
        )
    routed = 0
    for complaint_id in ids:
        try:
            # Final: this is already the fallback, so a failing geocoder sends the report to triage.
            if route_one(int(complaint_id), final_attempt=True) is not None:
                routed += 1
        except Exception:
            log.exception("complaint %s: routing failed in the sweep", complaint_id)
    return routed


@_task(name="gongping.cases.deadline_sweep")
def deadline_sweep_task() -> int:
    """Mark cases past a statutory deadline, escalate them and emit ``case.overdue`` once per deadline; the
    same for correction requests decided late (Art. 22, ``correction.overdue``)."""
    return sweep_deadlines() + sweep_corrections()
