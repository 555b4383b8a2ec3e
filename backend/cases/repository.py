"""Scoped case queries and the views built from them; the work list stays a few index probes at any size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import false, func, literal, not_, or_, tuple_, union_all
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from backend.auth.scope import Scope
from backend.cases.figures import BasisSource
from backend.cases.models import Case, CaseAction, CaseDeadline, CaseEvent, CaseKind, CaseOutcome, CaseState
from backend.cases.schemas import (
    CaseDetail,
    CaseEventRead,
    CaseRead,
    CaseSummary,
    DeadlinePauseRead,
    DeadlineRead,
    OperatorFinding,
    TransferRead,
)
from backend.cases.service import LEVEL_COLUMNS, local_date
from backend.complaints import service as complaints
from backend.complaints.models import Complaint
from backend.errors import AppError
from backend.i18n import Locale
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.records.models import IntegrityRecord
from backend.records.rules import RecordState


@dataclass(frozen=True)
class CaseFilter:
    """Work-list filters; ``jurisdiction`` narrows to a division and everything below it."""

    state: CaseState | None = None
    overdue: bool | None = None
    escalated: bool | None = None
    jurisdiction: str | None = None
    kind: CaseKind | None = None
    triage: bool | None = None


@dataclass(frozen=True)
class _Query:
    """The WHERE clauses of a listing."""

    where: list[Any]


def _flag(column: Any, value: bool) -> Any:
    # The bare column (not "= true"), the form a partial index's WHERE overdue is proven from.
    return col(column) if value else not_(col(column))


def _division(session: Session, code: str) -> Jurisdiction:
    jurisdiction = session.get(Jurisdiction, code)
    if jurisdiction is None:
        raise AppError(
            422, "unknown_jurisdiction", "辖区不存在", "no such jurisdiction", {"jurisdiction": code}
        )
    return jurisdiction


def _query(session: Session, scope: Scope, flt: CaseFilter) -> _Query:
    where: list[Any] = []
    # Of the scope and the jurisdiction filter, the narrower one decides (disjoint ones match nothing): one
    # equality on the column of its level, which leads an index ordered by id.
    subtree: Jurisdiction | None = None
    if scope.path != "/":
        subtree = session.get(Jurisdiction, scope.path.rstrip("/").rsplit("/", 1)[-1])
        if subtree is None:
            return _Query([false()])
    if flt.jurisdiction is not None:
        wanted = _division(session, flt.jurisdiction)
        if subtree is None or wanted.path.startswith(subtree.path):
            subtree = wanted
        elif not subtree.path.startswith(wanted.path):
            return _Query([false()])
    if subtree is not None:
        where.append(col(getattr(Case, LEVEL_COLUMNS[subtree.level])) == subtree.code)
    if flt.state is not None:
        where.append(col(Case.state) == flt.state)
    if flt.overdue is not None:
        where.append(_flag(Case.overdue, flt.overdue))
    if flt.escalated is not None:
        where.append(_flag(Case.escalated, flt.escalated))
    if flt.kind is not None:
        where.append(col(Case.kind) == flt.kind)
    if flt.triage is not None:
        where.append(_flag(Case.triage, flt.triage))
    return _Query(where)


def scope_where(session: Session, scope: Scope, flt: CaseFilter) -> list[Any]:
    """The WHERE clauses of a work-list listing, for views that sort, page or count it their own way."""
    return list(_query(session, scope, flt).where)


def list_in_scope(
    session: Session,
    scope: Scope,
    flt: CaseFilter,
    *,
    limit: int,
    offset: int,
    order: Literal["newest", "due"] = "newest",
) -> tuple[list[CaseSummary], int]:
    """Work-list lines for cases in the scope matching the filters: newest first, or soonest due first."""
    query = _query(session, scope, flt)
    total = session.execute(select(func.count()).select_from(Case).where(*query.where)).scalar_one()
    ordering = (col(Case.due_on).asc(), col(Case.id).asc()) if order == "due" else (col(Case.id).desc(),)
    # The page's ids first, then its lines: the id query is answered from the scope index alone (index-only),
    # where a single query lets the planner walk the primary key backwards and filter — fine on average, but
    # tens of thousands of rows when a large scope's cases are all older than everyone else's.
    ids = list(
        session.execute(
            select(col(Case.id)).where(*query.where).order_by(*ordering).limit(limit).offset(offset)
        ).scalars()
    )
    lines = {line.id: line for line in summaries(session, ids)}
    return [lines[i] for i in ids if i in lines], int(total)


def due_ordered_ids(
    session: Session, where: Sequence[Any], *, after: tuple[date | None, int] | None, limit: int
) -> list[tuple[int, date | None]]:
    """(id, due_on) of up to ``limit`` cases matching ``where``, soonest deadline first, undated ones last (by id),
    after the keyset ``after`` (the last row seen; its date None when it was undated).

    Two index range scans on (scope level[, state], due_on, id) instead of one ORDER BY over a COALESCE: each
    reads only the page's entries, at any scope size, and on both dialects (which sort NULLs differently).
    """
    rows: list[tuple[int, date | None]] = []
    if after is None or after[0] is not None:
        dated = select(col(Case.id), col(Case.due_on)).where(*where, col(Case.due_on).is_not(None))
        if after is not None:
            dated = dated.where(
                tuple_(col(Case.due_on), col(Case.id)) > tuple_(literal(after[0]), literal(after[1]))
            )
        rows = [
            (int(i), d)
            for i, d in session.execute(dated.order_by(col(Case.due_on), col(Case.id)).limit(limit))
        ]
    if len(rows) < limit:
        undated = select(col(Case.id)).where(*where, col(Case.due_on).is_(None))
        if after is not None and after[0] is None:
            undated = undated.where(col(Case.id) > after[1])
        found = session.execute(undated.order_by(col(Case.id)).limit(limit - len(rows))).scalars()
        rows += [(int(i), None) for i in found]
    return rows


def count_by_state(
    session: Session, where: Sequence[Any], *, cap: int, exact_below: int
) -> dict[CaseState, int]:
    """Cases matching ``where`` per state, each count stopping at ``cap + 1`` (read as "more than ``cap``").

    An exact count reads every case of a 100,000-case scope on each page view, while past a thousand the figure
    only says "many" to the person reading it. First one grouped scan of at most ``exact_below`` rows: a filter
    like "overdue" or a county is answered there, from one index; when it does not exhaust the matches, one
    statement of a bounded index range per state.
    """
    sample = select(col(Case.state)).where(*where).limit(exact_below).subquery()
    grouped = [
        (CaseState(s), int(n))
        for s, n in session.execute(select(sample.c.state, func.count()).group_by(sample.c.state))
    ]
    if sum(n for _, n in grouped) < exact_below:
        return {state: min(n, cap + 1) for state, n in grouped if n}
    parts = [
        select(literal(state.value), func.count()).select_from(
            select(col(Case.id)).where(*where, col(Case.state) == state).limit(cap + 1).subquery()
        )
        for state in CaseState
    ]
    return {CaseState(state): int(n) for state, n in session.execute(union_all(*parts)) if n}


def summaries(session: Session, case_ids: Sequence[int]) -> list[CaseSummary]:
    """Work-list lines for the given cases, with their complaint's flags and operator's name, in one query."""
    if not case_ids:
        return []
    rows = session.execute(
        # The complaint's three flags, not the whole row (its text, evidence and routing stay in the database).
        sa_select(
            Case,
            col(Complaint.category),
            col(Complaint.routing_low_confidence),
            col(Complaint.location_mismatch),
            col(Operator.name),
        )
        .join(Complaint, col(Complaint.id) == col(Case.complaint_id))
        .outerjoin(Operator, col(Operator.id) == col(Case.operator_id))
        .where(col(Case.id).in_(case_ids))
    ).all()
    return [_summary(c, (category, low, mismatch), name) for c, category, low, mismatch, name in rows]


def _summary(
    case: Case, flags: tuple[Any, bool | None, bool | None], operator_name: str | None
) -> CaseSummary:
    category, low_confidence, mismatch = flags
    return CaseSummary(
        id=case.id or 0,
        case_no=case.case_no,
        kind=case.kind,
        state=case.state,
        category=category,
        complaint_id=case.complaint_id,
        jurisdiction_code=case.jurisdiction_code,
        triage=case.triage,
        operator_id=case.operator_id,
        operator_name=operator_name,
        received_at=case.received_at,
        due_on=case.due_on,
        overdue=case.overdue,
        escalated=case.escalated,
        escalated_to=case.escalated_to,
        outcome=case.outcome,
        low_confidence=low_confidence,
        location_mismatch=mismatch,
    )


def deadlines_of(session: Session, case_id: int) -> list[CaseDeadline]:
    """Every deadline the case has had, in the order they were opened."""
    return list(
        session.execute(
            select(CaseDeadline).where(col(CaseDeadline.case_id) == case_id).order_by(col(CaseDeadline.id))
        ).scalars()
    )


def history_of(session: Session, case_id: int) -> list[CaseEvent]:
    """The case's steps, oldest first."""
    return list(
        session.execute(
            select(CaseEvent).where(col(CaseEvent.case_id) == case_id).order_by(col(CaseEvent.id))
        ).scalars()
    )


