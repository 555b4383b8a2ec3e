"""Processing a stored complaint photo after commit: renditions, evidence, hashes and the reuse check.

Called by the worker task with a photo id; idempotent (a processed or rejected photo is left alone) and
safe when two deliveries of the same task race (the result is written only while the photo is pending).
Pixels are worked on outside any transaction, so a slow photo never holds database locks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, or_, select

from backend import faults
from backend.complaints.models import ComplaintPhoto, PhotoStatus
from backend.complaints.service import DISPLAY, THUMBNAILS
from backend.config import get_settings
from backend.db import UnitOfWork, session_scope, utcnow
from backend.media.factory import media_storage
from backend.media.processing import MediaError, ProcessedPhoto, hamming, process
from backend.media.storage import MediaNotFound, MediaStorage, put_content_addressed

log = logging.getLogger(__name__)


#: At most this many earlier photos are listed as probable sources of a reused one.
MAX_DUPLICATES_LISTED = 20


@dataclass(frozen=True)
class _Pending:
    complaint_id: int
    original_key: str
    original_sha256: str


@dataclass(frozen=True)
class Rejection:
    """Why a photo could not be processed, for the filer and staff."""

    reason: str
    message_zh: str
    message_en: str


def _rejection(exc: Exception) -> Rejection:
    if isinstance(exc, MediaError):
        return Rejection(exc.reason, exc.message_zh, exc.message_en)
    return Rejection(
        "processing_failed",
        "照片无法处理，投诉已保存，其他材料不受影响",
        "the photo could not be processed; the complaint itself is kept",
    )


def find_reuse(
    session: Session,
    *,
    photo_id: int,
    complaint_id: int,
    phash: int,
    sha256: str,
    since: datetime,
    max_distance: int,
) -> list[int]:
    """Photos of other complaints that are the same picture: same bytes ever, or a near pHash recently."""
    stmt = (
        select(col(ComplaintPhoto.id), col(ComplaintPhoto.phash), col(ComplaintPhoto.original_sha256))
        .where(
            col(ComplaintPhoto.complaint_id) != complaint_id,
            col(ComplaintPhoto.id) != photo_id,
            or_(
                col(ComplaintPhoto.original_sha256) == sha256,
                (col(ComplaintPhoto.status) == PhotoStatus.processed)
                & (col(ComplaintPhoto.processed_at) >= since),
            ),
        )
        .order_by(col(ComplaintPhoto.id))
        .execution_options(yield_per=5000)
    )
    found: list[int] = []
    for other_id, other_phash, other_sha in session.execute(stmt):
        same_bytes = other_sha == sha256
        if same_bytes or (other_phash is not None and hamming(phash, other_phash) <= max_distance):
            found.append(int(other_id))
            if len(found) >= MAX_DUPLICATES_LISTED:
                break
    return found


def store_renditions(storage: MediaStorage, result: ProcessedPhoto) -> tuple[str, str]:
    """Store the display copy and the thumbnail under their content keys; returns (display key, thumbnail key)."""
    display = put_content_addressed(
        storage, result.display.data, namespace=DISPLAY, extension="jpg", look_first=False
    )
    thumbnail = put_content_addressed(
        storage, result.thumbnail.data, namespace=THUMBNAILS, extension="jpg", look_first=False
    )
    return display, thumbnail


def process_photo(
    photo_id: int, *, unit_of_work: UnitOfWork = session_scope, storage: MediaStorage | None = None
) -> PhotoStatus | None:
    """Process one photo; returns its final status (None if it does not exist).

    ``OSError`` from storage and database errors propagate: they are transient, and the task retries.
    """
    storage = storage or media_storage()
    settings = get_settings()
    with unit_of_work() as session:
        photo = session.get(ComplaintPhoto, photo_id)
        if photo is None:
            return None
        if photo.status != PhotoStatus.pending:
            return photo.status
        pending = _Pending(photo.complaint_id, photo.original_key, photo.original_sha256)
    result: ProcessedPhoto | None = None
    rejection: Rejection | None = None
    try:
        data = storage.get(pending.original_key)
    except MediaNotFound:
        rejection = Rejection(
            "original_missing",
            "照片原件缺失，投诉已保存",
            "the original photo is missing; the complaint is kept",
        )
    else:
        try:
            result = process(
                data,
                max_bytes=settings.complaint_photo_max_bytes,
                max_pixels=settings.complaint_photo_max_pixels,
            )
        except Exception as exc:
            # Anything the decoder throws on hostile input is this photo's problem, never the complaint's.
            if not isinstance(exc, MediaError):
                log.exception("photo %s: processing failed", photo_id)
            rejection = _rejection(exc)
        if result is not None and result.sha256 != pending.original_sha256:
            # The stored evidence no longer matches what was uploaded: never derive anything from it.
            log.error("photo %s: stored original does not match its SHA-256", photo_id)
            rejection = Rejection(
                "integrity_mismatch",
                "照片原件校验失败，已交由工作人员核查",
                "the stored original failed its integrity check; staff will review it",
            )
            result = None
    keys = store_renditions(storage, result) if result is not None else None
    faults.pause("photo.before_write")
    with unit_of_work() as session:
        photo = session.get(ComplaintPhoto, photo_id, with_for_update=True)
        if photo is None or photo.status != PhotoStatus.pending:
            return photo.status if photo is not None else None
        now = utcnow()
        photo.processed_at = now
        if result is None or keys is None:
            assert rejection is not None
            photo.status = PhotoStatus.rejected
            photo.reject_reason = rejection.reason[:32]
            photo.reject_message_zh = rejection.message_zh[:300]
            photo.reject_message_en = rejection.message_en[:300]
        else:
            photo.status = PhotoStatus.processed
            photo.display_key, photo.thumbnail_key = keys
            photo.phash = result.phash_hex
            photo.evidence = dict(result.evidence.to_dict())
            photo.duplicate_of_photo_ids = find_reuse(
                session,
                photo_id=photo_id,
                complaint_id=pending.complaint_id,
                phash=result.phash,
                sha256=result.sha256,
                since=now - timedelta(days=settings.photo_reuse_window_days),
                max_distance=settings.photo_reuse_max_distance,
            )
        session.add(photo)
        session.flush()
        return photo.status


def stale_pending_photos(session: Session, *, older_than: timedelta, limit: int = 1000) -> list[int]:
    """Photos still pending well after upload (their task was lost or gave up), oldest first."""
    cutoff = utcnow() - older_than
    return [
        int(i)
        for i in session.execute(
            select(col(ComplaintPhoto.id))
            .where(col(ComplaintPhoto.status) == PhotoStatus.pending, col(ComplaintPhoto.created_at) < cutoff)
            .order_by(col(ComplaintPhoto.id))
            .limit(limit)
        ).scalars()
    ]
