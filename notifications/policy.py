"""When and whether to notify: quiet hours, mute preferences, dedupe keys, reminder thresholds, backoff.

Everything here is a pure function of its arguments (no clock, no I/O) so beat schedules and tasks can
call it with the time they were given and tests can pin every edge.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifications.templates import KINDS, spec_for

DEFAULT_TZ = "Asia/Shanghai"
QUIET_START = time(22, 0)
QUIET_END = time(8, 0)

# FCM asks for a first retry after at least a minute on QUOTA_EXCEEDED; other transient errors start lower.
QUOTA_BACKOFF_BASE_S = 60.0
TRANSIENT_BACKOFF_BASE_S = 10.0
MAX_BACKOFF_S = 3600.0
# A provider's Retry-After is believed up to a day; anything longer is a broken header, not a plan.
MAX_RETRY_AFTER_S = 24 * 3600.0


def resolve_zone(tz: str | ZoneInfo | None) -> ZoneInfo:
    """The recipient's zone; unknown or missing names fall back to Asia/Shanghai."""
    if isinstance(tz, ZoneInfo):
        return tz
    if tz:
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            # A bad zone in a profile must not stop a legally required notice; China is the safe default.
            pass
    return ZoneInfo(DEFAULT_TZ)


def release_time(now_utc: datetime, tz: str | ZoneInfo | None, urgent: bool) -> datetime:
    """When a push may go out: now, or 08:00 local if ``now_utc`` falls in 22:00–08:00 and it is not urgent."""
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    now_utc = now_utc.astimezone(UTC)
    if urgent:
        return now_utc
    zone = resolve_zone(tz)
    local = now_utc.astimezone(zone)
    if QUIET_END <= local.time() < QUIET_START:
        return now_utc
    release_day = local.date() + timedelta(days=1) if local.time() >= QUIET_START else local.date()
    return datetime.combine(release_day, QUIET_END, tzinfo=zone).astimezone(UTC)


def is_allowed(kind: str, muted_categories: Collection[str]) -> bool:
    """Whether a push of ``kind`` may go out given the muted categories; required notices ignore mutes."""
    # Mutes govern push only: the in-app inbox always receives every notification.
    spec = spec_for(kind)
    return not spec.mutable or spec.category not in muted_categories


def mutable_categories() -> frozenset[str]:
    """Categories a recipient may mute (those holding at least one mutable kind), for the settings UI."""
    return frozenset(spec.category for spec in KINDS.values() if spec.mutable)


def dedupe_key(event_id: str, recipient_ref: str, channel: str, *, device_ref: str | None = None) -> str:
    """A stable key for one side effect: this event, to this recipient, over this channel (and device)."""
    # device_ref separates the pushes to one recipient's several devices; hashing keeps personal data
    # out of logs and provider payloads.
    if not event_id or not recipient_ref or not channel:
        raise ValueError("event_id, recipient_ref and channel must be non-empty")
    # JSON framing keeps ("a:b", "c") and ("a", "b:c") apart.
    canonical = json.dumps(["v1", event_id, recipient_ref, channel, device_ref], ensure_ascii=False)
    return f"{channel}:{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


class DueThreshold(StrEnum):
    """A verification reminder step; each is sent at most once per instrument and due date."""

    DAYS_30 = "30d"
    DAYS_7 = "7d"
    DAYS_1 = "1d"
    OVERDUE = "overdue"

    @property
    def kind(self) -> str:
        """The message kind used for this step."""
        return "verification_overdue" if self is DueThreshold.OVERDUE else "verification_due"


_DUE_STEPS = ((1, DueThreshold.DAYS_1), (7, DueThreshold.DAYS_7), (30, DueThreshold.DAYS_30))


def due_thresholds(valid_until: date, today: date) -> DueThreshold | None:
    """The reminder step due today for a verification valid through ``valid_until`` (send via due_event_id)."""
    # The most urgent step reached wins, so a scan that missed days skips stale steps rather than
    # sending them late. The instrument is still valid on valid_until itself; overdue starts the day after.
    days_left = (valid_until - today).days
    if days_left < 0:
        return DueThreshold.OVERDUE
    for limit, threshold in _DUE_STEPS:
        if days_left <= limit:
            return threshold
    return None


def due_event_id(instrument_id: str, valid_until: date, threshold: DueThreshold) -> str:
    """Event id of one reminder step; a renewed verification (new ``valid_until``) starts afresh."""
    return f"verification:{instrument_id}:{valid_until.isoformat()}:{threshold.value}"


class InterviewReminder(StrEnum):
    """Reminders before an interview (约谈)."""

    HOURS_24 = "24h"
    HOURS_1 = "1h"

    @property
    def lead(self) -> timedelta:
        """How long before the interview this reminder goes out."""
        return timedelta(hours=24) if self is InterviewReminder.HOURS_24 else timedelta(hours=1)


def interview_reminders(scheduled_at: datetime, now: datetime) -> list[tuple[InterviewReminder, datetime]]:
    """The reminders still worth scheduling, with their send times (UTC), earliest first."""
    # Reminders whose time has passed are dropped, not sent late: a short-notice interview is covered
    # by its interview_scheduled notice.
    if scheduled_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    plan: list[tuple[InterviewReminder, datetime]] = []
    for reminder in (InterviewReminder.HOURS_24, InterviewReminder.HOURS_1):
        send_at = (scheduled_at - reminder.lead).astimezone(UTC)
        if send_at >= now:
            plan.append((reminder, send_at))
    return plan


def interview_event_id(interview_id: str, scheduled_at: datetime, reminder: InterviewReminder) -> str:
    """Event id of one interview reminder; rescheduling (new time) gives new reminders."""
    return f"interview:{interview_id}:{scheduled_at.astimezone(UTC).isoformat()}:{reminder.value}"


def retry_delay(attempt: int, *, retry_after_s: float | None, quota: bool, jitter_key: str) -> float:
    """Seconds to wait before the next try: the provider's Retry-After if given, else exponential backoff."""
    # Jitter (0–50 % on top) comes from jitter_key, not a random source, so retries of one burst spread
    # out while each message's delay stays reproducible.
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), MAX_BACKOFF_S)
    base = QUOTA_BACKOFF_BASE_S if quota else TRANSIENT_BACKOFF_BASE_S
    spread = int.from_bytes(hashlib.sha256(jitter_key.encode()).digest()[:2], "big") / 65536
    return min(base * 2.0 ** min(attempt, 16) * (1 + spread / 2), MAX_BACKOFF_S)


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delta-seconds or HTTP-date, capped at a day), or None."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)
