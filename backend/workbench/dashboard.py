"""The dashboard's figures for a staff scope, and their layout as horizontal SVG bar charts (drawn by the server,
so the page needs no script and no chart library in the browser)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func
from sqlmodel import Session, col, select

from backend.auth.scope import Scope
from backend.cases import repository
from backend.cases.models import Case, CaseDeadline, CaseOutcome
from backend.cases.service import ACCEPTANCE_SPECS, HANDLING_SPECS, local_date
from backend.config import get_settings
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.records.models import OperatorRating
from backend.records.rules import IntegrityClass

#: Deadlines met or missed in this many past days make the percentages.
WINDOW_DAYS: Final = 90
TOP_OPERATORS: Final = 10
_ACCEPTANCE: Final = frozenset(spec.key for spec in ACCEPTANCE_SPECS.values())
_HANDLING: Final = frozenset(spec.key for spec in HANDLING_SPECS.values() if spec is not None)

# Chart geometry (px in the SVG's own coordinates; the SVG scales to its container).
LABEL_W: Final = 190
BAR_W: Final = 300
ROW_H: Final = 30


@dataclass(frozen=True)
class Bar:
    """One bar of a chart, laid out."""

    label: str
    value: float
    shown: str
    y: int
    width: int


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart: its bars and its height."""

    bars: list[Bar]
    height: int
    label_w: int = LABEL_W
    bar_w: int = BAR_W


def chart(rows: list[tuple[str, float]], *, maximum: float | None = None, percent: bool = False) -> Chart:
    """Lay out bars for ``rows``, scaled to ``maximum`` (the largest value when not given)."""
    top = maximum if maximum is not None else max((v for _, v in rows), default=0.0)
    bars = [
        Bar(
            label=label,
            value=value,
            shown=f"{value:.0f}%" if percent else f"{value:.0f}",
            y=i * ROW_H,
            width=round(BAR_W * value / top) if top > 0 else 0,
        )
        for i, (label, value) in enumerate(rows)
    ]
    return Chart(bars, max(ROW_H, len(bars) * ROW_H))


@dataclass(frozen=True)
class Figures:
    """What the dashboard shows for one scope."""

    week: list[tuple[date, int]]
    acceptance_pct: float | None
    closure_pct: float | None
    overdue_by_county: list[tuple[str, int]]
    ratings: list[tuple[IntegrityClass, int]]
    top_operators: list[tuple[str, int]]


def _week_start(today: date) -> date:
    return today - timedelta(days=today.weekday())


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(get_settings().timezone))


def _on_time_pct(session: Session, where: list[Any], keys: frozenset[str], since: datetime) -> float | None:
    met = case((col(CaseDeadline.ended_at) <= col(CaseDeadline.due_before), 1), else_=0)
    total, on_time = session.execute(
        select(func.count(), func.coalesce(func.sum(met), 0))
        .select_from(CaseDeadline)
        .join(Case, col(Case.id) == col(CaseDeadline.case_id))
        .where(*where)
        .where(col(CaseDeadline.key).in_(sorted(keys)))
        .where(
            # Ended in the window, or still open and already past due (a miss that has not ended yet).
            and_(col(CaseDeadline.ended_at).is_not(None), col(CaseDeadline.ended_at) >= since)
            | and_(col(CaseDeadline.ended_at).is_(None), col(CaseDeadline.overdue_at).is_not(None))
        )
    ).one()
    return 100.0 * int(on_time) / int(total) if total else None


def figures(session: Session, scope: Scope, today: date) -> Figures:
    """The dashboard's figures for the cases and operators in ``scope``."""
    where = repository.scope_where(session, scope, repository.CaseFilter())
    monday = _week_start(today)
    # Each case on its bureau-local day (the instants are stored in UTC).
    received = session.execute(
        select(col(Case.received_at)).where(*where).where(col(Case.received_at) >= _local_midnight(monday))
    ).scalars()
    counts: dict[date, int] = {}
    for at in received:
        counts[local_date(at)] = counts.get(local_date(at), 0) + 1
    week = [(monday + timedelta(days=i), counts.get(monday + timedelta(days=i), 0)) for i in range(7)]
    since = _local_midnight(today) - timedelta(days=WINDOW_DAYS)
    overdue = session.execute(
        select(col(Jurisdiction.name), func.count())
        .select_from(Case)
        .join(Jurisdiction, col(Jurisdiction.code) == col(Case.county_code))
        .where(*where)
        .where(col(Case.overdue))
        .group_by(col(Jurisdiction.name))
        .order_by(func.count().desc(), col(Jurisdiction.name))
    ).all()
    ratings: dict[IntegrityClass, int] = {
        IntegrityClass(cls): int(n)
        for cls, n in session.execute(
            select(col(OperatorRating.cls), func.count())
            .join(Operator, col(Operator.id) == col(OperatorRating.operator_id))
            .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
            .where(col(Jurisdiction.path).startswith(scope.path, autoescape=True))
            .group_by(col(OperatorRating.cls))
        ).all()
    }
    top = session.execute(
        select(col(Operator.name), func.count())
        .select_from(Case)
        .join(Operator, col(Operator.id) == col(Case.operator_id))
        .where(*where)
        .where(col(Case.outcome) == CaseOutcome.substantiated)
        .group_by(col(Operator.id), col(Operator.name))
        .order_by(func.count().desc(), col(Operator.name))
        .limit(TOP_OPERATORS)
    ).all()
    return Figures(
        week=week,
        acceptance_pct=_on_time_pct(session, where, _ACCEPTANCE, since),
        closure_pct=_on_time_pct(session, where, _HANDLING, since),
        overdue_by_county=[(str(name), int(n)) for name, n in overdue],
        ratings=[(c, int(ratings.get(c, 0))) for c in IntegrityClass],
        top_operators=[(str(name), int(n)) for name, n in top],
    )
