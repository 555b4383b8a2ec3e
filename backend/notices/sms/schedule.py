"""When a required notice to an operator falls back to SMS: at once without a device, else after working hours.

The fallback delay (``GONGPING_SMS_FALLBACK_HOURS``, 24 by default) runs only inside the working-hours window
(``GONGPING_SMS_WORKING_HOURS``, 08:00–18:00 bureau time) on working days of the State Council's calendar
(``backend.cases.deadlines``, 调休 included): a push sent on Friday at 17:00 is not followed by SMS over the
weekend, but after 24 such hours, on Wednesday at 11:00 (10-hour days). The SMS itself still waits out quiet
hours (22:00–08:00) like a push.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from backend.cases.deadlines import DEFAULT_CALENDAR, WorkingCalendar
from backend.config import get_settings
from backend.notices.sms.templates import sms_kind

_MAX_DAYS = 3660  # a window that never opens (no working day in ten years) is a configuration error


def add_working_hours(
    start: datetime,
    hours: float,
    *,
    window: tuple[time, time],
    zone: ZoneInfo,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
) -> datetime:
    """The instant ``hours`` of working time after ``start`` (aware, returned in UTC)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    opens, closes = window
    if closes <= opens:
        raise ValueError("the working-hours window must close after it opens")
    remaining = timedelta(hours=hours)
    local = start.astimezone(zone)
    day = local.date()
    for _ in range(_MAX_DAYS):
        if calendar.is_working_day(day):
            begin = datetime.combine(day, opens, tzinfo=zone)
            end = datetime.combine(day, closes, tzinfo=zone)
            cursor = max(begin, local)
            if cursor < end:
                if cursor + remaining <= end:
                    return (cursor + remaining).astimezone(UTC)
                remaining -= end - cursor
        day += timedelta(days=1)
    raise ValueError("no working hours found within ten years")


def fallback_at(now: datetime) -> datetime:
    """When an unread required push sent at ``now`` is followed by SMS."""
    settings = get_settings()
    return add_working_hours(
        now,
        settings.sms_fallback_hours,
        window=settings.sms_working_hours,
        zone=ZoneInfo(settings.timezone),
    )


@dataclass(frozen=True, slots=True)
class Recipient:
    """One inbox entry of a notice: who, which operator they act for, and whether a push goes to them."""

    inbox_key: str
    account_id: int
    operator_id: int | None
    pushed: bool


def due_times(kind: str, recipients: Sequence[Recipient], now: datetime) -> dict[str, datetime]:
    """The SMS due time of one notice, set on one inbox entry per operator (the lowest account id).

    An operator none of whose users gets a push is due at once; otherwise after the working-hours delay.
    Nothing for kinds that never go by SMS, for people who are not an operator's users, or with SMS off.
    """
    if not get_settings().sms_enabled or not sms_kind(kind):
        return {}
    by_operator: dict[int, list[Recipient]] = {}
    for recipient in recipients:
        if recipient.operator_id is not None:
            by_operator.setdefault(recipient.operator_id, []).append(recipient)
    due: dict[str, datetime] = {}
    later: datetime | None = None
    for people in by_operator.values():
        lead = min(people, key=lambda r: r.account_id)
        if any(r.pushed for r in people):
            later = later or fallback_at(now)
            due[lead.inbox_key] = later
        else:
            due[lead.inbox_key] = now
    return due
