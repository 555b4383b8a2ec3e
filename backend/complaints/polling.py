"""Validators for the filer's polls (``/me/complaints``, a complaint's timeline): one small query each."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.auth.models import Account
from backend.common.etag import make_etag
from backend.complaints.models import Complaint, ComplaintEvent, ComplaintPhoto


def own_list_etag(session: Session, account: Account, *, limit: int, offset: int) -> str:
    """Changes when a complaint is filed or any of the account's complaints changes (status, routing)."""
    count, last_id, last_change = session.execute(
        select(func.count(), func.max(col(Complaint.id)), func.max(col(Complaint.updated_at))).where(
            col(Complaint.account_id) == account.id
        )
    ).one()
    return make_etag("me-complaints", account.id, count, last_id, last_change, limit, offset)


def timeline_etag(session: Session, complaint: Complaint, locale: str) -> str:
    """Changes with the complaint, a new timeline step, or a photo's processing outcome."""
    cid = complaint.id
    events = select(func.count(), func.max(col(ComplaintEvent.id))).where(
        col(ComplaintEvent.complaint_id) == cid
    )
    photos = select(
        func.count(col(ComplaintPhoto.processed_at)), func.max(col(ComplaintPhoto.processed_at))
    ).where(col(ComplaintPhoto.complaint_id) == cid)
    event_count, last_event = session.execute(events).one()
    processed, last_processed = session.execute(photos).one()
    return make_etag(
        "complaint",
        cid,
        complaint.updated_at,
        complaint.status,
        complaint.routing_status,
        event_count,
        last_event,
        processed,
        last_processed,
        locale,
    )
