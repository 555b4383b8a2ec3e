"""Supervision measures: inspections and their records, risk-tiered plans, interviews, department notices."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import snapshot
from backend.auth.models import Account
from backend.auth.scope import Scope
from backend.common.scoped import load_scoped
from backend.db import table_of, utcnow
from backend.errors import AppError, conflict, forbidden, not_found
from backend.jurisdictions.models import Jurisdiction
from backend.notices.sms import templates as sms_templates
from backend.operators import service as operator_service
from backend.operators.models import Operator
from backend.outbox.service import emit
from backend.outbox.topics import Topic
from backend.records import rating
from backend.records import service as records
from backend.records.models import IntegrityRecord, OperatorRating, RecordSource
from backend.records.plan import InspectionRates, PlanCandidate, PlanRow, draw_plan
from backend.records.rules import INSTRUMENT_KINDS, IntegrityClass, RecordKind, RecordState
from backend.supervision.models import (
    DepartmentNotice,
    Inspection,
    InspectionPlan,
    InspectionResult,
    Interview,
    InterviewKind,
    InterviewStatus,
    PlanEntry,
)
from backend.supervision.schemas import (
    InspectionCreate,
    InspectionItem,
    InspectionItemKind,
    InterviewCreate,
    NoticeCreate,
    PlanCreate,
)

#: What a missing or out-of-scope plan or interview is called in the 404.
PLAN = ("抽查计划", "inspection plan")
INTERVIEW = ("约谈", "interview")
GUIDELINE = "《服务业诚信计量监督管理制度建设指南》（国质检量函〔2017〕566号）"
#: The clause a reminder or interview rests on, by the operator's class when it is scheduled: Art. 12(2) lists
#: 提醒 and 约谈 among the measures taken against 失信 operators only; for any other class they are the tiered
#: supervision Art. 11 has bureaus apply to every class (a class-specific measure it may not claim to be).
INTERVIEW_BASIS: dict[IntegrityClass, str] = {
    IntegrityClass.UNTRUSTWORTHY: f"{GUIDELINE}第十二条第（二）项",
    IntegrityClass.BASICALLY_TRUSTWORTHY: f"{GUIDELINE}第十一条",
    IntegrityClass.TRUSTWORTHY: f"{GUIDELINE}第十一条",
}


def interview_in_scope(session: Session, scope: Scope, interview_id: int) -> Interview:
    """An interview with an operator in the scope; 404 otherwise."""
    return load_scoped(session, scope, Interview, interview_id, INTERVIEW, via="operator")


def _under(stmt: Any, path: str) -> Any:
    """Restrict a statement joined to Operator to operators registered under a jurisdiction path."""
    return stmt.join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code)).where(
        col(Jurisdiction.path).startswith(path)
    )


def area_in_scope(session: Session, scope: Scope, code: str | None) -> str:
    """The path to filter on: a jurisdiction inside the scope (403 outside, 422 unknown), or the scope."""
    if code is None:
        return scope.path
    jurisdiction = session.get(Jurisdiction, code)
    if jurisdiction is None:
        raise AppError(
            422,
            "invalid_jurisdiction_code",
            "行政区划代码不存在",
            "unknown jurisdiction code",
            {"jurisdiction_code": code},
        )
    if not scope.covers(jurisdiction.path):
        raise forbidden("该辖区不在您的管辖范围内", "jurisdiction outside your scope")
    return jurisdiction.path


# --- inspections (Art. 14(2)) --------------------------------------------------------------------------------


def _item_record(item: InspectionItem) -> RecordKind | None:
    """The record a failed item adds beside the inspection failure itself, if any."""
    if item.item is InspectionItemKind.net_content_sampling:
        return RecordKind.NET_CONTENT_NONCOMPLIANT
    if item.instrument_finding is not None:
        return item.instrument_finding.record_kind
    if item.item is InspectionItemKind.verification_marks:
        # No valid verification mark on an instrument in use: unverified unless the inspector says otherwise.
        return RecordKind.INSTRUMENT_UNVERIFIED
    return None


def create_inspection(session: Session, *, scope: Scope, data: InspectionCreate) -> Inspection:
    """Record an inspection; a failure becomes verified records (Art. 13(1), and Art. 8 per failed item)."""
    operator = operator_service.get_in_scope(session, scope, data.operator_id)
    records.check_fact_date(data.inspected_on)
    if data.plan_entry_id is not None:
        entry = session.get(PlanEntry, data.plan_entry_id)
        if entry is None or entry.operator_id != operator.id:
            raise AppError(
                422,
                "plan_entry_mismatch",
                "抽查计划条目与经营者不符",
                "the plan entry is not for this operator",
                {"plan_entry_id": data.plan_entry_id},
            )
    failed = [i for i in data.items if i.result is InspectionResult.failed]
    assert isinstance(scope.user, Account)
    inspection = Inspection(
        operator_id=operator.id or 0,
        inspector_id=scope.user.id or 0,
        inspected_on=data.inspected_on,
        items=[i.model_dump(mode="json") for i in data.items],
        result=InspectionResult.failed if failed else InspectionResult.passed,
        notes=data.notes,
        plan_entry_id=data.plan_entry_id,
    )
    session.add(inspection)
    session.flush()
    ref = f"inspection:{inspection.id}"
    made: list[IntegrityRecord] = []
    if failed:
        # A supervision inspection is the bureau's own investigation — what Art. 13 calls 经调查核实 — so its
        # findings are verified when recorded; a mistaken one is corrected or revoked under Art. 22.
        common: dict[str, Any] = {
            "operator": operator,
            "fact_date": data.inspected_on,
            "source": RecordSource.inspection,
            "state": RecordState.VERIFIED,
            "evidence_refs": [ref],
            "actor": scope.user,
            "reason": "监督检查不合格 / failed supervision inspection",
            # The operator is told of the inspection's findings once, below.
            "notice": False,
        }
        summary = "；".join(f"{i.item.value}: {i.note}" if i.note else i.item.value for i in failed)
        made.append(
            records.create(
                session, kind=RecordKind.INSPECTION_FAILED, source_ref=ref, summary=summary, **common
            )
        )
        for number, item in enumerate(data.items):
            kind = _item_record(item) if item.result is InspectionResult.failed else None
            if kind is None:
                continue
            made.append(
                records.create(
                    session,
                    kind=kind,
                    source_ref=f"{ref}:item:{number}",
                    summary=item.note,
                    instrument_id=item.instrument_id,
                    # Found on the counter during the inspection: in use by observation (Art. 13(3)).
                    instrument_still_in_use=True if kind in INSTRUMENT_KINDS else None,
                    **common,
                )
            )
    inspection.record_ids = [r.id or 0 for r in made]
    session.add(inspection)
    session.flush()
    records.decided(
        session,
        operator_id=operator.id or 0,
        records=made,
        jurisdiction_code=scope.user.jurisdiction_code,
        dedupe=f"inspection:{inspection.id}",
    )
    audit.service.record(
        session,
        actor=scope.user,
        action="inspection.create",
        entity_type="inspection",
        entity_id=inspection.id or 0,
        after=snapshot(inspection),
    )
    return inspection


def list_inspections(
    session: Session, scope: Scope, *, operator_id: int | None, limit: int, offset: int
) -> tuple[Sequence[Inspection], int]:
    """Inspections of operators in the scope, newest first."""
    stmt = _under(
        select(Inspection).join(Operator, col(Operator.id) == col(Inspection.operator_id)), scope.path
    )
    if operator_id is not None:
        stmt = stmt.where(col(Inspection.operator_id) == operator_id)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.order_by(col(Inspection.inspected_on).desc(), col(Inspection.id).desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(rows), total


# --- key supervision and plans (Art. 11-12) -----------------------------------------------------------------


def key_supervision(
    session: Session, scope: Scope, *, jurisdiction_code: str | None, limit: int, offset: int
) -> tuple[list[tuple[Operator, OperatorRating]], int]:
    """Untrustworthy operators under a jurisdiction in the scope (Art. 12(1) 重点监管对象)."""
    path = area_in_scope(session, scope, jurisdiction_code)
    stmt = _under(
        select(Operator, OperatorRating)
        .join(OperatorRating, col(OperatorRating.operator_id) == col(Operator.id))
        .where(col(OperatorRating.cls) == IntegrityClass.UNTRUSTWORTHY),
        path,
    )
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(stmt.order_by(col(Operator.id)).limit(limit).offset(offset)).all()
    return [(o, r) for o, r in rows], total


def _candidates(session: Session, path: str) -> list[PlanCandidate]:
    """Active operators under ``path`` with their current class (stored, or their no-record class)."""
    rows = session.execute(
        _under(
            select(
                col(Operator.id),
                col(Operator.jurisdiction_code),
                col(Operator.management_assessment),
                col(OperatorRating.cls),
            )
            .select_from(Operator)
            .outerjoin(OperatorRating, col(OperatorRating.operator_id) == col(Operator.id))
            .where(col(Operator.is_active)),
            path,
        )
    ).all()
    return [
        PlanCandidate(str(op_id), cls if cls is not None else rating.baseline_class(assessment), code)
        for op_id, code, assessment, cls in rows
    ]


def create_plan(session: Session, *, scope: Scope, data: PlanCreate) -> InspectionPlan:
    """Draw and store a reproducible plan; operators drawn earlier in the period count and are not redrawn."""
    path = area_in_scope(session, scope, data.jurisdiction_code)
    try:
        rates = InspectionRates(**(data.rates.model_dump() if data.rates else {}))
    except ValueError as exc:
        raise AppError(422, "invalid_rates", "抽查比例无效：信用等级越低，比例不得越小", str(exc)) from exc
    # An unforeseeable seed drawn now and stored with the plan: auditable afterwards, unpredictable before.
    seed = data.seed if data.seed is not None else secrets.randbits(63)
    candidates = _candidates(session, path)
    already = {
        str(op_id)
        for op_id in session.execute(
            _under(
                select(col(PlanEntry.operator_id))
                .join(Operator, col(Operator.id) == col(PlanEntry.operator_id))
                .where(col(PlanEntry.period_key) == data.period_key),
                path,
            )
        ).scalars()
    }
    rows = draw_plan(candidates, data.period_key, seed, rates, already_drawn=already)
    plan = InspectionPlan(
        period_key=data.period_key,
        jurisdiction_code=data.jurisdiction_code,
        seed=str(seed),
        rates={
            "untrustworthy": rates.untrustworthy,
            "basically_trustworthy": rates.basically_trustworthy,
            "trustworthy": rates.trustworthy,
        },
        created_by_id=scope.user.id,
    )
    session.add(plan)
    session.flush()
    if rows:
        try:
            session.execute(
                insert(table_of(PlanEntry)),
                [
                    {
                        "plan_id": plan.id,
                        "period_key": r.period_key,
                        "operator_id": int(r.operator_id),
                        "jurisdiction_code": r.jurisdiction_code,
                        "cls": r.cls,
                        "stratum_size": r.stratum_size,
                        "stratum_quota": r.stratum_quota,
                        "draw_ticket": r.draw_ticket,
                    }
                    for r in rows
                ],
            )
        except IntegrityError as exc:
            # Another plan for the period drew an operator concurrently; the unique key refused a second draw.
            raise conflict(
                "plan_conflict",
                "同一周期的另一抽查计划正在生成，请重试",
                "another plan for this period was drawn at the same time; try again",
            ) from exc
    audit.service.record(
        session,
        actor=scope.user,
        action="inspection_plan.create",
        entity_type="inspection_plan",
        entity_id=plan.id or 0,
        after=snapshot(plan) | {"entries": len(rows)},  # type: ignore[operator]
    )
    return plan


def plan_in_scope(session: Session, scope: Scope, plan_id: int) -> InspectionPlan:
    """A plan whose jurisdiction lies in the scope; 404 otherwise."""
    return load_scoped(session, scope, InspectionPlan, plan_id, PLAN, via="jurisdiction")


def plan_entries(session: Session, plan_id: int) -> list[tuple[PlanEntry, str, str]]:
    """A plan's entries with each operator's name and code, in the order bureaus work them."""
    rows = session.execute(
        select(PlanEntry, col(Operator.name), col(Operator.uscc))
        .join(Operator, col(Operator.id) == col(PlanEntry.operator_id))
        .where(col(PlanEntry.plan_id) == plan_id)
    ).all()
    entries = [(e, name, uscc) for e, name, uscc in rows]
    entries.sort(key=lambda t: (t[0].jurisdiction_code, t[0].cls.rank, t[0].operator_id))
    return entries


def plan_rows(entries: Sequence[PlanEntry]) -> list[PlanRow]:
    """Entries as the plan module's rows, for the CSV export."""
    return [
        PlanRow(
            period_key=e.period_key,
            jurisdiction_code=e.jurisdiction_code,
            operator_id=str(e.operator_id),
            cls=e.cls,
            stratum_size=e.stratum_size,
            stratum_quota=e.stratum_quota,
            draw_ticket=e.draw_ticket,
        )
        for e in entries
    ]


