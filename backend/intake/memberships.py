"""Industry associations' membership registers (Art. 16): who their members are, and since and until when.

An association reports warnings and censures about its members, so ``service.file_report`` refuses a report
about an operator that was not a member on the report's fact date. Associations keep their own register here
(one at a time, or a CSV file imported at once); staff read an operator's memberships within their scope.

Membership writes of one association are serialised by locking its account row: checks for a current or an
overlapping period, and for reports after a proposed end, then see every committed change of that register.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import AuditItem, record_many, snapshot
from backend.auth.models import Account
from backend.db import bulk_insert, table_of, utcnow
from backend.errors import AppError, conflict, not_found
from backend.intake import csvfile
from backend.intake.csvfile import RowProblem, problem
from backend.intake.jobs import read_table
from backend.intake.models import AssociationMembership, IntakeReport, ReportMeasure
from backend.intake.reports import operator_in_area
from backend.intake.service import area_path, one_of
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.operators.uscc import InvalidUSCC, normalise_uscc
from backend.records.service import bureau_today

#: Rows per membership file: a register imports in one request (see ``import_csv``).
MAX_ROWS = 10_000


class MembershipStatus(StrEnum):
    """A listing filter: members now, or former members."""

    current = "current"
    ended = "ended"


@dataclass
class MembershipInput:
    """One membership to register, parsed (from a CSV row or a JSON body)."""

    operator_uscc: str
    joined_on: date
    member_number: str | None = None
    ended_on: date | None = None
    end_reason: str | None = None
    row: int = 0


def _refusal(status: int, code: str, column: str | None, value: str = "", details: Any = None) -> AppError:
    """An AppError with the same bilingual message a CSV row gets for ``code``."""
    p = problem(0, column, code, value)
    return AppError(status, code, p.message_zh, p.message_en, details)


def _lock_register(session: Session, account: Account) -> None:
    session.execute(select(col(Account.id)).where(col(Account.id) == account.id).with_for_update()).first()


@dataclass(frozen=True)
class _Period:
    joined_on: date
    ended_on: date | None
    member_number: str | None


def _periods(session: Session, association_id: int, operator_ids: set[int]) -> dict[int, list[_Period]]:
    found: dict[int, list[_Period]] = {}
    if not operator_ids:
        return found
    rows = session.execute(
        sa_select(
            col(AssociationMembership.operator_id),
            col(AssociationMembership.joined_on),
            col(AssociationMembership.ended_on),
            col(AssociationMembership.member_number),
        ).where(
            col(AssociationMembership.association_id) == association_id,
            one_of(session, col(AssociationMembership.operator_id), operator_ids),
        )
    ).all()
    for operator_id, joined_on, ended_on, number in rows:
        found.setdefault(operator_id, []).append(_Period(joined_on, ended_on, number))
    return found


def _clash(periods: Sequence[_Period], item: MembershipInput) -> str | None:
    """Why ``item`` cannot be added beside ``periods``: a code, ``"duplicate"`` if it is already there, or None."""
    new = _Period(item.joined_on, item.ended_on, item.member_number)
    if new in periods:
        return "duplicate"
    if item.ended_on is None and any(p.ended_on is None for p in periods):
        return "already_member"
    if any(p.joined_on == item.joined_on for p in periods):
        return "membership_conflict"
    for p in periods:
        # Closed intervals [joined_on, ended_on], an open end reaching forever.
        if (p.ended_on is None or item.joined_on <= p.ended_on) and (
            item.ended_on is None or p.joined_on <= item.ended_on
        ):
            return "membership_overlap"
    return None


# --- one at a time -----------------------------------------------------------------------------------------


def add(session: Session, *, account: Account, data: MembershipInput) -> AssociationMembership:
    """Register a current member by its code: the operator must be active and within the association's area."""
    area = area_path(session, account)
    if data.joined_on > bureau_today():
        raise _refusal(422, "joined_on_in_future", "joined_on")
    operator = operator_in_area(session, area, uscc=data.operator_uscc)
    if operator is None:
        raise _refusal(404, "unknown_operator", "operator_uscc", details={"column": "operator_uscc"})
    if not operator.is_active:
        raise _refusal(422, "operator_inactive", "operator_uscc", details={"column": "operator_uscc"})
    _lock_register(session, account)
    periods = _periods(session, account.id or 0, {operator.id or 0}).get(operator.id or 0, [])
    clash = _clash(periods, data)
    if clash is not None:
        current = _current(session, account.id or 0, operator.id or 0)
        code = "already_member" if clash == "duplicate" else clash
        details = {"membership_id": current.id if current is not None else None}
        raise _refusal(409, code, "operator_uscc", details=details)
    membership = AssociationMembership(
        association_id=account.id or 0,
        operator_id=operator.id or 0,
        member_number=data.member_number,
        joined_on=data.joined_on,
        created_by=account.id,
    )
    try:
        with session.begin_nested():
            session.add(membership)
            session.flush()
    except IntegrityError:
        # Only a writer that bypassed the register lock could get here; the unique index still holds.
        raise _refusal(409, "already_member", "operator_uscc") from None
    audit.service.record(
        session,
        actor=account,
        action="association_membership.create",
        entity_type="association_membership",
        entity_id=membership.id or 0,
        after=snapshot(membership),
    )
    return membership


