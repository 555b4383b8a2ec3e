"""The inbox as the app reads it: in the reader's language, with a validator for cheap polling."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select
from starlette.requests import HTTPConnection

from backend.auth.models import Account
from backend.common.etag import make_etag
from backend.i18n import Locale, explicit_locale, normalise_locale
from backend.notices.models import Device, InboxNotification
from backend.notices.schemas import NotificationRead


def reader_locale(session: Session, conn: HTTPConnection, account: Account) -> Locale:
    """``?lang=`` or ``Accept-Language`` when sent, else the locale the app registered its device with."""
    asked = explicit_locale(conn)
    if asked is not None:
        return asked
    registered = session.execute(
        select(col(Device.locale))
        .where(col(Device.account_id) == account.id, col(Device.active))
        .order_by(col(Device.last_seen).desc(), col(Device.id).desc())
        .limit(1)
    ).scalar_one_or_none()
    return normalise_locale(registered or account.locale)


def to_read(row: InboxNotification, locale: Locale) -> NotificationRead:
    """An entry with its title and body in ``locale`` (older entries only have the language they were written in)."""
    read = NotificationRead.model_validate(row)
    text = (row.texts or {}).get(locale)
    if text is None:
        return read
    return read.model_copy(update={"title": text["title"], "body": text["body"]})


def inbox_etag(
    session: Session, account: Account, *, locale: Locale, unread_only: bool, limit: int, offset: int
) -> str:
    """Changes when an entry arrives or is read (one query on the recipient's index)."""
    count, last_id, read_count, last_read = session.execute(
        select(
            func.count(),
            func.max(col(InboxNotification.id)),
            func.count(col(InboxNotification.read_at)),
            func.max(col(InboxNotification.read_at)),
        ).where(col(InboxNotification.recipient_id) == account.id)
    ).one()
    return make_etag(
        "inbox", account.id, count, last_id, read_count, last_read, locale, unread_only, limit, offset
    )