def list_plans(
    session: Session, scope: Scope, *, period_key: str | None, limit: int, offset: int
) -> tuple[list[tuple[InspectionPlan, int]], int]:
    """Plans for jurisdictions in the scope, newest first, with their entry counts."""
    counts = (
        select(col(PlanEntry.plan_id), func.count().label("n")).group_by(col(PlanEntry.plan_id)).subquery()
    )
    stmt = (
        select(InspectionPlan, func.coalesce(counts.c.n, 0))
        .join(Jurisdiction, col(Jurisdiction.code) == col(InspectionPlan.jurisdiction_code))
        .outerjoin(counts, counts.c.plan_id == col(InspectionPlan.id))
        .where(col(Jurisdiction.path).startswith(scope.path))
    )
    if period_key is not None:
        stmt = stmt.where(col(InspectionPlan.period_key) == period_key)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(stmt.order_by(col(InspectionPlan.id).desc()).limit(limit).offset(offset)).all()
    return [(p, int(n)) for p, n in rows], total


# --- reminders and interviews (Art. 11, 12(2)) -----------------------------------------------------------


def schedule_interview(session: Session, *, scope: Scope, data: InterviewCreate) -> Interview:
    """Schedule a reminder or interview; the operator is notified and asked to acknowledge."""
    operator = operator_service.get_in_scope(session, scope, data.operator_id)
    if data.scheduled_at is not None and data.scheduled_at < utcnow() - timedelta(minutes=5):
        raise AppError(
            422, "scheduled_in_past", "约谈时间不能早于现在", "the interview cannot be scheduled in the past"
        )
    if data.kind is InterviewKind.interview:
        # The place goes into the summons SMS: refuse one the provider's variable limit would refuse later.
        sms_templates.check_input("interview_scheduled", {"place": data.place})
    cls = rating.current(session, operator).cls
    interview = Interview(
        operator_id=operator.id or 0,
        kind=data.kind,
        scheduled_at=data.scheduled_at,
        place=data.place,
        subject=data.subject,
        legal_basis=data.legal_basis or INTERVIEW_BASIS[cls],
        class_at_scheduling=cls,
        created_by_id=scope.user.id,
    )
    session.add(interview)
    session.flush()
    _interview_changed(session, interview, "schedule", None, scope.user)
    return interview