def _current(session: Session, association_id: int, operator_id: int) -> AssociationMembership | None:
    return session.execute(
        select(AssociationMembership).where(
            col(AssociationMembership.association_id) == association_id,
            col(AssociationMembership.operator_id) == operator_id,
            col(AssociationMembership.ended_on).is_(None),
        )
    ).scalar_one_or_none()


def get_own(session: Session, account: Account, membership_id: int) -> AssociationMembership:
    """One of the association's own memberships; 404 for anyone else's."""
    membership = session.get(AssociationMembership, membership_id)
    if membership is None or membership.association_id != account.id:
        raise not_found("会员记录", "membership")
    return membership


def end(
    session: Session, *, account: Account, membership_id: int, ended_on: date, reason: str
) -> AssociationMembership:
    """End a current membership on ``ended_on`` (its last day); not before a report already filed about it."""
    _lock_register(session, account)
    membership = get_own(session, account, membership_id)
    if membership.ended_on is not None:
        raise conflict(
            "membership_ended",
            "该会员资格已终止",
            "this membership has already ended",
            {"ended_on": membership.ended_on.isoformat()},
        )
    if ended_on > bureau_today():
        raise _refusal(422, "ended_on_in_future", "ended_on")
    if ended_on < membership.joined_on:
        raise _refusal(
            422, "ended_before_joined", "ended_on", details={"joined_on": membership.joined_on.isoformat()}
        )
    latest: date | None = session.execute(
        select(func.max(col(IntakeReport.fact_date))).where(
            col(IntakeReport.account_id) == account.id,
            col(IntakeReport.operator_id) == membership.operator_id,
            col(IntakeReport.measure) != ReportMeasure.violation,
            col(IntakeReport.fact_date) >= membership.joined_on,
        )
    ).scalar_one()
    if latest is not None and latest > ended_on:
        # The reports stand on this membership; ending it earlier would leave them about a non-member.
        raise conflict(
            "reports_after_end",
            f"本组织已于 {latest.isoformat()} 报告过该会员，退会日期不能早于该日",
            f"you reported on this member on {latest.isoformat()}; the membership cannot end before that",
            {"latest_fact_date": latest.isoformat()},
        )
    before = snapshot(membership)
    membership.ended_on = ended_on
    membership.end_reason = reason
    membership.updated_at = utcnow()
    session.add(membership)
    session.flush()
    audit.service.record(
        session,
        actor=account,
        action="association_membership.end",
        entity_type="association_membership",
        entity_id=membership.id or 0,
        before=before,
        after=snapshot(membership),
    )
    return membership


# --- listings ----------------------------------------------------------------------------------------------

Listed = tuple[AssociationMembership, str, str]


