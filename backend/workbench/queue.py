"""The case queue's query: the API's scoped work-list filters, plus category and "due within", sorted by deadline
with keyset paging (a page after the last row seen, never an offset that grows with the list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlmodel import Session, col, select

from backend.auth.scope import Scope
from backend.cases import repository
from backend.cases.deadlines import add_working_days, working_days_between
from backend.cases.models import Case, CaseState
from backend.cases.schemas import CaseSummary
from backend.complaints.models import Complaint, ComplaintCategory, ComplaintPhoto, PhotoStatus

PAGE_SIZE: Final = 50
#: Each state's count stops here: the page shows "1000+" rather than reading a 100,000-case scope per view.
COUNT_CAP: Final = 1000
#: Fewer matches than this are counted by one grouped scan; more, by a bounded index range per state.
EXACT_BELOW: Final = 5000
#: Cases without an open deadline sort after every dated one.
NO_DEADLINE: Final = date(9999, 12, 31)


@dataclass(frozen=True)
class QueueFilter:
    """What the queue's filter form asks for."""

    state: CaseState | None = None
    overdue: bool | None = None
    escalated: bool | None = None
    due_within: int | None = None
    category: ComplaintCategory | None = None
    county: str | None = None


@dataclass(frozen=True)
class QueueLine:
    """A row of the queue: the API's work-list line, working days left and whether photos are processing."""

    case: CaseSummary
    days_left: int | None
    photos_processing: bool


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue, its status counts and the cursor of the next page.

    A count above ``COUNT_CAP`` means "more than the cap"; ``total`` then adds the cap for it (a lower bound,
    see ``capped``).
    """

    lines: list[QueueLine]
    counts: dict[CaseState, int]
    total: int
    next_after: str | None

    @property
    def overall(self) -> int:
        """Every state's count together (the filters but the state's), each taken up to the cap."""
        return sum(min(n, COUNT_CAP) for n in self.counts.values())

    @property
    def capped(self) -> bool:
        """Whether a count stopped at the cap (the total is then a lower bound)."""
        return any(n > COUNT_CAP for n in self.counts.values())


def where_clauses(
    session: Session, scope: Scope, flt: QueueFilter, today: date, *, with_state: bool = True
) -> list[Any]:
    """The WHERE clauses of the queue's filters in the scope (the map draws the same cases)."""
    where = repository.scope_where(
        session,
        scope,
        repository.CaseFilter(
            state=flt.state if with_state else None,
            overdue=flt.overdue,
            escalated=flt.escalated,
            jurisdiction=flt.county,
        ),
    )
    if flt.due_within is not None:
        where.append(col(Case.due_on) <= add_working_days(today, flt.due_within))
    if flt.category is not None:
        where.append(
            col(Case.complaint_id).in_(
                select(col(Complaint.id)).where(col(Complaint.category) == flt.category)
            )
        )
    return where


def parse_cursor(raw: str | None) -> tuple[date | None, int] | None:
    """``YYYY-MM-DD.id`` of the last row of the previous page (``NO_DEADLINE`` when it was undated); None when
    absent or malformed."""
    if not raw:
        return None
    day, _, ident = raw.partition(".")
    try:
        when = date.fromisoformat(day)
        return (None if when == NO_DEADLINE else when), int(ident)
    except ValueError:
        return None


def load(
    session: Session, scope: Scope, flt: QueueFilter, *, after: tuple[date | None, int] | None, today: date
) -> QueuePage:
    """A page of the queue, soonest deadline first, with each state's count up to ``COUNT_CAP``."""
    where = where_clauses(session, scope, flt, today)
    rows = repository.due_ordered_ids(session, where, after=after, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    ids = [r[0] for r in rows]
    by_id = {line.id: line for line in repository.summaries(session, ids)}
    pending = set(
        session.execute(
            select(col(ComplaintPhoto.complaint_id))
            .where(col(ComplaintPhoto.complaint_id).in_([c.complaint_id for c in by_id.values()] or [0]))
            .where(col(ComplaintPhoto.status) == PhotoStatus.pending)
            .distinct()
        ).scalars()
    )
    lines = [
        QueueLine(
            case=line,
            days_left=working_days_between(today, line.due_on) if line.due_on is not None else None,
            photos_processing=line.complaint_id in pending,
        )
        for line in (by_id[i] for i in ids if i in by_id)
    ]
    counts = repository.count_by_state(
        session,
        where_clauses(session, scope, flt, today, with_state=False),
        cap=COUNT_CAP,
        exact_below=EXACT_BELOW,
    )
    shown = [counts.get(flt.state, 0)] if flt.state is not None else list(counts.values())
    total = sum(min(n, COUNT_CAP) for n in shown)
    last = rows[-1] if rows and more else None
    next_after = f"{(last[1] or NO_DEADLINE).isoformat()}.{last[0]}" if last is not None else None
    return QueuePage(lines, counts, total, next_after)