def _interview_changed(
    session: Session, interview: Interview, verb: str, before: dict[str, Any] | None, actor: Any
) -> None:
    audit.service.record(
        session,
        actor=actor,
        action=f"interview.{verb}",
        entity_type="interview",
        entity_id=interview.id or 0,
        before=before,
        after=snapshot(interview),
    )
    # Acknowledgement and outcome change nothing anybody must be told or do: no event.
    topics: dict[str, Topic] = {"schedule": "interview.scheduled", "cancel": "interview.cancelled"}
    topic = topics.get(verb)
    if topic is None:
        return
    emit(
        session,
        topic,
        {"interview_id": interview.id, "operator_id": interview.operator_id, "kind": interview.kind.value},
        dedupe_key=f"{topic}:{interview.id}",
    )


def _move(
    session: Session,
    interview: Interview,
    verb: str,
    allowed: frozenset[InterviewStatus],
    actor: Any,
    **changes: Any,
) -> Interview:
    if interview.status not in allowed:
        raise conflict(
            "invalid_interview_state",
            f"约谈当前状态为“{interview.status.value}”，不能执行该操作",
            f"an interview in state {interview.status.value!r} cannot be changed this way",
            {"status": interview.status.value},
        )
    before = snapshot(interview)
    for key, value in changes.items():
        setattr(interview, key, value)
    interview.updated_at = utcnow()
    session.add(interview)
    session.flush()
    _interview_changed(session, interview, verb, before, actor)
    return interview