def list_own(
    session: Session,
    account: Account,
    *,
    status: MembershipStatus | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Listed], int]:
    """The association's register, newest first: (membership, operator code, operator name) and the total."""
    stmt = (
        select(AssociationMembership, col(Operator.uscc), col(Operator.name))
        .join(Operator, col(Operator.id) == col(AssociationMembership.operator_id))
        .where(col(AssociationMembership.association_id) == account.id)
    )
    if status is MembershipStatus.current:
        stmt = stmt.where(col(AssociationMembership.ended_on).is_(None))
    elif status is MembershipStatus.ended:
        stmt = stmt.where(col(AssociationMembership.ended_on).is_not(None))
    term = (q or "").strip()
    if term:
        stmt = stmt.where(
            or_(
                col(Operator.name).contains(term, autoescape=True),
                col(Operator.uscc).startswith(term.upper(), autoescape=True),
            )
        )
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.order_by(col(AssociationMembership.id).desc()).limit(limit).offset(offset)
    ).all()
    return [(m, uscc, name) for m, uscc, name in rows], int(total)


def list_of_operator(
    session: Session, operator_id: int, *, limit: int, offset: int
) -> tuple[list[tuple[AssociationMembership, Account]], int]:
    """Every association's memberships of one operator, the latest joined first, with the association."""
    where = col(AssociationMembership.operator_id) == operator_id
    total = session.execute(select(func.count()).select_from(AssociationMembership).where(where)).scalar_one()
    rows = session.execute(
        select(AssociationMembership, Account)
        .join(Account, col(Account.id) == col(AssociationMembership.association_id))
        .where(where)
        .order_by(col(AssociationMembership.joined_on).desc(), col(AssociationMembership.id).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [(m, a) for m, a in rows], int(total)


# --- a CSV register ----------------------------------------------------------------------------------------


@dataclass
class ImportOutcome:
    """What an import did: rows in the file, memberships added, rows already registered, row problems."""

    total: int
    encoding: str
    imported: int = 0
    duplicates: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        """Rows with at least one problem."""
        return len({p.row for p in self.problems})


def parse_row(number: int, raw: dict[str, str], today: date) -> MembershipInput | list[RowProblem]:
    """A CSV row as a MembershipInput, or every problem found in it."""
    problems: list[RowProblem] = []

    def day(column: str, required: bool = False) -> date | None:
        return csvfile.date_cell(number, raw, column, problems, required=required)

    uscc = raw.get("operator_uscc", "")
    if not uscc:
        problems.append(problem(number, "operator_uscc", "missing_value"))
    else:
        try:
            uscc = normalise_uscc(uscc)
        except InvalidUSCC as exc:
            problems.append(
                RowProblem(number, "operator_uscc", "invalid_uscc", exc.message_zh, exc.message_en)
            )
    joined_on = day("joined_on", required=True)
    if joined_on is not None and joined_on > today:
        problems.append(problem(number, "joined_on", "joined_on_in_future"))
    ended_on = day("ended_on")
    if ended_on is not None and ended_on > today:
        problems.append(problem(number, "ended_on", "ended_on_in_future"))
    if ended_on is not None and joined_on is not None and ended_on < joined_on:
        problems.append(problem(number, "ended_on", "ended_before_joined"))
    number_cell = raw.get("member_number", "")
    if len(number_cell) > 64:
        problems.append(problem(number, "member_number", "value_too_long", limit=64))
    reason = raw.get("end_reason", "")
    if len(reason) > 500:
        problems.append(problem(number, "end_reason", "value_too_long", limit=500))
    # PostgreSQL's COPY refuses NUL in text (a failed request, not a row error), and no control character
    # belongs in a member number or a reason.
    for column, value in (("member_number", number_cell), ("end_reason", reason)):
        if any(ord(c) < 32 and c not in "\t\r\n" for c in value):
            problems.append(problem(number, column, "control_character"))
    # An end needs its reason, and a reason belongs to an end (a missing date is the likelier slip).
    if ended_on is not None and not reason:
        problems.append(problem(number, "end_reason", "missing_value"))
    if reason and not raw.get("ended_on"):
        problems.append(problem(number, "ended_on", "missing_value"))
    if problems or joined_on is None:
        return problems
    return MembershipInput(
        operator_uscc=uscc,
        joined_on=joined_on,
        member_number=number_cell or None,
        ended_on=ended_on,
        end_reason=reason or None,
        row=number,
    )


def import_csv(session: Session, *, account: Account, data: bytes, filename: str = "") -> ImportOutcome:
    """Add the memberships of a CSV file in the caller's transaction; rows with problems are reported, the rest
    added. Rows already registered (same operator, joining date, number and end) count as duplicates, so the
    same file uploaded again adds nothing. Ending a current membership is not done by file: that is ``end``.
    """
    table = read_table(data, csvfile.MEMBERSHIP_HEADERS, csvfile.MEMBERSHIP_REQUIRED, frozenset(), MAX_ROWS)
    outcome = ImportOutcome(total=table.total, encoding=table.encoding)
    today = bureau_today()
    items: list[MembershipInput] = []
    for number, raw in table.rows():
        parsed = parse_row(number, raw, today)
        if isinstance(parsed, list):
            outcome.problems += parsed
        else:
            items.append(parsed)
    area = area_path(session, account)
    _lock_register(session, account)
    # The same area rule as single adds and reports (the division's path under the association's), set-based.
    operators: dict[str, tuple[int, bool, str]] = {}
    codes = {item.operator_uscc for item in items}
    if codes:
        for operator_id, uscc, active, path in session.execute(
            sa_select(col(Operator.id), col(Operator.uscc), col(Operator.is_active), col(Jurisdiction.path))
            .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
            .where(one_of(session, col(Operator.uscc), codes))
        ).all():
            operators[uscc] = (operator_id, active, path)
    periods = _periods(session, account.id or 0, {o[0] for o in operators.values()})
    now = utcnow()
    added: list[AssociationMembership] = []
    for item in items:
        found = operators.get(item.operator_uscc)
        if found is None or not found[2].startswith(area):
            outcome.problems.append(problem(item.row, "operator_uscc", "unknown_operator"))
            continue
        operator_id, active, _path = found
        if not active:
            outcome.problems.append(problem(item.row, "operator_uscc", "operator_inactive"))
            continue
        own = periods.setdefault(operator_id, [])
        clash = _clash(own, item)
        if clash == "duplicate":
            outcome.duplicates += 1
            continue
        if clash is not None:
            column = "operator_uscc" if clash == "already_member" else "joined_on"
            outcome.problems.append(problem(item.row, column, clash))
            continue
        own.append(_Period(item.joined_on, item.ended_on, item.member_number))
        added.append(
            AssociationMembership(
                association_id=account.id or 0,
                operator_id=operator_id,
                member_number=item.member_number,
                joined_on=item.joined_on,
                ended_on=item.ended_on,
                end_reason=item.end_reason,
                created_by=account.id,
                created_at=now,
                updated_at=now,
            )
        )
    rows = [m.model_dump(exclude={"id"}) for m in added]
    bulk_insert(session, table_of(AssociationMembership), rows, assign_ids=True)
    for membership, row in zip(added, rows, strict=True):
        membership.id = row["id"]
    outcome.imported = len(added)
    outcome.problems.sort(key=lambda p: p.row)
    summary = {
        "filename": filename[:255],
        "sha256": hashlib.sha256(data).hexdigest(),
        "encoding": table.encoding,
        "rows": table.total,
        "imported": outcome.imported,
        "duplicates": outcome.duplicates,
        "rejected": outcome.rejected,
    }
    record_many(
        session,
        actor=account,
        items=[
            *(
                AuditItem(
                    "association_membership.create",
                    "association_membership",
                    str(m.id),
                    after=snapshot(m),
                )
                for m in added
            ),
            AuditItem("association_membership.import", "account", str(account.id), after=summary),
        ],
    )
    return outcome
