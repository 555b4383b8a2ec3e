"""Quiet hours, mute preferences, dedupe keys, reminder thresholds and retry delays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifications.policy import (
    DueThreshold,
    InterviewReminder,
    dedupe_key,
    due_event_id,
    due_thresholds,
    interview_event_id,
    interview_reminders,
    is_allowed,
    mutable_categories,
    release_time,
    retry_after_seconds,
    retry_delay,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.mark.parametrize(
    ("local_now", "expected_local"),
    [
        ((2026, 5, 1, 21, 59), (2026, 5, 1, 21, 59)),
        ((2026, 5, 1, 22, 0), (2026, 5, 2, 8, 0)),
        ((2026, 5, 1, 23, 30), (2026, 5, 2, 8, 0)),
        ((2026, 5, 2, 0, 0), (2026, 5, 2, 8, 0)),
        ((2026, 5, 2, 7, 59), (2026, 5, 2, 8, 0)),
        ((2026, 5, 2, 8, 0), (2026, 5, 2, 8, 0)),
        ((2026, 12, 31, 23, 0), (2027, 1, 1, 8, 0)),
    ],
)
def test_quiet_hours_hold_non_urgent_pushes_until_8_local(
    local_now: tuple[int, int, int, int, int], expected_local: tuple[int, int, int, int, int]
) -> None:
    released = release_time(shanghai(*local_now), "Asia/Shanghai", urgent=False)

    assert released == shanghai(*expected_local)
    assert released.tzinfo == UTC


def test_quiet_hours_cross_the_utc_date_line() -> None:
    # 15:30 UTC on 1 May is 23:30 in Shanghai: held to 08:00 on 2 May = 00:00 UTC on 2 May.
    assert release_time(datetime(2026, 5, 1, 15, 30, tzinfo=UTC), None, urgent=False) == datetime(
        2026, 5, 2, 0, 0, tzinfo=UTC
    )


def test_urgent_pushes_ignore_quiet_hours() -> None:
    now = shanghai(2026, 5, 1, 23, 30)

    assert release_time(now, "Asia/Shanghai", urgent=True) == now


def test_quiet_hours_follow_the_recipients_time_zone() -> None:
    now = datetime(2026, 5, 1, 14, 0, tzinfo=UTC)  # 22:00 Shanghai, 15:00 Berlin, 10:00 New York

    assert release_time(now, "Asia/Shanghai", urgent=False) == datetime(2026, 5, 2, 0, 0, tzinfo=UTC)
    assert release_time(now, "Europe/Berlin", urgent=False) == now
    assert release_time(datetime(2026, 5, 2, 3, 0, tzinfo=UTC), "America/New_York", urgent=False) == datetime(
        2026, 5, 2, 12, 0, tzinfo=UTC
    )


def test_quiet_hours_across_a_dst_change() -> None:
    # New York springs forward on 8 March 2026: 01:00 EST is held to 08:00 EDT (12:00 UTC).
    now = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)

    assert release_time(now, "America/New_York", urgent=False) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_unknown_time_zone_falls_back_to_shanghai() -> None:
    now = shanghai(2026, 5, 1, 23, 0)

    assert release_time(now, "Mars/Olympus_Mons", urgent=False) == shanghai(2026, 5, 2, 8, 0)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        release_time(datetime(2026, 5, 1, 12, 0), None, urgent=False)


def test_muted_category_blocks_optional_pushes() -> None:
    assert not is_allowed("verification_due", {"verification"})
    assert is_allowed("verification_due", {"complaint"})
    assert is_allowed("verification_due", set())


@pytest.mark.parametrize(
    "kind", ["interview_scheduled", "interview_reminder", "finding_against_operator", "verification_overdue"]
)
def test_required_notices_cannot_be_muted(kind: str) -> None:
    assert is_allowed(kind, {"enforcement", "verification", "rating", "correction"})


def test_only_categories_with_optional_kinds_are_mutable() -> None:
    categories = mutable_categories()

    assert {"verification", "complaint", "supervision", "case_work"} <= categories
    assert "enforcement" not in categories


def test_dedupe_key_is_stable() -> None:
    key = dedupe_key("verification:ins-1:2026-12-31:7d", "operator-1", "push", device_ref="dev-a")

    assert key == dedupe_key("verification:ins-1:2026-12-31:7d", "operator-1", "push", device_ref="dev-a")
    # Pinned: a change of scheme would resend everything still in flight.
    assert key == "push:82407bff3bd24597c1825f99af1195a349cb88ca"


def test_dedupe_key_separates_every_component() -> None:
    base = dedupe_key("e1", "r1", "push")
    variants = {
        dedupe_key("e2", "r1", "push"),
        dedupe_key("e1", "r2", "push"),
        dedupe_key("e1", "r1", "inbox"),
        dedupe_key("e1", "r1", "push", device_ref="d1"),
    }

    assert base not in variants and len(variants) == 4
    assert dedupe_key("a:b", "c", "push") != dedupe_key("a", "b:c", "push")
    assert "r1" not in base


def test_dedupe_key_needs_all_parts() -> None:
    with pytest.raises(ValueError):
        dedupe_key("", "r1", "push")


@pytest.mark.parametrize(
    ("days_left", "threshold"),
    [
        (45, None),
        (31, None),
        (30, DueThreshold.DAYS_30),
        (8, DueThreshold.DAYS_30),
        (7, DueThreshold.DAYS_7),
        (2, DueThreshold.DAYS_7),
        (1, DueThreshold.DAYS_1),
        (0, DueThreshold.DAYS_1),
        (-1, DueThreshold.OVERDUE),
        (-400, DueThreshold.OVERDUE),
    ],
)
def test_due_thresholds(days_left: int, threshold: DueThreshold | None) -> None:
    valid_until = date(2026, 12, 31)

    assert due_thresholds(valid_until, valid_until - timedelta(days=days_left)) == threshold


def test_a_daily_scan_sends_each_threshold_once() -> None:
    valid_until = date(2026, 3, 1)
    events: list[str] = []
    for offset in range(-40, 10):
        today = valid_until + timedelta(days=offset)
        threshold = due_thresholds(valid_until, today)
        if threshold is not None:
            event = due_event_id("ins-1", valid_until, threshold)
            if event not in events:
                events.append(event)

    assert events == [
        "verification:ins-1:2026-03-01:30d",
        "verification:ins-1:2026-03-01:7d",
        "verification:ins-1:2026-03-01:1d",
        "verification:ins-1:2026-03-01:overdue",
    ]


def test_a_missed_scan_skips_stale_thresholds() -> None:
    valid_until = date(2026, 3, 1)

    # Down from 31 days out until 5 days out: the 30-day reminder is no longer worth sending.
    assert due_thresholds(valid_until, valid_until - timedelta(days=5)) is DueThreshold.DAYS_7
    assert DueThreshold.DAYS_7.kind == "verification_due"
    assert DueThreshold.OVERDUE.kind == "verification_overdue"


def test_renewal_starts_a_new_reminder_series() -> None:
    assert due_event_id("ins-1", date(2026, 3, 1), DueThreshold.DAYS_7) != due_event_id(
        "ins-1", date(2027, 3, 1), DueThreshold.DAYS_7
    )


def test_interview_reminders_24h_and_1h_before() -> None:
    scheduled = shanghai(2026, 12, 3, 9, 30)

    plan = interview_reminders(scheduled, now=shanghai(2026, 12, 1, 10, 0))

    assert plan == [
        (InterviewReminder.HOURS_24, shanghai(2026, 12, 2, 9, 30)),
        (InterviewReminder.HOURS_1, shanghai(2026, 12, 3, 8, 30)),
    ]


def test_short_notice_interview_skips_passed_reminders() -> None:
    scheduled = shanghai(2026, 12, 3, 15, 0)

    assert interview_reminders(scheduled, now=shanghai(2026, 12, 3, 9, 0)) == [
        (InterviewReminder.HOURS_1, shanghai(2026, 12, 3, 14, 0))
    ]
    assert interview_reminders(scheduled, now=shanghai(2026, 12, 3, 14, 30)) == []


def test_rescheduled_interview_gets_new_reminder_events() -> None:
    first = interview_event_id("iv-1", shanghai(2026, 12, 3, 9, 30), InterviewReminder.HOURS_1)
    moved = interview_event_id("iv-1", shanghai(2026, 12, 4, 9, 30), InterviewReminder.HOURS_1)

    assert first != moved


def test_interview_reminders_need_aware_datetimes() -> None:
    with pytest.raises(ValueError):
        interview_reminders(datetime(2026, 12, 3, 9, 30), datetime(2026, 12, 1, tzinfo=UTC))


def test_retry_after_reads_seconds_or_a_date_and_caps_at_a_day() -> None:
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert retry_after_seconds(" 7 ", now) == 7.0
    assert retry_after_seconds("Mon, 02 Mar 2026 08:02:00 GMT", now) == 120.0
    assert retry_after_seconds("Mon, 02 Mar 2026 07:00:00 GMT", now) == 0.0  # already past
    assert retry_after_seconds(str(10**9), now) == 24 * 3600.0
    assert retry_after_seconds("", now) is None
    assert retry_after_seconds("soon", now) is None


def test_retry_delay_prefers_retry_after_and_backs_off_otherwise() -> None:
    assert retry_delay(0, retry_after_s=7.0, quota=False, jitter_key="k") == 7.0
    assert retry_delay(0, retry_after_s=10**9, quota=False, jitter_key="k") == 3600.0
    delays = [retry_delay(n, retry_after_s=None, quota=False, jitter_key="k") for n in range(4)]
    assert all(10 * 2**n <= d <= 15 * 2**n for n, d in enumerate(delays))
    assert delays == [retry_delay(n, retry_after_s=None, quota=False, jitter_key="k") for n in range(4)]
    assert 60 <= retry_delay(0, retry_after_s=None, quota=True, jitter_key="k") <= 90
    assert retry_delay(30, retry_after_s=None, quota=True, jitter_key="k") == 3600.0
