"""Intake tasks: import an uploaded CSV file (verification results or association reports) chunk by chunk."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from sqlalchemy.exc import IntegrityError

from backend.db import session_scope
from backend.intake import jobs
from backend.media.factory import media_storage
from backend.media.storage import MediaNotFound, MediaUnavailable
from backend.outbox.models import OutboxEvent
from workers.celery_app import database_unavailable
from workers.celery_app import task as _task

log = logging.getLogger(__name__)

MAX_RETRIES = 6


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying: the database or the media store briefly unavailable, or a unique key another
    upload of the same certificates committed first (the retried chunk then counts those rows as duplicates)."""
    return isinstance(exc, IntegrityError | MediaUnavailable) or database_unavailable(exc)


# 100,000 rows take well under a minute; the limits leave room for a loaded machine, and a redelivery resumes
# after the last committed chunk.
@_task(
    name="gongping.intake.run_job",
    bind=True,
    max_retries=MAX_RETRIES,
    time_limit=1800,
    soft_time_limit=1700,
)
def run_job_task(self: Task[Any, Any], event_id: int) -> str | None:
    """The ``intake.job_submitted`` consumer: import the job's file; a finished job is left alone."""
    with session_scope() as session:
        event = session.get(OutboxEvent, event_id)
        payload = dict(event.payload) if event is not None else None
    if payload is None:
        return None
    job_id = int(payload["job_id"])
    try:
        state = jobs.run_job(job_id, storage=media_storage())
    except MediaNotFound:
        jobs.fail_job(job_id, "上传的文件已不存在 / the uploaded file is gone")
        return "failed"
    except Exception as exc:
        if _transient(exc) and self.request.retries < MAX_RETRIES:
            raise self.retry(exc=exc, countdown=min(600, 10 * 2**self.request.retries)) from exc
        log.exception("intake job %s failed", job_id)
        jobs.fail_job(job_id, f"{type(exc).__name__}: {exc}")
        raise
    return state.value if state is not None else None
