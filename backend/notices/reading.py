"""The inbox as the app reads it: in the reader's language, with a validator for cheap polling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Subquery, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar
from starlette.requests import HTTPConnection

from backend.auth.dependencies import ACCOUNT_ID, account_with, joined_to_account
from backend.auth.models import Account
from backend.auth.security import AccessClaims
from backend.common.etag import make_etag
from backend.i18n import Locale, explicit_locale, normalise_locale
from backend.notices.models import Device, InboxNotification
from backend.notices.schemas import NotificationRead


def _registered_locale(account_id: int | BindParameter[int]) -> SelectOfScalar[str]:
    """The locale of the account's most recently seen active device, as a select."""
    return (
        select(col(Device.locale))
        .where(col(Device.account_id) == account_id, col(Device.active))
        .order_by(col(Device.last_seen).desc(), col(Device.id).desc())
        .limit(1)
    )


def reader_locale(session: Session, conn: HTTPConnection, account: Account) -> Locale:
    """``?lang=`` or ``Accept-Language`` when sent, else the locale the app registered its device with."""
    asked = explicit_locale(conn)
    if asked is not None:
        return asked
    registered = session.execute(_registered_locale(account.id or 0)).scalar_one_or_none()
    return normalise_locale(registered or account.locale)


def to_read(row: InboxNotification, locale: Locale) -> NotificationRead:
    """An entry with its title and body in ``locale`` (older entries only have the language they were written in)."""
    read = NotificationRead.model_validate(row)
    text = (row.texts or {}).get(locale)
    if text is None:
        return read
    return read.model_copy(update={"title": text["title"], "body": text["body"]})


@dataclass(frozen=True)
class InboxState:
    """What an inbox poll needs before any entry is read: the reader's language, the validator and the counts."""

    locale: Locale
    etag: str
    total: int
    unread: int


def _inbox_validator(*, device_locale: bool) -> Subquery:
    """The inbox's counts on the recipient's index, with the device's locale beside them if asked."""
    columns: list[ColumnElement[Any]] = [
        func.count().label("entries"),
        func.max(col(InboxNotification.id)).label("last_id"),
        func.count(col(InboxNotification.read_at)).label("read"),
        func.max(col(InboxNotification.read_at)).label("last_read"),
    ]
    if device_locale:
        columns.append(_registered_locale(ACCOUNT_ID).scalar_subquery().label("device_locale"))
    return (
        sa_select(*columns)
        .where(col(InboxNotification.recipient_id) == ACCOUNT_ID)
        .subquery("inbox_validator")
    )


# Built once: with the device's locale when the request names no language, without when it does.
_POLL = joined_to_account(_inbox_validator(device_locale=True))
_POLL_IN_LANGUAGE = joined_to_account(_inbox_validator(device_locale=False))


def polled_inbox(
    session: Session,
    conn: HTTPConnection,
    claims: AccessClaims,
    *,
    unread_only: bool,
    limit: int,
    offset: int,
) -> tuple[Account, InboxState]:
    """The reader's account (active, in term: 401 otherwise) and the inbox's state, in one round trip.

    The validator changes when an entry arrives or is read, with the language and the page asked for; the
    counts are the page's ``total`` and ``unread``. An unchanged poll needs nothing more than this.
    """
    asked = explicit_locale(conn)
    account, (count, last_id, read_count, last_read, *device) = account_with(
        session, claims, _POLL if asked is None else _POLL_IN_LANGUAGE
    )
    locale = asked if asked is not None else normalise_locale(device[0] or account.locale)
    etag = make_etag(
        "inbox", account.id, count, last_id, read_count, last_read, locale, unread_only, limit, offset
    )
    unread = int(count) - int(read_count)
    return account, InboxState(
        locale=locale, etag=etag, total=unread if unread_only else int(count), unread=unread
    )