def _deadline(row: CaseDeadline, locale: Locale) -> DeadlineRead:
    return DeadlineRead(
        key=row.key,
        start_date=row.start_date,
        due_on=row.due_on,
        due_before=row.due_before,
        working_days=row.working_days,
        calendar_exact=row.calendar_exact,
        legal_basis=row.legal_basis_zh if locale == "zh-CN" else row.legal_basis_en,
        basis_superseded=row.basis_superseded,
        basis_source=BasisSource(row.basis_source),
        extension_working_days=row.extension_working_days,
        extended=row.extended,
        pausable=row.pausable,
        pauses=[DeadlinePauseRead.model_validate(p) for p in row.pauses],
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        overdue_at=row.overdue_at,
    )


def to_read(session: Session, case: Case, locale: Locale) -> CaseRead:
    """The case with its decisions, deadlines and routing."""
    complaint = session.get(Complaint, case.complaint_id)
    assert complaint is not None
    operator = session.get(Operator, case.operator_id) if case.operator_id is not None else None
    summary = _summary(
        case,
        (complaint.category, complaint.routing_low_confidence, complaint.location_mismatch),
        operator.name if operator is not None else None,
    )
    jurisdiction = session.get(Jurisdiction, case.jurisdiction_code) if case.jurisdiction_code else None
    return CaseRead(
        **summary.model_dump(),
        bureau_name=jurisdiction.bureau_name if jurisdiction is not None else None,
        assignee_id=case.assignee_id,
        accepted_at=case.accepted_at,
        decided_at=case.decided_at,
        closed_at=case.closed_at,
        escalated_at=case.escalated_at,
        rejection_reason=case.rejection_reason,
        handled_by=case.handled_by,
        duplicate_of_id=case.duplicate_of_id,
        findings=case.findings,
        record_ids=list(case.record_ids),
        routing=complaints.routing_staff(complaint, locale),
        deadlines=[_deadline(d, locale) for d in deadlines_of(session, case.id or 0)],
        updated_at=case.updated_at,
    )


