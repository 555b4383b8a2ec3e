"""Working-day deadlines on the mainland calendar with 调休, the weekends-only fallback, specs as data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.cases.deadlines import (
    COMPLAINT_ACCEPTANCE,
    DEADLINE_SPECS,
    MEDIATION_END,
    MEDIATION_TERMINATION_NOTICE,
    PACKAGE_FIRST_YEAR,
    PACKAGE_LAST_YEAR,
    TIP_OFF_CASE_FILING,
    StartEvent,
    WorkingCalendar,
    YearSchedule,
    add_working_days,
    compute_deadline,
    paused_due_date,
    working_days_between,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAL = WorkingCalendar()


def shanghai(y: int, m: int, d: int, hh: int = 10) -> datetime:
    """A moment on a Shanghai calendar day."""
    return datetime(y, m, d, hh, tzinfo=SHANGHAI)


def test_package_covers_the_years_we_test_exactly() -> None:
    assert PACKAGE_FIRST_YEAR <= 2025 and PACKAGE_LAST_YEAR >= 2026


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 1, 26), True),  # Sunday made a working day for Spring Festival
        (date(2025, 1, 27), True),
        (date(2025, 1, 28), False),  # Spring Festival holiday 1/28-2/4
        (date(2025, 2, 4), False),
        (date(2025, 2, 8), True),  # Saturday made a working day
        (date(2025, 2, 9), False),
        (date(2025, 9, 28), True),  # Sunday made a working day for National Day
        (date(2025, 10, 1), False),
        (date(2025, 10, 8), False),
        (date(2025, 10, 11), True),  # Saturday made a working day
        (date(2025, 10, 12), False),
        (date(2026, 2, 14), True),  # Saturday made a working day for Spring Festival 2026
        (date(2026, 2, 16), False),
    ],
    ids=str,
)
def test_adjusted_working_days(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working
    assert CAL.is_exact(day)


def test_spring_festival_2025_acceptance_deadline() -> None:
    # Fri 1/24 -> Sun 1/26 (1), Mon 1/27 (2), holiday, 2/5 (3), 2/6 (4), 2/7 (5), Sat 2/8 (6), 2/10 (7).
    assert add_working_days(date(2025, 1, 24), 7) == date(2025, 2, 10)
    deadline = compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2025, 1, 24))
    assert deadline.first_counted_day == date(2025, 1, 26)
    assert deadline.due_date == date(2025, 2, 10)
    assert deadline.due_before == datetime(2025, 2, 11, tzinfo=SHANGHAI)
    assert deadline.calendar_exact and not deadline.basis_superseded


def test_national_day_2025_acceptance_deadline() -> None:
    # Fri 9/26 -> Sun 9/28 (1), 9/29 (2), 9/30 (3), holiday, 10/9 (4), 10/10 (5), Sat 10/11 (6), 10/13 (7).
    assert compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2025, 9, 26)).due_date == date(2025, 10, 13)


def test_receipt_on_a_holiday_counts_from_the_next_working_day() -> None:
    on_holiday = compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2025, 10, 3))
    before_holiday = compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2025, 9, 30))
    assert on_holiday.first_counted_day == before_holiday.first_counted_day == date(2025, 10, 9)
    assert on_holiday.due_date == before_holiday.due_date == date(2025, 10, 16)


def test_receipt_on_a_weekend_counts_from_the_next_working_day() -> None:
    # Sat 2025-03-15 and Fri 2025-03-14 both count from Mon 3/17.
    saturday = compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2025, 3, 15))
    assert saturday.first_counted_day == date(2025, 3, 17)
    assert saturday.due_date == compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2025, 3, 14)).due_date


def test_receipt_date_is_taken_in_the_deadline_time_zone() -> None:
    # 16:30 UTC on Thursday is 00:30 on Friday in Shanghai: one day later.
    late_utc = compute_deadline(COMPLAINT_ACCEPTANCE, datetime(2025, 3, 13, 16, 30, tzinfo=UTC))
    early_utc = compute_deadline(COMPLAINT_ACCEPTANCE, datetime(2025, 3, 13, 15, 59, tzinfo=UTC))
    assert (late_utc.start_date, late_utc.due_date) == (date(2025, 3, 14), date(2025, 3, 25))
    assert (early_utc.start_date, early_utc.due_date) == (date(2025, 3, 13), date(2025, 3, 24))
    # The Saturday 04:00 Shanghai receipt counts from Sunday 1/26, a 调休 working day.
    weekend = compute_deadline(COMPLAINT_ACCEPTANCE, datetime(2025, 1, 24, 20, tzinfo=UTC))
    assert (weekend.start_date, weekend.first_counted_day) == (date(2025, 1, 25), date(2025, 1, 26))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_deadline(COMPLAINT_ACCEPTANCE, datetime(2025, 3, 13, 10))


def test_mediation_deadline_across_national_day() -> None:
    deadline = compute_deadline(MEDIATION_END, shanghai(2025, 9, 1))
    assert deadline.due_date == date(2025, 11, 7)
    assert working_days_between(date(2025, 9, 1), date(2025, 11, 7)) == 45


def test_tip_off_deadline_and_its_extension() -> None:
    normal = compute_deadline(TIP_OFF_CASE_FILING, shanghai(2025, 9, 22))
    extended = compute_deadline(TIP_OFF_CASE_FILING, shanghai(2025, 9, 22), extended=True)
    assert (normal.working_days, extended.working_days) == (15, 30)
    assert working_days_between(normal.due_date, extended.due_date) == 15
    assert extended.extended and not normal.extended
    with pytest.raises(ValueError, match="cannot be extended"):
        compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2025, 9, 22), extended=True)


def test_paused_days_are_not_counted_and_only_a_pausable_deadline_pauses() -> None:
    # Received Mon 22 Sep 2025: testing from Wed 24 to Fri 26 Sep leaves three working days out.
    normal = compute_deadline(TIP_OFF_CASE_FILING, shanghai(2025, 9, 22))
    pauses = [(date(2025, 9, 24), date(2025, 9, 26))]
    paused = compute_deadline(TIP_OFF_CASE_FILING, shanghai(2025, 9, 22), pauses=pauses)
    assert working_days_between(normal.due_date, paused.due_date) == 3
    assert paused_due_date(date(2025, 9, 22), 15, []) == normal.due_date
    with pytest.raises(ValueError, match="cannot be paused"):
        compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2025, 9, 22), pauses=pauses)


def test_specs_are_data_with_legal_basis() -> None:
    assert {k: (s.working_days, s.starts_from) for k, s in DEADLINE_SPECS.items()} == {
        "complaint_acceptance_decision": (7, StartEvent.RECEIPT),
        "complaint_mediation_end": (45, StartEvent.ACCEPTANCE),
        "mediation_termination_notice": (7, StartEvent.MEDIATION_TERMINATION),
        "tip_off_case_filing_decision": (15, StartEvent.RECEIPT),
        "correction_decision": (15, StartEvent.RECEIPT),
    }
    for spec in (COMPLAINT_ACCEPTANCE, MEDIATION_END, MEDIATION_TERMINATION_NOTICE):
        assert "第20号" in spec.legal_basis_zh and "第121号" in spec.legal_basis_zh
        assert "Order No. 20" in spec.legal_basis_en and "Order No. 121" in spec.legal_basis_en
    assert (
        "第十八条" in TIP_OFF_CASE_FILING.legal_basis_zh and "Art. 18" in TIP_OFF_CASE_FILING.legal_basis_en
    )


def test_figures_from_a_replaced_order_are_flagged() -> None:
    assert not compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2026, 4, 14)).basis_superseded
    assert compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(2026, 4, 15)).basis_superseded
    assert not compute_deadline(TIP_OFF_CASE_FILING, shanghai(2026, 4, 15)).basis_superseded


# --- years the package does not cover ------------------------------------------------------------------

UNCOVERED = PACKAGE_LAST_YEAR + 1


def weekdays_after(start: date, n: int) -> date:
    """The n-th Monday-to-Friday day after start: the documented fallback."""
    day = start
    while n:
        day += timedelta(days=1)
        n -= day.weekday() < 5
    return day


def test_uncovered_years_fall_back_to_weekends_only_and_say_so() -> None:
    start = date(UNCOVERED, 3, 2)
    assert not CAL.is_exact(start)
    assert add_working_days(start, 10) == weekdays_after(start, 10)
    deadline = compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(UNCOVERED, 3, 2))
    assert deadline.due_date == weekdays_after(start, 7)
    assert not deadline.calendar_exact
    # New Year's Day is a holiday the fallback does not know: it still counts when it is a weekday.
    assert CAL.is_working_day(date(UNCOVERED, 1, 1)) is (date(UNCOVERED, 1, 1).weekday() < 5)


def test_deadline_running_into_an_uncovered_year_is_flagged() -> None:
    inside = compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(PACKAGE_LAST_YEAR, 12, 1))
    crossing = compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(PACKAGE_LAST_YEAR, 12, 28))
    assert inside.calendar_exact
    assert crossing.due_date.year == UNCOVERED and not crossing.calendar_exact


def test_years_before_the_package_fall_back_too() -> None:
    assert not CAL.is_exact(date(PACKAGE_FIRST_YEAR - 1, 6, 1))
    assert add_working_days(date(PACKAGE_FIRST_YEAR - 1, 6, 1), 3) == weekdays_after(
        date(PACKAGE_FIRST_YEAR - 1, 6, 1), 3
    )


def test_bureau_supplied_schedule_makes_a_year_exact() -> None:
    first_saturday = next(date(UNCOVERED, 2, d) for d in range(1, 8) if date(UNCOVERED, 2, d).weekday() == 5)
    first_monday = first_saturday + timedelta(days=2)
    schedule = YearSchedule(holidays=frozenset({first_monday}), working_days=frozenset({first_saturday}))
    calendar = WorkingCalendar(supplements={UNCOVERED: schedule})
    assert calendar.is_exact(first_saturday)
    assert calendar.is_working_day(first_saturday) and not calendar.is_working_day(first_monday)
    friday = first_saturday - timedelta(days=1)
    # Sat (1), Mon is a holiday, Tue (2).
    assert add_working_days(friday, 2, calendar) == first_monday + timedelta(days=1)
    deadline = compute_deadline(COMPLAINT_ACCEPTANCE, shanghai(UNCOVERED, 2, 10), calendar=calendar)
    assert deadline.calendar_exact


# --- arithmetic properties ----------------------------------------------------------------------------------

span_dates = st.dates(min_value=date(PACKAGE_LAST_YEAR - 2, 1, 1), max_value=date(UNCOVERED, 12, 31))


def test_zero_and_negative_counts() -> None:
    assert add_working_days(date(2025, 10, 3), 0) == date(2025, 10, 3)
    with pytest.raises(ValueError, match="negative"):
        add_working_days(date(2025, 10, 3), -1)


@settings(deadline=None)
@given(span_dates, st.integers(0, 80))
def test_working_days_between_inverts_add_working_days(start: date, n: int) -> None:
    due = add_working_days(start, n)
    assert working_days_between(start, due) == n
    assert working_days_between(due, start) == -n
    if n:
        assert CAL.is_working_day(due)
        assert add_working_days(start, n - 1) < due


@settings(deadline=None)
@given(span_dates, span_dates)
def test_working_days_between_is_additive(a: date, b: date) -> None:
    middle = min(a, b) + (max(a, b) - min(a, b)) / 2
    assert working_days_between(a, b) == working_days_between(a, middle) + working_days_between(middle, b)


def test_calendar_matches_the_package_on_every_covered_day() -> None:
    day = date(PACKAGE_FIRST_YEAR, 1, 1)
    while day.year <= PACKAGE_LAST_YEAR:
        assert CAL.is_working_day(day) is chinese_calendar.is_workday(day), day
        day += timedelta(days=1)
