"""Complaint tasks: process photos after commit, re-enqueue stale ones, purge old idempotency keys and uploads."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task

from backend.complaints.photos import process_photo, stale_pending_photos
from backend.complaints.service import purge_idempotency_keys
from backend.db import session_scope
from backend.media.factory import media_storage
from backend.outbox.models import OutboxEvent
from backend.uploads.service import SWEEP_BATCH as UPLOAD_SWEEP_BATCH
from backend.uploads.service import delete_files as delete_upload_files
from backend.uploads.service import purge_expired as purge_expired_uploads
from workers.celery_app import backoff, database_unavailable
from workers.celery_app import task as _task

log = logging.getLogger(__name__)

MAX_RETRIES = 6
#: A photo still pending this long after upload lost its task (or it gave up): the sweep sends it again.
STALE_AFTER = timedelta(minutes=30)


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying: the database or the photo store being briefly unavailable."""
    return database_unavailable(exc) or isinstance(exc, OSError)


def _process(task: Task[Any, Any], photo_id: int) -> str | None:
    try:
        status = process_photo(photo_id)
    except Exception as exc:
        if not _transient(exc):
            raise
        log.warning("photo %s: transient error, retrying: %s", photo_id, exc)
        raise task.retry(exc=exc, countdown=backoff(task.request.retries, base=10)) from exc
    return status.value if status is not None else None


@_task(name="gongping.complaints.process_photo", bind=True, max_retries=MAX_RETRIES)
def process_photo_task(self: Task[Any, Any], photo_id: int) -> str | None:
    """Process one complaint photo (renditions, evidence, hashes, reuse check); a no-op once done."""
    return _process(self, photo_id)


@_task(name="gongping.complaints.process_photos", bind=True, max_retries=MAX_RETRIES)
def process_photos_task(self: Task[Any, Any], event_id: int) -> list[str | None]:
    """The ``complaint.created`` consumer: process every photo of the complaint, each idempotently."""
    with session_scope() as session:
        event = session.get(OutboxEvent, event_id)
        photo_ids = [int(i) for i in (event.payload.get("photo_ids") or [])] if event is not None else []
    # One after another in this task: a retry after a transient error skips the photos already done.
    return [_process(self, photo_id) for photo_id in photo_ids]


@_task(name="gongping.complaints.sweep_pending_photos")
def sweep_pending_photos_task() -> int:
    """Send photos that are still pending long after upload to be processed again."""
    with session_scope() as session:
        photo_ids = stale_pending_photos(session, older_than=STALE_AFTER)
    for photo_id in photo_ids:
        process_photo_task.apply_async(args=[photo_id])
    return len(photo_ids)


@_task(name="gongping.complaints.purge_idempotency_keys")
def purge_idempotency_keys_task() -> int:
    """Delete idempotency keys past their retention (at least 7 days)."""
    with session_scope() as session:
        return purge_idempotency_keys(session)


@_task(name="gongping.uploads.purge_expired")
def purge_expired_uploads_task() -> int:
    """Delete photos uploaded ahead that expired without a complaint, and their files once unused."""
    removed = 0
    while True:
        with session_scope() as session:
            keys, count = purge_expired_uploads(session)
            # Files go before the rows' deletion commits: with the store unreachable this raises, the rows stay
            # and the next sweep tries again, so no photo (GPS and all) outlives its row unseen. A row left
            # without its file by a failed commit is expired, so nothing can attach it, and goes next time.
            delete_upload_files(media_storage(), keys)
        removed += count
        if count < UPLOAD_SWEEP_BATCH:
            return removed
