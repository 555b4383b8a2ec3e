"""A supervisor's patrol reports filed through ``POST /complaints`` (with photos), shaped like the reports filed
through ``POST /supervisor-reports``, so ``/me/supervisor-reports`` is one list whichever route filed them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.cases.models import Case, CaseOutcome
from backend.complaints.models import Complaint, PatrolFinding
from backend.operators.models import Operator
from backend.records.rules import RecordState
from backend.records.schemas import SupervisorReportRead
from backend.records.service import local_date

FINDING_LABELS: dict[PatrolFinding, tuple[str, str]] = {
    PatrolFinding.instrument_without_valid_mark: (
        "器具无有效检定标识",
        "instrument without a valid verification mark",
    ),
    PatrolFinding.suspected_cheating: ("疑似计量作弊", "suspected metrology cheating"),
    PatrolFinding.commitment_not_displayed: ("未公示诚信计量承诺", "integrity commitment not displayed"),
    PatrolFinding.other: ("其他问题", "other"),
}

#: What the bureau's decision on the case means for the report, in the records' terms.
_STATE_OF_OUTCOME: dict[CaseOutcome, RecordState] = {
    CaseOutcome.substantiated: RecordState.VERIFIED,
    CaseOutcome.not_substantiated: RecordState.DISMISSED,
    CaseOutcome.not_accepted: RecordState.DISMISSED,
    CaseOutcome.terminated: RecordState.DISMISSED,
    CaseOutcome.mediated: RecordState.DISMISSED,
}


def _where(supervisor: Account) -> tuple[object, ...]:
    return (
        col(Complaint.account_id) == supervisor.id,
        col(Complaint.filer_role) == Role.supervisor,
    )


def count(session: Session, supervisor: Account) -> int:
    """How many patrol reports the supervisor filed as complaints."""
    return int(
        session.execute(
            select(func.count()).select_from(Complaint).where(*_where(supervisor))  # type: ignore[arg-type]
        ).scalar_one()
    )


def newest(session: Session, supervisor: Account, *, limit: int) -> Sequence[SupervisorReportRead]:
    """The supervisor's ``limit`` newest patrol reports filed as complaints, with the case's decision."""
    rows = session.execute(
        select(Complaint, col(Operator.name), Case)
        .join(Operator, col(Operator.id) == col(Complaint.operator_id))
        .join(Case, col(Case.complaint_id) == col(Complaint.id), isouter=True)
        .where(*_where(supervisor))  # type: ignore[arg-type]
        .order_by(col(Complaint.created_at).desc(), col(Complaint.id).desc())
        .limit(limit)
    ).all()
    return [_read(complaint, name, case) for complaint, name, case in rows]


def _read(complaint: Complaint, operator_name: str, case: Case | None) -> SupervisorReportRead:
    assert complaint.id is not None and complaint.operator_id is not None
    finding = complaint.finding or PatrolFinding.other
    label_zh, label_en = FINDING_LABELS[finding]
    outcome = case.outcome if case is not None else None
    return SupervisorReportRead(
        id=complaint.id,
        source="complaint",
        complaint_id=complaint.id,
        case_no=case.case_no if case is not None else None,
        operator_id=complaint.operator_id,
        operator_name=operator_name,
        kind=None,
        finding=finding,
        kind_label_zh=label_zh,
        kind_label_en=label_en,
        fact_date=local_date(complaint.captured_at or complaint.created_at),
        summary=complaint.description or label_zh,
        state=_STATE_OF_OUTCOME.get(outcome, RecordState.REPORTED) if outcome else RecordState.REPORTED,
        decision_reason=None,
        created_at=complaint.created_at,
        updated_at=complaint.updated_at,
    )
