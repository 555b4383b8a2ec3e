"""Validators for the filer's polls (``/me/complaints``, a complaint's timeline): one small query each."""

from __future__ import annotations

from sqlalchemy import Integer, Subquery, bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.auth.dependencies import ACCOUNT_ID, account_with, joined_to_account
from backend.auth.models import Account
from backend.auth.security import AccessClaims
from backend.common.etag import make_etag
from backend.complaints.models import Complaint, ComplaintEvent, ComplaintPhoto
from backend.operators.models import Operator


def _own_list_validator() -> Subquery:
    """The account's complaint counts on its (account_id, id) index, and when the page's operators last changed.

    A line shows its operator's name: a rename (which stamps ``operator.updated_at``) changes the page, so the
    newest change among the operators of the page asked for (``limit``, ``offset``) is part of the validator.
    """
    page = (
        select(col(Complaint.operator_id))
        .where(col(Complaint.account_id) == ACCOUNT_ID)
        .order_by(col(Complaint.id).desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("page")
    )
    operators_changed = (
        sa_select(func.max(col(Operator.updated_at)))
        .join_from(page, Operator, col(Operator.id) == page.c.operator_id)
        .scalar_subquery()
    )
    return (
        sa_select(
            func.count().label("complaints"),
            func.max(col(Complaint.id)).label("last_id"),
            func.max(col(Complaint.updated_at)).label("last_change"),
            operators_changed.label("operators_changed"),
        )
        .where(col(Complaint.account_id) == ACCOUNT_ID)
        .subquery("own_list_validator")
    )


_OWN_LIST_POLL = joined_to_account(_own_list_validator())


def polled_own_list(
    session: Session, claims: AccessClaims, *, limit: int, offset: int
) -> tuple[Account, str, int]:
    """The filer's account (active, in term: 401 otherwise), the validator of a page of their complaints, and
    how many there are (the page's total), in one round trip.

    Changes when a complaint is filed or any of the account's complaints changes (status, routing), or an
    operator named on the page is edited.
    """
    account, (count, last_id, last_change, operators_changed) = account_with(
        session, claims, _OWN_LIST_POLL, limit=limit, offset=offset
    )
    etag = make_etag(
        "me-complaints", account.id, count, last_id, last_change, operators_changed, limit, offset
    )
    return account, etag, int(count)


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
