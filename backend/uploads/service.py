"""Photos uploaded ahead: store once per account and content, attach once, expire when never attached.

On a bad network the app uploads each photo on its own (a cut costs one photo, not the whole complaint) and
then files the complaint as JSON naming the upload ids. Sending a photo again answers with the same upload,
so a retry re-sends only what did not arrive.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from backend.auth.models import Account
from backend.complaints.models import ComplaintPhoto, PhotoKind
from backend.complaints.service import (
    IncomingPhoto,
    Submission,
    UploadedPhoto,
    request_hash,
    store_original,
)
from backend.config import get_settings
from backend.db import utcnow
from backend.errors import AppError, conflict
from backend.media.storage import MediaStorage
from backend.uploads.models import PhotoUpload

#: Expired uploads deleted per sweep run (the next run takes the rest).
SWEEP_BATCH = 1000


def _ttl() -> timedelta:
    return timedelta(hours=get_settings().upload_ttl_hours)


def create_upload(
    session: Session, *, account: Account, photo: IncomingPhoto, storage: MediaStorage
) -> tuple[PhotoUpload, bool]:
    """Store a validated photo for ``account``; the same bytes again answer with the same waiting upload.

    Returns the upload and whether this call created it. The original is (re)written either way: the bytes
    are at hand, so an upload never points at a file a concurrent sweep just removed.
    """
    assert account.id is not None
    # Uploads of one account are serialised, so two retries of the same photo cannot make two uploads.
    session.get(Account, account.id, with_for_update=True)
    key = store_original(storage, photo)
    now = utcnow()
    existing = session.execute(
        select(PhotoUpload)
        .where(
            col(PhotoUpload.account_id) == account.id,
            col(PhotoUpload.original_sha256) == photo.sha256,
            col(PhotoUpload.complaint_id).is_(None),
            col(PhotoUpload.expires_at) > now,
        )
        .order_by(col(PhotoUpload.created_at).desc())
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        existing.expires_at = now + _ttl()
        session.add(existing)
        session.flush()
        return existing, False
    upload = PhotoUpload(
        id=secrets.token_hex(16),
        account_id=account.id,
        original_key=key,
        original_sha256=photo.sha256,
        original_bytes=len(photo.data),
        original_format=photo.format.value,
        width=photo.width,
        height=photo.height,
        created_at=now,
        expires_at=now + _ttl(),
    )
    session.add(upload)
    session.flush()
    return upload, True


def _upload_not_found(upload_id: str) -> AppError:
    return AppError(
        404,
        "upload_not_found",
        "照片上传记录不存在或已过期，请重新上传该照片",
        "the upload does not exist or has expired; upload the photo again",
        {"upload": upload_id},
    )


def resolve(
    session: Session, *, account: Account, submission: Submission, storage: MediaStorage
) -> Submission:
    """The submission with its named uploads (locked, in order) and its request hash; 404 for any not usable.

    Another account's upload is 404 like a missing one. An upload attached to a complaint is returned as such:
    whether that is a replay or a conflict is decided with the Idempotency-Key (:func:`check_unattached`).
    """
    ids = submission.upload_ids
    if len(set(ids)) != len(ids):
        raise AppError(
            422,
            "duplicate_upload",
            "同一张照片不能在一件投诉中出现两次",
            "the same upload is named twice",
            {"photo_uploads": list(ids)},
        )
    kinds = submission.data.photo_kinds
    if kinds and len(kinds) != len(ids):
        raise AppError(
            422,
            "photo_kinds_mismatch",
            "photo_kinds 的数量须与照片数量一致",
            "photo_kinds must list one kind per photo",
            {"photos": len(ids), "photo_kinds": len(kinds)},
        )
    rows = {
        row.id: row
        for row in session.execute(
            select(PhotoUpload).where(col(PhotoUpload.id).in_(ids)).with_for_update()
        ).scalars()
    }
    now = utcnow()
    uploaded: list[UploadedPhoto] = []
    for position, upload_id in enumerate(ids):
        row = rows.get(upload_id)
        usable = (
            row is not None
            and row.account_id == account.id
            and (row.complaint_id is not None or row.expires_at > now)
        )
        # A file lost to a sweep racing a re-upload: the app sends the photo again and gets it back.
        if row is None or not usable or not storage.exists(row.original_key):
            raise _upload_not_found(upload_id)
        uploaded.append(
            UploadedPhoto(
                upload_id=row.id,
                original_key=row.original_key,
                sha256=row.original_sha256,
                original_bytes=row.original_bytes,
                format=row.original_format,
                width=row.width,
                height=row.height,
                kind=kinds[position] if kinds else PhotoKind.other,
                complaint_id=row.complaint_id,
            )
        )
    # The hash is of the JSON without the upload ids and the photos' SHA-256s: a retry that had to upload a
    # photo again (a new id for the same bytes) is still the same submission.
    raw = {k: v for k, v in (submission.raw or {}).items() if k != "photo_uploads"}
    return replace(
        submission,
        uploaded=tuple(uploaded),
        request_hash=request_hash(raw, [u.sha256 for u in uploaded]),
    )


def check_unattached(submission: Submission) -> None:
    """409 when a named upload already belongs to a complaint (a new submission may not take it)."""
    taken = [u.upload_id for u in submission.uploaded if u.complaint_id is not None]
    if taken:
        raise conflict(
            "upload_already_attached",
            "该照片已用于另一件投诉，请重新上传",
            "this upload already belongs to another complaint",
            {"photo_uploads": taken},
        )


def purge_expired(
    session: Session, *, now: datetime | None = None, limit: int = SWEEP_BATCH
) -> tuple[list[str], int]:
    """Delete expired uploads never attached: the storage keys no longer used by anything, and how many.

    The caller deletes those files after the commit (a rollback then keeps both rows and files).
    """
    now = now or utcnow()
    expired = list(
        session.execute(
            select(col(PhotoUpload.id), col(PhotoUpload.original_key))
            .where(col(PhotoUpload.complaint_id).is_(None), col(PhotoUpload.expires_at) <= now)
            .order_by(col(PhotoUpload.expires_at))
            .limit(limit)
        ).all()
    )
    if not expired:
        return [], 0
    session.execute(delete(PhotoUpload).where(col(PhotoUpload.id).in_([row[0] for row in expired])))
    keys = sorted({str(row[1]) for row in expired})
    return sorted(set(keys) - _keys_in_use(session, keys)), len(expired)


def _keys_in_use(session: Session, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` a complaint photo or a remaining upload still points at (files are shared by content)."""
    used = set(
        session.execute(
            select(col(ComplaintPhoto.original_key)).where(col(ComplaintPhoto.original_key).in_(keys))
        ).scalars()
    )
    used |= set(
        session.execute(
            select(col(PhotoUpload.original_key)).where(col(PhotoUpload.original_key).in_(keys))
        ).scalars()
    )
    return {str(k) for k in used}


def delete_files(storage: MediaStorage, keys: Sequence[str]) -> None:
    """Remove swept originals (a missing file is fine)."""
    for key in keys:
        storage.delete(key)