_OPEN = frozenset({InterviewStatus.scheduled, InterviewStatus.acknowledged})


def acknowledge_interview(session: Session, interview: Interview, *, user: Account) -> Interview:
    """The operator's user confirms it has received the reminder or summons."""
    if user.operator_id != interview.operator_id:
        raise not_found(*INTERVIEW)
    return _move(
        session,
        interview,
        "acknowledge",
        frozenset({InterviewStatus.scheduled}),
        user,
        status=InterviewStatus.acknowledged,
        acknowledged_at=utcnow(),
        acknowledged_by_id=user.id,
    )


def record_outcome(session: Session, interview: Interview, *, scope: Scope, outcome: str) -> Interview:
    """Staff record what came of it; the interview is then held."""
    return _move(
        session,
        interview,
        "outcome",
        _OPEN,
        scope.user,
        status=InterviewStatus.held,
        outcome=outcome,
        decided_at=utcnow(),
    )


def cancel_interview(session: Session, interview: Interview, *, scope: Scope, reason: str) -> Interview:
    """Staff cancel an interview that has not been held."""
    return _move(
        session,
        interview,
        "cancel",
        _OPEN,
        scope.user,
        status=InterviewStatus.cancelled,
        cancel_reason=reason,
        decided_at=utcnow(),
    )


