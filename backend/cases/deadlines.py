"""Statutory case deadlines in working days on the mainland China calendar, adjusted days (调休) included."""

# Counting convention (Civil Code Art. 201, 203): the day of the starting event (receipt, acceptance…) is not
# counted; day 1 is the first working day after it, so a receipt on a Saturday or a holiday counts from the
# next working day, exactly like a receipt on the working day before. The period ends at 24:00 of the last day.
#
# Calendar source: the chinesecalendar package, whose data stops at the last year the State Council has
# published. Years outside its data (and not supplied by a bureau through YearSchedule) fall back to "Monday
# to Friday are working days", and every result touching them carries calendar_exact=False, so staff see
# that a holiday or 调休 day may move the date; nothing crashes.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from chinese_calendar import constants as _cc_constants

_ONE_DAY: Final = timedelta(days=1)
DEFAULT_TZ: Final = "Asia/Shanghai"

# The package validates against exactly this range (utils._validate_date): read it, never hard-code it.
PACKAGE_FIRST_YEAR: Final[int] = min(_cc_constants.holidays).year
PACKAGE_LAST_YEAR: Final[int] = max(_cc_constants.holidays).year


@dataclass(frozen=True, slots=True)
class YearSchedule:
    """The official schedule of a year the package lacks: its holidays and its 调休 working weekend days."""

    holidays: frozenset[date]
    working_days: frozenset[date]


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """Working-day calendar: chinesecalendar data plus years a bureau supplies ahead of a package update."""

    supplements: Mapping[int, YearSchedule] = field(default_factory=dict)

    def is_exact(self, day: date) -> bool:
        """Whether the official schedule of ``day``'s year is known (else weekends-only is assumed)."""
        return PACKAGE_FIRST_YEAR <= day.year <= PACKAGE_LAST_YEAR or day.year in self.supplements

    def covers(self, first: date, last: date) -> bool:
        """Whether every year from ``first`` to ``last`` (either order) has a known schedule."""
        low, high = sorted((first.year, last.year))
        return all(self.is_exact(date(year, 1, 1)) for year in range(low, high + 1))

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day; weekdays only for years without a known schedule."""
        schedule = self.supplements.get(day.year)
        if schedule is not None:
            if day in schedule.working_days:
                return True
            return day.weekday() < 5 and day not in schedule.holidays
        if PACKAGE_FIRST_YEAR <= day.year <= PACKAGE_LAST_YEAR:
            # chinese_calendar.is_workday's own rule, minus its per-call range check (a min/max over every
            # holiday), which made long working-day counts slow; a test pins the two to each other.
            return day in _cc_constants.workdays or (day.weekday() < 5 and day not in _cc_constants.holidays)
        return day.weekday() < 5


DEFAULT_CALENDAR: Final[WorkingCalendar] = WorkingCalendar()


def add_working_days(start: date, n: int, calendar: WorkingCalendar = DEFAULT_CALENDAR) -> date:
    """The ``n``-th working day after ``start`` (``start`` itself never counts); ``start`` when n is 0."""
    if n < 0:
        raise ValueError("工作日数不能为负 / the number of working days must not be negative")
    day = start
    remaining = n
    while remaining:
        day += _ONE_DAY
        if calendar.is_working_day(day):
            remaining -= 1
    return day


def working_days_between(a: date, b: date, calendar: WorkingCalendar = DEFAULT_CALENDAR) -> int:
    """Working days in (a, b]; negative when b is before a, so add_working_days(a, n) is its inverse."""
    if b < a:
        return -working_days_between(b, a, calendar)
    count = 0
    day = a
    while day < b:
        day += _ONE_DAY
        if calendar.is_working_day(day):
            count += 1
    return count


class StartEvent(StrEnum):
    """The event a deadline runs from."""

    RECEIPT = "receipt"
    ACCEPTANCE = "acceptance"
    MEDIATION_TERMINATION = "mediation_termination"


@dataclass(frozen=True, slots=True)
class DeadlineSpec:
    """A statutory deadline as data, with its legal basis so a bureau can update it when the law changes."""

    key: str
    working_days: int
    starts_from: StartEvent
    legal_basis_zh: str
    legal_basis_en: str
    # Working days a bureau head may add (e.g. Art. 18 of the penalty procedure rules); 0 = not extendable.
    extension_working_days: int = 0
    # Last day the cited instrument was in force; events after it get basis_superseded=True.
    basis_in_force_until: date | None = None
    # Whether testing, inspection, quarantine or appraisal time is not counted (staff record it as a pause).
    pausable: bool = False


# SAMR Order No. 20 (2019) was replaced by Order No. 121 (published 2025-12-30, in force 2026-04-15), which
# amended, among other things, the mediation period. Order 121's text could not be confirmed from any source
# available to the project, so the figures below stay Order 20's, flagged superseded; a deployment
# (GONGPING_DEADLINE_WORKING_DAYS) or a bureau (``deadline_rule``, see ``figures``) sets the confirmed ones.
ORDER_20_LAST_DAY: Final = date(2026, 4, 14)
_ORDER_20_ZH: Final = "《市场监督管理投诉举报处理暂行办法》（国家市场监督管理总局令第20号，2019年）"
_ORDER_20_EN: Final = (
    "Interim Measures for Handling Market Regulation Complaints and Tip-offs (SAMR Order No. 20, 2019)"
)
_SUPERSEDED_ZH: Final = (
    "；自2026年4月15日起由《市场监督管理投诉举报处理办法》（国家市场监督管理总局令第121号）取代，"
    "该令修改了调解期限等条款，本期限须按新令条文核对后更新"
)
_SUPERSEDED_EN: Final = (
    "; replaced from 2026-04-15 by the Measures for Handling Market Regulation Complaints and Tip-offs "
    "(SAMR Order No. 121), which amended the mediation period among others: confirm this figure against "
    "Order 121 and update it"
)

COMPLAINT_ACCEPTANCE: Final = DeadlineSpec(
    key="complaint_acceptance_decision",
    working_days=7,
    starts_from=StartEvent.RECEIPT,
    legal_basis_zh=f"{_ORDER_20_ZH}第十四条：自收到投诉之日起七个工作日内作出受理或者不予受理的决定{_SUPERSEDED_ZH}。",
    legal_basis_en=(
        f"{_ORDER_20_EN}, Art. 14: decide on acceptance within 7 working days of receipt{_SUPERSEDED_EN}."
    ),
    basis_in_force_until=ORDER_20_LAST_DAY,
)
MEDIATION_END: Final = DeadlineSpec(
    key="complaint_mediation_end",
    working_days=45,
    starts_from=StartEvent.ACCEPTANCE,
    legal_basis_zh=(
        f"{_ORDER_20_ZH}第二十一条：自投诉受理之日起四十五个工作日内未能达成调解协议的，终止调解{_SUPERSEDED_ZH}。"
    ),
    legal_basis_en=(
        f"{_ORDER_20_EN}, Art. 21: mediation ends when no agreement is reached within 45 working days of "
        f"acceptance{_SUPERSEDED_EN}."
    ),
    basis_in_force_until=ORDER_20_LAST_DAY,
)
MEDIATION_TERMINATION_NOTICE: Final = DeadlineSpec(
    key="mediation_termination_notice",
    working_days=7,
    starts_from=StartEvent.MEDIATION_TERMINATION,
    legal_basis_zh=f"{_ORDER_20_ZH}第二十一条：自作出终止调解决定之日起七个工作日内告知投诉人和被投诉人{_SUPERSEDED_ZH}。",
    legal_basis_en=(
        f"{_ORDER_20_EN}, Art. 21: inform both parties within 7 working days of the decision to end "
        f"mediation{_SUPERSEDED_EN}."
    ),
    basis_in_force_until=ORDER_20_LAST_DAY,
)
TIP_OFF_CASE_FILING: Final = DeadlineSpec(
    key="tip_off_case_filing_decision",
    working_days=15,
    starts_from=StartEvent.RECEIPT,
    legal_basis_zh=(
        "《市场监督管理行政处罚程序规定》第十八条：自收到材料之日起十五个工作日内予以核查，由负责人决定是否立案；"
        "特殊情况下经负责人批准可延长十五个工作日；检测、检验、检疫、鉴定等所需时间不计入。"
        f"举报依{_ORDER_20_ZH}第三十一条按行政处罚有关规定处理（该办法已由总局令第121号取代）。"
    ),
    legal_basis_en=(
        "Rules on Administrative Penalty Procedures for Market Regulation, Art. 18: verify a tip-off and "
        "decide whether to open a case within 15 working days of receipt; the bureau head may extend by 15 "
        "working days; testing, inspection, quarantine and appraisal time is not counted. Tip-offs are "
        f"handled under those rules by Art. 31 of the {_ORDER_20_EN} (since replaced by SAMR Order No. 121)."
    ),
    extension_working_days=15,
    pausable=True,
)
# The guideline says a record found inaccurate "shall be corrected after verification under the statutory
# procedure" but sets no period; a bureau rule has to. 15 working days matches the verification period the
# penalty procedure rules give a bureau for a tip-off, the closest statutory analogue.
CORRECTION_DECISION: Final = DeadlineSpec(
    key="correction_decision",
    working_days=15,
    starts_from=StartEvent.RECEIPT,
    legal_basis_zh=(
        "《服务业诚信计量监督管理制度建设指南》第二十二条：经营者认为其诚信计量信息不准确的，可以申请变更或撤销，"
        "按法定程序核实后应当予以更正；该条未规定办理期限。本期限为本局自定规则，"
        "参照《市场监督管理行政处罚程序规定》第十八条十五个工作日的核查期限设定，可由各局调整。"
    ),
    legal_basis_en=(
        "Guideline Art. 22: an operator may ask for inaccurate integrity information to be changed or revoked, "
        "and it shall be corrected after verification under the statutory procedure; the article sets no "
        "period. This is the bureau's own rule, set by analogy with the 15-working-day verification period of "
        "Art. 18 of the Rules on Administrative Penalty Procedures for Market Regulation; bureaus may change it."
    ),
)

DEADLINE_SPECS: Final[Mapping[str, DeadlineSpec]] = {
    spec.key: spec
    for spec in (
        COMPLAINT_ACCEPTANCE,
        MEDIATION_END,
        MEDIATION_TERMINATION_NOTICE,
        TIP_OFF_CASE_FILING,
        CORRECTION_DECISION,
    )
}


def with_figures(
    spec: DeadlineSpec,
    *,
    working_days: int,
    extension_working_days: int,
    legal_basis_zh: str,
    legal_basis_en: str,
) -> DeadlineSpec:
    """``spec`` with figures and a basis set by configuration; a configured figure is current (never superseded)."""
    if working_days < 1 or extension_working_days < 0:
        raise ValueError("期限须至少一个工作日 / a deadline needs at least one working day")
    return replace(
        spec,
        working_days=working_days,
        extension_working_days=extension_working_days,
        legal_basis_zh=legal_basis_zh,
        legal_basis_en=legal_basis_en,
        basis_in_force_until=None,
    )


def paused_due_date(
    start: date,
    n: int,
    pauses: Sequence[tuple[date, date]],
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
) -> date:
    """The ``n``-th working day after ``start`` not inside any pause (first and last day, inclusive)."""
    if n < 0:
        raise ValueError("工作日数不能为负 / the number of working days must not be negative")
    day = start
    remaining = n
    while remaining:
        day += _ONE_DAY
        if calendar.is_working_day(day) and not any(a <= day <= b for a, b in pauses):
            remaining -= 1
    return day


@dataclass(frozen=True, slots=True)
class Deadline:
    """A computed deadline: the local dates, the exclusive end instant and how far to trust it."""

    spec: DeadlineSpec
    start_date: date
    first_counted_day: date
    due_date: date
    # 24:00 of the due date in the deadline's time zone (Civil Code Art. 203); overdue when now >= due_before.
    due_before: datetime
    working_days: int
    extended: bool
    calendar_exact: bool
    basis_superseded: bool


def compute_deadline(
    spec: DeadlineSpec,
    start_datetime: datetime,
    tz: str = DEFAULT_TZ,
    *,
    extended: bool = False,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    pauses: Sequence[tuple[date, date]] = (),
) -> Deadline:
    """The deadline of ``spec`` for an event at ``start_datetime`` (timezone-aware), dated in ``tz``;
    working days inside ``pauses`` (testing or appraisal time of a pausable deadline) are not counted."""
    if start_datetime.tzinfo is None or start_datetime.utcoffset() is None:
        raise ValueError("起始时间必须带时区 / start_datetime must be timezone-aware")
    if extended and spec.extension_working_days == 0:
        raise ValueError(f"期限 {spec.key} 不可延长 / deadline {spec.key} cannot be extended")
    zone = ZoneInfo(tz)
    start_day = start_datetime.astimezone(zone).date()
    n = spec.working_days + (spec.extension_working_days if extended else 0)
    if pauses and not spec.pausable:
        raise ValueError(f"期限 {spec.key} 不可中止计算 / deadline {spec.key} cannot be paused")
    due = (
        paused_due_date(start_day, n, pauses, calendar)
        if pauses
        else add_working_days(start_day, n, calendar)
    )
    return Deadline(
        spec=spec,
        start_date=start_day,
        first_counted_day=add_working_days(start_day, 1, calendar),
        due_date=due,
        due_before=datetime.combine(due + _ONE_DAY, time(0), tzinfo=zone),
        working_days=n,
        extended=extended,
        calendar_exact=calendar.covers(start_day, due),
        basis_superseded=spec.basis_in_force_until is not None and start_day > spec.basis_in_force_until,
    )
