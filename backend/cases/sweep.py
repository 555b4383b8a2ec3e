"""The deadline sweep: mark cases whose statutory deadline passed, escalate them to the parent jurisdiction
and tell its staff, once per case and deadline."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import SYSTEM, snapshot
from backend.cases.models import Case, CaseAction, CaseDeadline, CaseEvent
from backend.cases.service import FILER_DEADLINES, aware, bureau_label, locked_case, tell_filer
from backend.complaints import service as complaints
from backend.complaints.models import Complaint
from backend.db import UnitOfWork, session_scope, utcnow
from backend.jurisdictions.models import Jurisdiction
from backend.outbox.service import emit

BATCH = 500


def _escalation_target(session: Session, case: Case) -> str | None:
    """The parent of the case's jurisdiction (None at province level or in the national queue)."""
    if case.jurisdiction_code is None:
        return None
    jurisdiction = session.get(Jurisdiction, case.jurisdiction_code)
    return jurisdiction.parent_code if jurisdiction is not None else None


def mark_overdue(session: Session, deadline_id: int, now: datetime) -> bool:
    """Mark one passed deadline: the case overdue and escalated, its history, the audit and ``case.overdue``."""
    # The case row is locked first and the deadline re-read under it, the order every step of the case takes,
    # so a decision made at the same moment either ends the deadline first (nothing to mark) or sees it marked.
    case_id = session.execute(
        select(col(CaseDeadline.case_id)).where(col(CaseDeadline.id) == deadline_id)
    ).scalar_one_or_none()
    case = locked_case(session, case_id) if case_id is not None else None
    if case is None:
        return False
    deadline = session.execute(
        select(CaseDeadline)
        .where(col(CaseDeadline.id) == deadline_id)
        .execution_options(populate_existing=True)
    ).scalar_one()
    if deadline.ended_at is not None or deadline.overdue_at is not None:
        return False
    before = snapshot(case)
    deadline.overdue_at = now
    session.add(deadline)
    parent = _escalation_target(session, case)
    case.overdue = True
    if parent is not None:
        case.escalated, case.escalated_to, case.escalated_at = True, parent, now
    case.version += 1
    case.updated_at = now
    session.add(case)
    details = {
        "deadline": deadline.key,
        "due_on": deadline.due_on.isoformat(),
        "due_before": aware(deadline.due_before).isoformat(),
        "calendar_exact": deadline.calendar_exact,
    }
    session.add(
        CaseEvent(
            case_id=case.id or 0,
            action=CaseAction.escalated,
            from_state=case.state,
            to_state=case.state,
            from_jurisdiction=case.jurisdiction_code,
            to_jurisdiction=parent or case.jurisdiction_code,
            reason=f"法定期限已过（{deadline.key}，{deadline.due_on.isoformat()}） / statutory deadline passed",
            details=details,
            actor_role=str(SYSTEM.role),
        )
    )
    audit.service.record(
        session,
        actor=SYSTEM,
        action="case.overdue",
        entity_type="case",
        entity_id=case.id or 0,
        before=before,
        after={**(snapshot(case) or {}), "deadline": details},
    )
    # The parent's staff are told (it is their escalation); at province level the province's own staff.
    target = parent or case.jurisdiction_code
    # The filer is told too, on their timeline (no staff identity; the status itself does not change).
    complaint = session.get(Complaint, case.complaint_id)
    if complaint is not None:
        bureau_zh, bureau_en = bureau_label(session, target)
        due = deadline.due_on.isoformat()
        complaints.add_event(
            session,
            complaint,
            complaint.status,
            f"办理已超过法定期限（{due}），已报{bureau_zh}督办",
            f"The statutory deadline ({due}) has passed; {bureau_en} has been told to supervise the handling",
        )
    if target is not None:
        emit(
            session,
            "case.overdue",
            {
                "case_id": case.id,
                "case_no": case.case_no,
                "jurisdiction_code": target,
                "due_on": deadline.due_on.isoformat(),
            },
            dedupe_key=f"case.overdue:{case.id}:{deadline.due_on.isoformat()}",
        )
        if deadline.key in FILER_DEADLINES:
            tell_filer(session, case, "escalated", jurisdiction_code=target, due_on=deadline.due_on)
    session.flush()
    return True


def sweep_deadlines(
    now: datetime | None = None, *, batch: int = BATCH, unit_of_work: UnitOfWork = session_scope
) -> int:
    """Mark every open deadline that has passed; each batch is its own transaction. Returns how many."""
    # Naive instants are UTC (what SQLite hands back); stored instants are UTC on every database.
    now = aware(now).astimezone(UTC) if now is not None else utcnow()
    marked = 0
    after_id = 0
    while True:
        with unit_of_work() as session:
            rows = list(
                session.execute(
                    select(col(CaseDeadline.id))
                    .where(
                        col(CaseDeadline.ended_at).is_(None),
                        col(CaseDeadline.overdue_at).is_(None),
                        col(CaseDeadline.due_before) <= now,
                        col(CaseDeadline.id) > after_id,
                    )
                    .order_by(col(CaseDeadline.id))
                    .limit(batch)
                ).scalars()
            )
            for deadline_id in rows:
                if mark_overdue(session, deadline_id, now):
                    marked += 1
        if len(rows) < batch:
            return marked
        after_id = rows[-1]
