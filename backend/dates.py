"""Calendar dates: every date a person reads or the law counts is a day in the bureau's time zone.

An instant is stored in UTC; the day it falls on is the bureau's (``GONGPING_TIMEZONE``, Asia/Shanghai by
default), never the server's or UTC's: at 23:30 UTC it is already tomorrow in Beijing, and a complaint
received then, the notice acknowledging it and a record dated by it must all say so. :func:`bureau_date` is the
one function that turns an instant (or now, from :func:`backend.db.utcnow`) into such a day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from backend.config import get_settings
from backend.db import utcnow


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def bureau_zone() -> ZoneInfo:
    """The bureau's time zone (``GONGPING_TIMEZONE``)."""
    return _zone(get_settings().timezone)


def bureau_date(at: datetime | None = None) -> date:
    """The bureau-local calendar date of an instant (naive values are UTC, as SQLite hands them back), or today."""
    instant = utcnow() if at is None else at
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(bureau_zone()).date()
