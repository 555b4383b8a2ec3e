"""SMS tasks: the fallback sweep, sending, and settling sends (reconciliation, receipts). The work is in
``backend/notices/sms/``."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.signals import worker_process_init

from backend.db import session_scope, utcnow
from backend.notices.sms.channel import announce, sms_provider
from backend.notices.sms.sending import poll_receipts, queue_due, reconcile, send_messages
from backend.notices.sms.sweep import sweep
from workers.celery_app import backoff, database_unavailable, queue_of
from workers.celery_app import task as _task

log = logging.getLogger(__name__)

#: SMS per send task: each is one provider call, a few per second.
SEND_CHUNK = 20


@worker_process_init.connect
def _announce(**_kwargs: Any) -> None:
    announce()


def _hand_out(ids: list[int], queue: str | None) -> None:
    for start in range(0, len(ids), SEND_CHUNK):
        send_sms_task.apply_async(args=[ids[start : start + SEND_CHUNK]], queue=queue)


@_task(name="gongping.sms.sweep", bind=True)
def sweep_task(self: Task[Any, Any]) -> dict[str, int]:
    """Beat: unread required notices due for SMS become messages; messages due (new or retries) are sent."""
    if sms_provider() is None:
        return {"due": 0, "handled": 0}
    now = utcnow()
    made, handled = sweep(session_scope, now)
    with session_scope() as session:
        due = sorted(set(made) | set(queue_due(session, now)))
    _hand_out(due, queue_of(self))
    return {"due": len(due), "handled": handled}


@_task(name="gongping.sms.send", bind=True, max_retries=5)
def send_sms_task(self: Task[Any, Any], message_ids: list[int]) -> dict[str, int]:
    """Send the given messages that are still pending and due (a redelivered task finds them claimed)."""
    provider = sms_provider()
    if provider is None:
        return {"sent": 0}
    try:
        report = send_messages(provider, [int(i) for i in message_ids])
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return {"sent": report.sent, "retry": report.retry, "unknown": report.unknown, "skipped": report.skipped}


@_task(name="gongping.sms.settle", bind=True)
def settle_task(self: Task[Any, Any]) -> dict[str, int]:
    """Beat: settle sends nobody answered for (by the provider's records) and read delivery receipts."""
    provider = sms_provider()
    if provider is None:
        return {}
    now = utcnow()
    found = reconcile(provider, now=now)
    receipts = poll_receipts(provider, now=now)
    return {f"reconcile_{k}": v for k, v in found.items()} | {f"receipts_{k}": v for k, v in receipts.items()}