def list_interviews(
    session: Session,
    scope: Scope,
    *,
    operator_id: int | None,
    status: InterviewStatus | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Interview], int]:
    """Interviews of operators in the scope, newest first."""
    stmt = _under(
        select(Interview).join(Operator, col(Operator.id) == col(Interview.operator_id)), scope.path
    )
    if operator_id is not None:
        stmt = stmt.where(col(Interview.operator_id) == operator_id)
    if status is not None:
        stmt = stmt.where(col(Interview.status) == status)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(stmt.order_by(col(Interview.id).desc()).limit(limit).offset(offset)).scalars()
    return list(rows), total


def interviews_of(session: Session, operator_id: int) -> Sequence[Interview]:
    """An operator's reminders and interviews, newest first."""
    return (
        session.execute(
            select(Interview)
            .where(col(Interview.operator_id) == operator_id)
            .order_by(col(Interview.id).desc())
        )
        .scalars()
        .all()
    )


def own_interview(session: Session, user: Account, interview_id: int) -> Interview:
    """One of the operator user's interviews; 404 for anyone else's."""
    interview = session.get(Interview, interview_id)
    if interview is None or interview.operator_id != user.operator_id:
        raise not_found(*INTERVIEW)
    return interview


# --- department notices (Art. 12(3)) ------------------------------------------------------------------------


def record_notice(session: Session, *, scope: Scope, data: NoticeCreate) -> DepartmentNotice:
    """Record a notice sent to another department about an operator in the scope."""
    operator = operator_service.get_in_scope(session, scope, data.operator_id)
    if data.sent_at > utcnow() + timedelta(minutes=5):
        raise AppError(422, "sent_in_future", "发送时间不能晚于现在", "sent_at cannot be in the future")
    notice = DepartmentNotice(
        operator_id=operator.id or 0,
        department=data.department,
        sent_at=data.sent_at,
        content=data.content,
        channel=data.channel,
        created_by_id=scope.user.id,
    )
    session.add(notice)
    session.flush()
    audit.service.record(
        session,
        actor=scope.user,
        action="department_notice.create",
        entity_type="department_notice",
        entity_id=notice.id or 0,
        after=snapshot(notice),
    )
    return notice


def list_notices(
    session: Session, scope: Scope, *, operator_id: int | None, limit: int, offset: int
) -> tuple[Sequence[DepartmentNotice], int]:
    """Notices about operators in the scope, newest first."""
    stmt = _under(
        select(DepartmentNotice).join(Operator, col(Operator.id) == col(DepartmentNotice.operator_id)),
        scope.path,
    )
    if operator_id is not None:
        stmt = stmt.where(col(DepartmentNotice.operator_id) == operator_id)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.order_by(col(DepartmentNotice.sent_at).desc(), col(DepartmentNotice.id).desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(rows), total