def to_detail(session: Session, case: Case, locale: Locale) -> CaseDetail:
    """The case with the complaint's evidence and identity and the full history (staff in scope only)."""
    complaint = session.get(Complaint, case.complaint_id)
    assert complaint is not None
    return CaseDetail(
        **to_read(session, case, locale).model_dump(),
        complaint=complaints.to_staff_read(session, complaint, locale),
        history=[
            CaseEventRead.model_validate(e, from_attributes=True) for e in history_of(session, case.id or 0)
        ],
    )


def transfers_in_scope(
    session: Session, scope: Scope, *, limit: int, offset: int
) -> tuple[list[TransferRead], int]:
    """Transfers into, out of or within the scope, newest first: both bureaus keep seeing them."""
    source = aliased(Jurisdiction)
    target = aliased(Jurisdiction)
    stmt = (
        select(CaseEvent, col(Case.case_no), col(source.path), col(target.path))
        .join(Case, col(Case.id) == col(CaseEvent.case_id))
        .outerjoin(source, col(source.code) == col(CaseEvent.from_jurisdiction))
        .outerjoin(target, col(target.code) == col(CaseEvent.to_jurisdiction))
        .where(col(CaseEvent.action) == CaseAction.transferred)
    )
    if scope.path != "/":
        stmt = stmt.where(
            or_(col(source.path).startswith(scope.path), col(target.path).startswith(scope.path))
        )
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(stmt.order_by(col(CaseEvent.id).desc()).limit(limit).offset(offset)).all()
    items = []
    for event, number, from_path, to_path in rows:
        was_in = from_path is not None and scope.covers(from_path)
        now_in = to_path is not None and scope.covers(to_path)
        direction: Literal["in", "out", "within"] = (
            "within" if was_in and now_in else "out" if was_in else "in"
        )
        items.append(
            TransferRead(
                case_id=event.case_id,
                case_no=number,
                at=event.at,
                direction=direction,
                from_jurisdiction=event.from_jurisdiction,
                to_jurisdiction=event.to_jurisdiction,
                reason=event.reason,
                actor_id=event.actor_id,
            )
        )
    return items, int(total)


def findings_for_operator(
    session: Session, operator_id: int, locale: Locale, *, limit: int, offset: int
) -> tuple[list[OperatorFinding], int]:
    """Substantiated cases against an operator, newest decision first, in the operator's own view."""
    where = (col(Case.operator_id) == operator_id, col(Case.outcome) == CaseOutcome.substantiated)
    total = session.execute(select(func.count()).select_from(Case).where(*where)).scalar_one()
    cases = session.execute(
        select(Case)
        .where(*where)
        .order_by(col(Case.decided_at).desc(), col(Case.id).desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    items = []
    for case in cases:
        complaint = session.get(Complaint, case.complaint_id)
        assert complaint is not None
        live = [
            r
            for r in session.execute(
                select(IntegrityRecord)
                .where(col(IntegrityRecord.id).in_(case.record_ids or [0]))
                .order_by(col(IntegrityRecord.id))
            ).scalars()
            if r.state is not RecordState.REVOKED
        ]
        jurisdiction = session.get(Jurisdiction, case.jurisdiction_code) if case.jurisdiction_code else None
        items.append(
            OperatorFinding(
                case_no=case.case_no,
                bureau_name=jurisdiction.bureau_name if jurisdiction is not None else None,
                decided_on=local_date(case.decided_at or case.updated_at),
                complaint=complaints.to_operator_view(session, complaint, locale),
                record_ids=[r.id or 0 for r in live],
                record_kinds=[r.kind for r in live],
            )
        )
    return items, int(total)
