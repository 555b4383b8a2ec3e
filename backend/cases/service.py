"""Case handling: routing a complaint into a case, every step of its handling, transfers, deadlines.

Every step is one transaction that changes the case, appends to the staff history (``CaseEvent``) and to the
filer's timeline (``ComplaintEvent``, without staff identity), writes the audit entry, and emits the outbox
events the notification handlers expect (``case.assigned``, ``case.outcome``, ``case.progress``;
``case.overdue`` comes from the deadline sweep, which tells the filer through :func:`tell_filer` too).
Services flush, never commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import SYSTEM, Actor, snapshot
from backend.auth.models import Account
from backend.auth.scope import Scope
from backend.cases import figures, routing
from backend.cases.deadlines import (
    COMPLAINT_ACCEPTANCE,
    DEFAULT_CALENDAR,
    MEDIATION_END,
    MEDIATION_TERMINATION_NOTICE,
    TIP_OFF_CASE_FILING,
    DeadlineSpec,
    compute_deadline,
    paused_due_date,
)
from backend.cases.models import (
    ArbitrationResult,
    ArbitrationVerification,
    Case,
    CaseAction,
    CaseDeadline,
    CaseEvent,
    CaseKind,
    CaseOutcome,
    CaseState,
    HandledBy,
    NoticeMethod,
    PauseCause,
    RejectionReason,
)
from backend.common.scoped import load_scoped
from backend.complaints import service as complaints
from backend.complaints.models import (
    Complaint,
    ComplaintPhoto,
    ComplaintSource,
    ComplaintStatus,
    RoutingStatus,
)
from backend.config import get_settings
from backend.dates import bureau_date, bureau_zone
from backend.db import utcnow
from backend.errors import AppError, conflict, not_found
from backend.jurisdictions import service as jurisdictions
from backend.jurisdictions.models import DivisionLevel, Jurisdiction
from backend.operators import service as operators
from backend.operators.models import Operator
from backend.outbox.service import emit
from backend.records import service as records
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import INSTRUMENT_KINDS, RecordKind, RecordState

#: The deadline that runs from receipt until the acceptance (or case-filing) decision, per kind of case.
ACCEPTANCE_SPECS: dict[CaseKind, DeadlineSpec] = {
    CaseKind.complaint: COMPLAINT_ACCEPTANCE,
    CaseKind.tip_off: TIP_OFF_CASE_FILING,
}
#: The deadline that runs from acceptance until a finding; a tip-off's filed case follows the penalty
#: procedure, whose periods are outside this product.
HANDLING_SPECS: dict[CaseKind, DeadlineSpec | None] = {
    CaseKind.complaint: MEDIATION_END,
    CaseKind.tip_off: None,
}
#: What a missing or out-of-scope case is called in the 404.
CASE = ("案件", "case")
_ACCEPTANCE_KEYS = frozenset(spec.key for spec in ACCEPTANCE_SPECS.values())
_HANDLING_KEYS = frozenset(spec.key for spec in HANDLING_SPECS.values() if spec is not None)
#: The deadlines the filer was promised: when one passes, the filer is told the case went up for supervision.
FILER_DEADLINES = _ACCEPTANCE_KEYS | _HANDLING_KEYS

#: Which states each step starts from.
TRANSITIONS: dict[CaseAction, frozenset[CaseState]] = {
    CaseAction.accepted: frozenset({CaseState.routed}),
    CaseAction.rejected: frozenset({CaseState.routed}),
    CaseAction.investigating: frozenset({CaseState.accepted}),
    CaseAction.substantiated: frozenset({CaseState.investigating}),
    CaseAction.unsubstantiated: frozenset({CaseState.investigating}),
    CaseAction.mediated: frozenset({CaseState.accepted, CaseState.investigating}),
    CaseAction.closed: frozenset(
        {
            CaseState.not_accepted,
            CaseState.substantiated,
            CaseState.unsubstantiated,
            CaseState.mediated,
            # Closing before a finding ends the handling without one (terminated).
            CaseState.accepted,
            CaseState.investigating,
        }
    ),
    CaseAction.reopened: frozenset(
        {
            CaseState.not_accepted,
            CaseState.substantiated,
            CaseState.unsubstantiated,
            CaseState.mediated,
            CaseState.closed,
        }
    ),
    CaseAction.transferred: frozenset({CaseState.routed, CaseState.accepted, CaseState.investigating}),
}
_TERMINABLE = frozenset({CaseState.accepted, CaseState.investigating})

#: What the filer sees for each case state.
COMPLAINT_STATUS: dict[CaseState, ComplaintStatus] = {
    CaseState.routed: ComplaintStatus.routed,
    CaseState.accepted: ComplaintStatus.accepted,
    CaseState.not_accepted: ComplaintStatus.rejected,
    CaseState.investigating: ComplaintStatus.investigating,
    CaseState.substantiated: ComplaintStatus.substantiated,
    CaseState.unsubstantiated: ComplaintStatus.unsubstantiated,
    CaseState.mediated: ComplaintStatus.mediated,
    CaseState.closed: ComplaintStatus.closed,
}

REJECTION_LABELS: dict[RejectionReason, tuple[str, str]] = {
    RejectionReason.out_of_time: ("超过投诉时效", "filed after the time limit for complaints"),
    RejectionReason.contact_missing: (
        "未提供真实身份、联系方式等必要信息",
        "identity, contact details or other required information missing",
    ),
    RejectionReason.handled_elsewhere: (
        "已由其他机构受理或处理",
        "already accepted or handled by another body",
    ),
    RejectionReason.not_metrology: ("不属于计量监督管理事项", "not a metrology supervision matter"),
    RejectionReason.duplicate: ("属于重复投诉", "a duplicate of an earlier complaint"),
}
HANDLED_BY_LABELS: dict[HandledBy, tuple[str, str]] = {
    HandledBy.court: ("人民法院", "a court"),
    HandledBy.arbitration: ("仲裁机构", "an arbitration body"),
    HandledBy.consumer_association: ("消费者协会", "a consumer association"),
}


def rejection_reasons() -> list[
    tuple[RejectionReason, tuple[str, str], list[tuple[HandledBy, tuple[str, str]]]]
]:
    """The list staff choose from when not accepting a complaint, with labels and the bodies each may name."""
    return [
        (
            reason,
            label,
            list(HANDLED_BY_LABELS.items()) if reason is RejectionReason.handled_elsewhere else [],
        )
        for reason, label in REJECTION_LABELS.items()
    ]


#: Record kinds a substantiation may add to ``complaint_substantiated`` when the findings say so (Art. 8).
FINDING_KINDS = frozenset(
    {
        RecordKind.SHORT_WEIGHT,
        RecordKind.METROLOGY_CHEATING,
        RecordKind.INSTRUMENT_UNVERIFIED,
        RecordKind.INSTRUMENT_FAILED_VERIFICATION,
        RecordKind.INSTRUMENT_OVERDUE,
        RecordKind.NET_CONTENT_NONCOMPLIANT,
    }
)


# ---- helpers ----------------------------------------------------------------------------------------------


def aware(at: datetime) -> datetime:
    """An instant with its offset (SQLite hands back naive values; everything is stored in UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


#: The bureau-local date of an instant (the one date function).
local_date = bureau_date


def case_no(kind: CaseKind, received_at: datetime, complaint_id: int) -> str:
    """The case number: 投诉 TS / 举报 JB, the year of receipt, the complaint's number (unique, 1:1)."""
    return complaints.case_number(
        tip_off=kind is CaseKind.tip_off, received_at=received_at, complaint_id=complaint_id
    )


def bureau_label(session: Session, code: str | None) -> tuple[str, str]:
    """The bureau of a jurisdiction as the filer reads it, in Chinese and English."""
    jurisdiction = session.get(Jurisdiction, code) if code else None
    if jurisdiction is None:
        return "市场监督管理部门", "the market regulation bureau"
    return jurisdiction.bureau_name, f"{jurisdiction.bureau_name} ({jurisdiction.code})"


def locked_case(session: Session, case_id: int) -> Case | None:
    """The case re-read under a row lock, or None."""
    # FOR UPDATE on PostgreSQL (SQLite serialises writers already): two staff clicking the same step, or the
    # sweep meeting a decision, take turns and the second sees the first one's state.
    return session.execute(
        select(Case)
        .where(col(Case.id) == case_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def lock(session: Session, case: Case) -> Case:
    """Re-read ``case`` under a row lock before changing it."""
    locked = locked_case(session, case.id or 0)
    if locked is None:
        raise not_found("案件", "case")
    return locked


#: Which column of the case holds the ancestor at each level of the division tree.
LEVEL_COLUMNS: dict[DivisionLevel, str] = {
    DivisionLevel.province: "province_code",
    DivisionLevel.prefecture: "prefecture_code",
    DivisionLevel.county: "county_code",
}


def place(session: Session, case: Case, code: str | None) -> None:
    """Put the case in a jurisdiction, with its ancestors by level for the scope filters."""
    case.jurisdiction_code = code
    case.province_code = case.prefecture_code = case.county_code = None
    jurisdiction = session.get(Jurisdiction, code) if code is not None else None
    if jurisdiction is None:
        return
    for division in (*jurisdictions.ancestors(session, jurisdiction), jurisdiction):
        setattr(case, LEVEL_COLUMNS[division.level], division.code)


def _deadline_row(
    session: Session, spec: DeadlineSpec, start: datetime, jurisdiction_code: str | None
) -> CaseDeadline:
    # The figure that applies where the case is when the deadline opens (a bureau's rule, the deployment's).
    applied = figures.effective(session, spec, jurisdiction_code)
    spec = applied.spec
    computed = compute_deadline(spec, aware(start), get_settings().timezone)
    return CaseDeadline(
        case_id=0,
        key=spec.key,
        start_date=computed.start_date,
        due_on=computed.due_date,
        # Stored in UTC like every instant: SQLite would otherwise keep the local wall time as if it were UTC.
        due_before=computed.due_before.astimezone(UTC),
        working_days=computed.working_days,
        calendar_exact=computed.calendar_exact,
        legal_basis_zh=spec.legal_basis_zh,
        legal_basis_en=spec.legal_basis_en,
        basis_superseded=computed.basis_superseded,
        basis_source=applied.source.value,
        extension_working_days=spec.extension_working_days,
        pausable=spec.pausable,
    )


def _open_deadline(session: Session, case: Case, spec: DeadlineSpec, start: datetime) -> CaseDeadline:
    row = _deadline_row(session, spec, start, case.jurisdiction_code)
    row.case_id = case.id or 0
    session.add(row)
    return row


def open_deadlines(session: Session, case_id: int) -> list[CaseDeadline]:
    """The case's deadlines still running, earliest first."""
    return list(
        session.execute(
            select(CaseDeadline)
            .where(col(CaseDeadline.case_id) == case_id, col(CaseDeadline.ended_at).is_(None))
            .order_by(col(CaseDeadline.due_before), col(CaseDeadline.id))
        ).scalars()
    )


def _end_deadlines(
    session: Session, case: Case, keys: frozenset[str] | None, by: CaseAction, now: datetime
) -> None:
    for row in open_deadlines(session, case.id or 0):
        if keys is None or row.key in keys:
            row.ended_at, row.ended_by = now, by.value
            session.add(row)
    session.flush()


def refresh_due(session: Session, case: Case) -> None:
    """Recompute the case's due date and overdue/escalated flags from its open deadlines."""
    running = open_deadlines(session, case.id or 0)
    case.due_on = min((d.due_on for d in running), default=None)
    case.overdue = any(d.overdue_at is not None for d in running)
    if not case.overdue:
        # Escalation lasts while something is overdue; escalated_at and the history keep that it happened.
        case.escalated, case.escalated_to = False, None


def _actor_role(actor: Actor) -> str:
    return str(actor.role)


def _event(
    session: Session,
    case: Case,
    action: CaseAction,
    *,
    from_state: CaseState | None,
    actor: Actor,
    reason: str = "",
    details: dict[str, Any] | None = None,
    moved: tuple[str | None, str | None] | None = None,
) -> CaseEvent:
    # A step happens where the case is; a transfer says where from (None: the national queue) and where to.
    from_code, to_code = moved if moved is not None else (case.jurisdiction_code, case.jurisdiction_code)
    event = CaseEvent(
        case_id=case.id or 0,
        action=action,
        from_state=from_state,
        to_state=case.state,
        from_jurisdiction=from_code,
        to_jurisdiction=to_code,
        reason=reason,
        details=details or {},
        actor_id=actor.id,
        actor_role=_actor_role(actor),
    )
    session.add(event)
    session.flush()
    return event


def _assigned(session: Session, case: Case, dedupe: str) -> None:
    """Tell the bureau's staff a case reached them (the notification handler's ``case.assigned`` contract)."""
    if case.jurisdiction_code is None or case.due_on is None:
        return  # the national triage queue: admins work it from the list, nobody is bound to it
    emit(
        session,
        "case.assigned",
        {
            "case_id": case.id,
            "case_no": case.case_no,
            "jurisdiction_code": case.jurisdiction_code,
            "due_on": case.due_on.isoformat(),
        },
        dedupe_key=f"case.assigned:{case.id}:{dedupe}",
    )


def tell_filer(
    session: Session,
    case: Case,
    step: str,
    *,
    jurisdiction_code: str | None,
    due_on: date | None = None,
) -> None:
    """Tell the filer (consumer or supervisor) a step they were promised (``case.progress``): ``accepted``,
    ``transferred`` (to ``jurisdiction_code``) or ``escalated`` (to it, after ``due_on`` passed)."""
    payload: dict[str, Any] = {
        "case_id": case.id,
        "complaint_id": case.complaint_id,
        "case_no": case.case_no,
        "step": step,
        "jurisdiction_code": jurisdiction_code,
    }
    if due_on is not None:
        payload["due_on"] = due_on.isoformat()
    emit(session, "case.progress", payload, dedupe_key=f"case.progress:{case.id}:v{case.version}:{step}")


# ---- routing ----------------------------------------------------------------------------------------------


def _routed_note(session: Session, outcome: routing.RoutingOutcome) -> tuple[str, str]:
    zh, en = bureau_label(session, outcome.jurisdiction_code)
    if outcome.jurisdiction_code is None:
        return (
            "暂未能确定管辖部门，正由工作人员人工分派",
            "The responsible bureau could not be determined yet; staff are routing it by hand",
        )
    if outcome.triage:
        return f"暂未能确定属地县级部门，已转交{zh}分拣", f"Sent to {en} to find the responsible local bureau"
    return f"已转交{zh}办理", f"Forwarded to {en}"


def route_complaint(session: Session, complaint_id: int, *, final_attempt: bool = False) -> Case | None:
    """Route a complaint into a case (rules 1-6); returns the existing case when it is already routed."""
    # routing.GeocoderRetry escapes when an address-only report meets a configured geocoder that failed
    # transiently and this is not the final attempt: the task retries, and its last attempt triages instead.
    complaint = session.execute(
        select(Complaint)
        .where(col(Complaint.id) == complaint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if complaint is None:
        return None
    existing: Case | None = session.execute(
        select(Case).where(col(Case.complaint_id) == complaint_id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    outcome = routing.decide(session, complaint, final_attempt=final_attempt)
    now = utcnow()
    complaint.routing_status = RoutingStatus.needs_review if outcome.triage else RoutingStatus.routed
    complaint.jurisdiction_code = outcome.jurisdiction_code
    complaint.routing_rule = outcome.rule
    complaint.routing_reason_code = outcome.reason.code
    complaint.routing_reason_zh = outcome.reason.zh[:500]
    complaint.routing_reason_en = outcome.reason.en[:500]
    complaint.routing_candidates = outcome.candidates
    complaint.routing_low_confidence = outcome.low_confidence
    complaint.location_mismatch = outcome.location_mismatch
    complaint.operator_distance_m = outcome.operator_distance_m
    complaint.routed_at = now
    complaint.status = ComplaintStatus.routed
    complaint.updated_at = now
    session.add(complaint)
    kind = CaseKind.tip_off if complaint.source == ComplaintSource.supervisor else CaseKind.complaint
    case = Case(
        case_no=case_no(kind, complaint.created_at, complaint_id),
        complaint_id=complaint_id,
        kind=kind,
        state=CaseState.routed,
        triage=outcome.triage,
        operator_id=complaint.operator_id,
        received_at=aware(complaint.created_at),
    )
    place(session, case, outcome.jurisdiction_code)
    # The case's only deadline so far: its due date is known before the case is written, saving an UPDATE.
    deadline = _deadline_row(session, ACCEPTANCE_SPECS[kind], complaint.created_at, case.jurisdiction_code)
    case.due_on = deadline.due_on
    session.add(case)
    session.flush()
    deadline.case_id = case.id or 0
    session.add(deadline)
    _event(session, case, CaseAction.routed, from_state=None, actor=SYSTEM, details=outcome.as_dict())
    complaints.add_event(session, complaint, ComplaintStatus.routed, *_routed_note(session, outcome))
    audit.service.record(
        session,
        actor=SYSTEM,
        action="case.route",
        entity_type="case",
        entity_id=case.id or 0,
        after={**(snapshot(case) or {}), "routing": outcome.as_dict()},
    )
    _assigned(session, case, "routed")
    return case


# ---- steps ------------------------------------------------------------------------------------------------


def invalid_transition(case: Case, action: CaseAction, detail_en: str | None = None) -> AppError:
    """The 409 for a step the case's state does not allow."""
    allowed = sorted(s.value for s in TRANSITIONS[action])
    return conflict(
        "invalid_transition",
        f"案件当前状态为“{case.state.value}”，不能执行“{action.value}”",
        detail_en or f"a case in state {case.state.value!r} cannot go to {action.value!r}",
        {"state": case.state.value, "action": action.value, "allowed_from": allowed},
    )


def _check(case: Case, action: CaseAction) -> None:
    if case.state not in TRANSITIONS[action]:
        raise invalid_transition(case, action)


@dataclass(frozen=True)
class Step:
    """One step to apply: the new state, what the filer reads, what is told and recorded."""

    action: CaseAction
    to_state: CaseState
    note_zh: str
    note_en: str
    reason: str = ""
    details: dict[str, Any] | None = None
    outcome: CaseOutcome | None = None
    # Deadlines the step ends (None: all of them).
    ends: frozenset[str] | None = frozenset()
    # A deadline the step starts, counted from the step itself.
    opens: DeadlineSpec | None = None
    update: Callable[[Case, datetime], None] | None = None
    # Whether the filer is told of the step as it happens (outcomes are told through ``case.outcome``).
    tells_filer: bool = False


def _apply(session: Session, case: Case, step: Step, *, actor: Actor, request_id: str | None) -> Case:
    """Apply a step: state, deadlines, history, the filer's timeline, the audit entry and the outbox."""
    _check(case, step.action)
    before = snapshot(case)
    from_state = case.state
    now = utcnow()
    if step.update is not None:
        step.update(case, now)
    case.state = step.to_state
    if step.outcome is not None:
        case.outcome, case.decided_at = step.outcome, now
    if step.to_state is CaseState.closed:
        case.closed_at = now
    case.version += 1
    case.updated_at = now
    if step.ends is None or step.ends:
        _end_deadlines(session, case, step.ends, step.action, now)
    if step.opens is not None:
        _open_deadline(session, case, step.opens, now)
    refresh_due(session, case)
    session.add(case)
    session.flush()
    complaint = session.get(Complaint, case.complaint_id)
    assert complaint is not None
    complaint.status = COMPLAINT_STATUS[case.state]
    complaint.updated_at = now
    session.add(complaint)
    _event(
        session,
        case,
        step.action,
        from_state=from_state,
        actor=actor,
        reason=step.reason,
        details=step.details,
    )
    complaints.add_event(session, complaint, complaint.status, step.note_zh, step.note_en)
    audit.service.record(
        session,
        actor=actor,
        action=f"case.{step.action.value}",
        entity_type="case",
        entity_id=case.id or 0,
        before=before,
        after=snapshot(case),
        request_id=request_id,
    )
    if step.tells_filer:
        tell_filer(session, case, step.action.value, jurisdiction_code=case.jurisdiction_code)
    if step.outcome is not None:
        emit(
            session,
            "case.outcome",
            {
                "case_id": case.id,
                "case_no": case.case_no,
                "complaint_id": case.complaint_id,
                "jurisdiction_code": case.jurisdiction_code,
                "outcome": step.outcome.value,
            },
            dedupe_key=f"case.outcome:{case.id}:v{case.version}",
        )
    return case


def accept(
    session: Session, case: Case, *, actor: Actor, note: str = "", request_id: str | None = None
) -> Case:
    """Accept the case (受理): the acceptance deadline is met and, for a complaint, the 45 days begin."""
    case = lock(session, case)
    _check(case, CaseAction.accepted)

    def update(c: Case, now: datetime) -> None:
        c.accepted_at = now
        c.assignee_id = actor.id if isinstance(actor, Account) else None

    bureau_zh, bureau_en = bureau_label(session, case.jurisdiction_code)
    return _apply(
        session,
        case,
        Step(
            CaseAction.accepted,
            CaseState.accepted,
            f"{bureau_zh}已受理",
            f"Accepted by {bureau_en}",
            reason=note,
            ends=_ACCEPTANCE_KEYS,
            opens=HANDLING_SPECS[case.kind],
            update=update,
            tells_filer=True,
        ),
        actor=actor,
        request_id=request_id,
    )


def reject(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    scope: Scope,
    reason: RejectionReason,
    handled_by: HandledBy | None = None,
    duplicate_of_case_id: int | None = None,
    note: str = "",
    request_id: str | None = None,
) -> Case:
    """Decide not to accept (不予受理) for one of the listed reasons; the filer is told why."""
    case = lock(session, case)
    _check(case, CaseAction.rejected)
    if (reason is RejectionReason.handled_elsewhere) != (handled_by is not None):
        raise AppError(
            422,
            "handled_by_required" if handled_by is None else "handled_by_not_applicable",
            "“已由其他机构处理”须注明机构（法院、仲裁机构或消费者协会），其他理由不得注明",
            "handled_elsewhere needs handled_by (court, arbitration or consumer_association); other reasons "
            "take none",
        )
    if duplicate_of_case_id is not None:
        if reason is not RejectionReason.duplicate or duplicate_of_case_id == case.id:
            raise AppError(
                422,
                "duplicate_of_not_applicable",
                "仅“重复投诉”可引用另一案件，且不能引用本案",
                "only a duplicate refers to another case, never to itself",
            )
        try:
            get_in_scope(session, scope, duplicate_of_case_id)
        except AppError:
            raise AppError(
                422,
                "unknown_case",
                "所引用的案件不存在或不在您的辖区内",
                "the case referred to does not exist in your jurisdiction",
                {"duplicate_of_case_id": duplicate_of_case_id},
            ) from None
    label_zh, label_en = REJECTION_LABELS[reason]
    if handled_by is not None:
        by_zh, by_en = HANDLED_BY_LABELS[handled_by]
        label_zh, label_en = f"已由{by_zh}受理或处理", f"already accepted or handled by {by_en}"

    def update(c: Case, _now: datetime) -> None:
        c.rejection_reason, c.handled_by, c.duplicate_of_id = reason, handled_by, duplicate_of_case_id

    return _apply(
        session,
        case,
        Step(
            CaseAction.rejected,
            CaseState.not_accepted,
            f"不予受理：{label_zh}",
            f"Not accepted: {label_en}",
            reason=note,
            details={"reason": reason.value, "handled_by": handled_by.value if handled_by else None},
            outcome=CaseOutcome.not_accepted,
            ends=_ACCEPTANCE_KEYS,
            update=update,
        ),
        actor=actor,
        request_id=request_id,
    )


def investigate(
    session: Session, case: Case, *, actor: Actor, note: str = "", request_id: str | None = None
) -> Case:
    """Start the investigation (调查核实)."""
    case = lock(session, case)
    return _apply(
        session,
        case,
        Step(
            CaseAction.investigating,
            CaseState.investigating,
            "已进入调查核实",
            "Under investigation",
            reason=note,
        ),
        actor=actor,
        request_id=request_id,
    )


@dataclass(frozen=True)
class Substantiation:
    """What the investigation established, for the records it creates (Art. 8, 13)."""

    findings: str
    fact_date: date | None = None
    operator_id: int | None = None
    record_kinds: tuple[RecordKind, ...] = ()
    instrument_id: int | None = None
    instrument_still_in_use: bool | None = None
    evidence_refs: tuple[str, ...] = ()


def pending_arbitrations(session: Session, case_id: int) -> list[ArbitrationVerification]:
    """The case's arbitration verifications (Art. 14(3)) still waiting for a result."""
    return list(
        session.execute(
            select(ArbitrationVerification).where(
                col(ArbitrationVerification.case_id) == case_id,
                col(ArbitrationVerification.result) == ArbitrationResult.pending,
            )
        ).scalars()
    )


def _refuse_while_arbitration_pending(session: Session, case: Case) -> None:
    """409 ``arbitration_pending``: the finding waits for the arbitration result that decides it."""
    waiting = pending_arbitrations(session, case.id or 0)
    if waiting:
        raise conflict(
            "arbitration_pending",
            "仲裁检定结果尚未出具，待结果出具后再作认定",
            "an arbitration verification is pending: its result decides the finding",
            {"arbitration_ids": [a.id for a in waiting]},
        )


def _operator_for(session: Session, case: Case, scope: Scope, operator_id: int | None) -> Operator:
    if case.operator_id is not None:
        if operator_id is not None and operator_id != case.operator_id:
            raise AppError(
                422,
                "operator_mismatch",
                "投诉已指明经营者，查实的经营者与之不同时请先移送或另行立案",
                "the complaint already names a different operator",
                {"case_operator_id": case.operator_id},
            )
        operator = session.get(Operator, case.operator_id)
        if operator is None:
            raise not_found("经营者", "operator")
        return operator
    if operator_id is None:
        raise AppError(
            422,
            "operator_required",
            "投诉未指明经营者，查实时须注明被查实的经营者",
            "the complaint names no operator: say which operator the investigation found",
        )
    return operators.get_in_scope(session, scope, operator_id)


def _record_kinds(case: Case, extra: Iterable[RecordKind]) -> list[RecordKind]:
    kinds: list[RecordKind] = []
    # Art. 13(4) counts consumer complaints; a volunteer's patrol report is not one, only what it found is.
    if case.kind is CaseKind.complaint:
        kinds.append(RecordKind.COMPLAINT_SUBSTANTIATED)
    for kind in extra:
        if kind not in FINDING_KINDS:
            raise AppError(
                422,
                "record_kind_not_allowed",
                "查实只能附加缺斤短两、计量作弊、计量器具或净含量类记录",
                "a substantiation may add only short weight, cheating, instrument or net-content records",
                {"kind": kind.value, "allowed": sorted(k.value for k in FINDING_KINDS)},
            )
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise AppError(
            422,
            "record_kind_required",
            "巡查报告查实时须注明查实的违法行为类型",
            "a substantiated patrol report needs at least one record kind",
        )
    return kinds


def substantiate(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    scope: Scope,
    data: Substantiation,
    request_id: str | None = None,
) -> Case:
    """Find the complaint true (经查属实): verified records through the records service, which re-rates."""
    case = lock(session, case)
    _check(case, CaseAction.substantiated)
    _refuse_while_arbitration_pending(session, case)
    operator = _operator_for(session, case, scope, data.operator_id)
    complaint = session.get(Complaint, case.complaint_id)
    assert complaint is not None
    kinds = _record_kinds(case, data.record_kinds)
    fact_date = data.fact_date or local_date(complaint.captured_at or complaint.created_at)
    photo_refs = [
        f"complaint_photo:{pid}"
        for pid in session.execute(
            select(col(ComplaintPhoto.id))
            .where(col(ComplaintPhoto.complaint_id) == complaint.id)
            .order_by(col(ComplaintPhoto.position))
        ).scalars()
    ]
    evidence = [f"case:{case.case_no}", f"complaint:{complaint.id}", *photo_refs, *data.evidence_refs]
    instrument_id = data.instrument_id if data.instrument_id is not None else complaint.instrument_id
    source = RecordSource.supervisor if case.kind is CaseKind.tip_off else RecordSource.complaint
    made: list[IntegrityRecord] = []
    for kind in kinds:
        is_instrument = kind in INSTRUMENT_KINDS
        made.append(
            records.create(
                session,
                operator=operator,
                kind=kind,
                fact_date=fact_date,
                source=source,
                source_ref=f"complaint:{complaint.id}",
                state=RecordState.VERIFIED,
                summary=f"案件 {case.case_no} 经调查核实：{data.findings}",
                evidence_refs=evidence,
                instrument_id=instrument_id if is_instrument else None,
                instrument_still_in_use=data.instrument_still_in_use if is_instrument else None,
                actor=actor,
                reason="投诉举报经调查核实（第十三条） / substantiated by investigation (Art. 13)",
                notice=False,
            )
        )
    record_ids = [r.id or 0 for r in made]
    # One finding, one notice to the operator, however many record kinds it makes.
    records.decided(
        session,
        operator_id=operator.id or 0,
        records=made,
        jurisdiction_code=case.jurisdiction_code,
        dedupe=f"case:{case.id}:v{case.version}",
    )

    def update(c: Case, _now: datetime) -> None:
        c.findings = data.findings
        c.operator_id = operator.id
        c.record_ids = sorted({*c.record_ids, *record_ids})

    return _apply(
        session,
        case,
        Step(
            CaseAction.substantiated,
            CaseState.substantiated,
            "经调查核实，投诉反映的问题属实，已依法记入经营者诚信计量档案",
            "The investigation found the complaint substantiated; it is entered in the operator's integrity "
            "record",
            reason=data.findings,
            details={"record_ids": record_ids, "record_kinds": [k.value for k in kinds]},
            outcome=CaseOutcome.substantiated,
            ends=_HANDLING_KEYS,
            update=update,
        ),
        actor=actor,
        request_id=request_id,
    )


def unsubstantiate(
    session: Session, case: Case, *, actor: Actor, findings: str, request_id: str | None = None
) -> Case:
    """Find the complaint not true; records an earlier substantiation of this case made are revoked."""
    case = lock(session, case)
    _check(case, CaseAction.unsubstantiated)
    _refuse_while_arbitration_pending(session, case)
    revoked: list[int] = []
    for record_id in case.record_ids:
        record = session.get(IntegrityRecord, record_id)
        if record is not None and record.state in (RecordState.REPORTED, RecordState.VERIFIED):
            records.revoke(
                session,
                record,
                actor=actor,
                reason=f"案件 {case.case_no} 重新调查后认定不属实 / case {case.case_no} found unsubstantiated "
                "on reinvestigation",
            )
            revoked.append(record_id)

    def update(c: Case, _now: datetime) -> None:
        c.findings = findings

    return _apply(
        session,
        case,
        Step(
            CaseAction.unsubstantiated,
            CaseState.unsubstantiated,
            "经调查核实，未发现投诉反映的问题",
            "The investigation did not find what the complaint reported",
            reason=findings,
            details={"revoked_record_ids": revoked},
            outcome=CaseOutcome.not_substantiated,
            ends=_HANDLING_KEYS,
            update=update,
        ),
        actor=actor,
        request_id=request_id,
    )


def mediate(
    session: Session, case: Case, *, actor: Actor, agreement: str, request_id: str | None = None
) -> Case:
    """Record a mediation agreement (调解达成协议) between the consumer and the operator."""
    case = lock(session, case)
    _check(case, CaseAction.mediated)
    if case.kind is not CaseKind.complaint:
        raise invalid_transition(
            case, CaseAction.mediated, "mediation settles a consumer's dispute; a patrol report has none"
        )

    def update(c: Case, _now: datetime) -> None:
        c.findings = agreement

    return _apply(
        session,
        case,
        Step(
            CaseAction.mediated,
            CaseState.mediated,
            "经调解，双方达成调解协议",
            "Mediation reached an agreement between you and the operator",
            reason=agreement,
            outcome=CaseOutcome.mediated,
            ends=_HANDLING_KEYS,
            update=update,
        ),
        actor=actor,
        request_id=request_id,
    )


def close(
    session: Session, case: Case, *, actor: Actor, reason: str = "", request_id: str | None = None
) -> Case:
    """Close the case (办结); closing before a finding terminates the handling and needs a reason."""
    case = lock(session, case)
    _check(case, CaseAction.closed)
    terminating = case.state in _TERMINABLE
    if terminating and not reason.strip():
        raise AppError(
            422,
            "reason_required",
            "未作出处理结论即办结（终止处理）须说明理由",
            "closing without a finding (terminating) needs a reason",
        )
    if terminating:
        # Order No. 20 Art. 21: both parties are told of the decision to end mediation within 7 working days.
        # The filer and an operator with the app are told by the notices this step emits; an operator
        # without it is told by staff, who record how (``operator_notified``) before the deadline passes.
        staff_tell = (
            case.kind is CaseKind.complaint
            and case.operator_id is not None
            and not operators.active_user_ids(session, case.operator_id)
        )
        step = Step(
            CaseAction.closed,
            CaseState.closed,
            "已终止处理并办结",
            "Handling ended without a finding; the case is closed",
            reason=reason,
            details={"terminated": True, "operator_told": "by_staff" if staff_tell else "in_app"},
            outcome=CaseOutcome.terminated,
            ends=None,
            opens=MEDIATION_TERMINATION_NOTICE if staff_tell else None,
        )
    else:
        step = Step(
            CaseAction.closed, CaseState.closed, "已办结", "The case is closed", reason=reason, ends=None
        )
    return _apply(session, case, step, actor=actor, request_id=request_id)


def reopen(session: Session, case: Case, *, actor: Actor, reason: str, request_id: str | None = None) -> Case:
    """Reopen a decided or closed case with a reason: back to the acceptance decision, or to investigation."""
    case = lock(session, case)
    _check(case, CaseAction.reopened)
    # A case never accepted goes back to the acceptance decision; any other back to investigation.
    target = CaseState.routed if case.accepted_at is None else CaseState.investigating
    note = ("已重新受理审查", "Being reconsidered for acceptance")
    if target is CaseState.investigating:
        note = ("已重新进入调查核实", "Reopened for investigation")

    def update(c: Case, _now: datetime) -> None:
        c.closed_at = None
        if target is CaseState.routed:
            c.rejection_reason, c.handled_by, c.duplicate_of_id = None, None, None

    return _apply(
        session,
        case,
        Step(
            CaseAction.reopened,
            target,
            *note,
            reason=reason,
            # Handling goes on: there is no decision to end mediation left to tell anyone about.
            ends=frozenset({MEDIATION_TERMINATION_NOTICE.key}),
            update=update,
        ),
        actor=actor,
        request_id=request_id,
    )


def operator_notified(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    method: NoticeMethod,
    note: str = "",
    request_id: str | None = None,
) -> Case:
    """Record that staff told an operator without the app that mediation was terminated (Order No. 20
    Art. 21): the 7-working-day notice deadline is met."""
    case = lock(session, case)
    running = [d for d in open_deadlines(session, case.id or 0) if d.key == MEDIATION_TERMINATION_NOTICE.key]
    if not running:
        raise AppError(
            409,
            "no_notice_due",
            "该案件没有待告知被投诉人的终止调解决定",
            "this case has no decision to end mediation waiting to be told to the operator",
        )
    before = snapshot(case)
    now = utcnow()
    _end_deadlines(
        session, case, frozenset({MEDIATION_TERMINATION_NOTICE.key}), CaseAction.operator_notified, now
    )
    refresh_due(session, case)
    case.version += 1
    case.updated_at = now
    session.add(case)
    session.flush()
    _event(
        session,
        case,
        CaseAction.operator_notified,
        from_state=case.state,
        actor=actor,
        reason=note,
        details={"method": method.value, "late": running[0].overdue_at is not None},
    )
    audit.service.record(
        session,
        actor=actor,
        action=f"case.{CaseAction.operator_notified.value}",
        entity_type="case",
        entity_id=case.id or 0,
        before=before,
        after=snapshot(case),
        request_id=request_id,
    )
    return case


# ---- the clock: extensions and pauses ----------------------------------------------------------------------


def _running_deadline(session: Session, case: Case, key: str | None, wanted: str) -> CaseDeadline:
    """The open deadline ``key``, or (no key) the only open one that can be extended/paused; 409 otherwise."""
    running = open_deadlines(session, case.id or 0)
    if key is not None:
        found = [d for d in running if d.key == key]
    else:
        found = [d for d in running if (d.extension_working_days > 0 if wanted == "extend" else d.pausable)]
    if not found:
        raise conflict(
            "no_deadline_running",
            "该案件没有正在计算的相应期限",
            "this case has no such deadline running",
            {"key": key},
        )
    return found[0]


def _recompute(row: CaseDeadline, now: datetime) -> None:
    """The row's due date from its start, working days and pauses; a deadline moved past now is not overdue."""
    pauses = [(date.fromisoformat(p["first_day"]), date.fromisoformat(p["last_day"])) for p in row.pauses]
    due = paused_due_date(row.start_date, row.working_days, pauses)
    zone = bureau_zone()
    row.due_on = due
    row.due_before = datetime.combine(due + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    row.calendar_exact = DEFAULT_CALENDAR.covers(row.start_date, due)
    if row.overdue_at is not None and aware(row.due_before) > now:
        row.overdue_at = None


def _clock_step(
    session: Session,
    case: Case,
    row: CaseDeadline,
    *,
    action: CaseAction,
    before: dict[str, Any] | None,
    was_due: date,
    actor: Actor,
    reason: str,
    details: dict[str, Any],
    request_id: str | None,
) -> Case:
    now = utcnow()
    _recompute(row, now)
    session.add(row)
    session.flush()
    refresh_due(session, case)
    case.version += 1
    case.updated_at = now
    session.add(case)
    session.flush()
    moved = {"deadline": row.key, "due_on_before": was_due.isoformat(), "due_on": row.due_on.isoformat()}
    _event(
        session, case, action, from_state=case.state, actor=actor, reason=reason, details={**moved, **details}
    )
    audit.service.record(
        session,
        actor=actor,
        action=f"case.{action.value}",
        entity_type="case",
        entity_id=case.id or 0,
        before=before,
        after={**(snapshot(case) or {}), "deadline": {**moved, **details}},
        request_id=request_id,
    )
    return case


def extend_deadline(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    reason: str,
    key: str | None = None,
    request_id: str | None = None,
) -> Case:
    """Extend a running deadline once by what its basis allows (the tip-off's 15 working days, approved by the
    bureau head: ``reason`` names the approval); 422 when the basis allows none, 409 when already extended."""
    case = lock(session, case)
    row = _running_deadline(session, case, key, "extend")
    if row.extension_working_days == 0:
        raise AppError(
            422,
            "not_extendable",
            "该期限的法定依据不允许延长",
            "the legal basis of this deadline allows no extension",
            {"key": row.key},
        )
    if row.extended:
        raise conflict(
            "already_extended", "该期限已延长过", "this deadline has already been extended", {"key": row.key}
        )
    before, was_due = snapshot(case), row.due_on
    row.working_days += row.extension_working_days
    row.extended = True
    return _clock_step(
        session,
        case,
        row,
        action=CaseAction.deadline_extended,
        before=before,
        was_due=was_due,
        actor=actor,
        reason=reason,
        details={"added_working_days": row.extension_working_days},
        request_id=request_id,
    )


#: The longest pause recorded at once: a year of testing is a data-entry error, not an appraisal.
MAX_PAUSE_DAYS = 366


def pause_deadline(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    first_day: date,
    last_day: date,
    cause: PauseCause,
    reason: str,
    key: str | None = None,
    request_id: str | None = None,
) -> Case:
    """Leave testing, inspection, quarantine or appraisal time (``first_day``-``last_day``, inclusive) out of a
    running pausable deadline: its due date moves by the working days in that time."""
    case = lock(session, case)
    row = _running_deadline(session, case, key, "pause")
    if not row.pausable:
        raise AppError(
            422,
            "not_pausable",
            "该期限的法定依据未规定检测、鉴定等时间不计入",
            "the legal basis of this deadline does not leave testing or appraisal time out",
            {"key": row.key},
        )
    if last_day < first_day or first_day <= row.start_date or (last_day - first_day).days >= MAX_PAUSE_DAYS:
        raise AppError(
            422,
            "invalid_pause",
            f"中止期间须在期限起算之后（{row.start_date.isoformat()} 之后），且不超过{MAX_PAUSE_DAYS}天",
            f"the pause must start after {row.start_date.isoformat()}, end on or after its start and last at "
            f"most {MAX_PAUSE_DAYS} days",
        )
    if first_day > row.due_on:
        raise AppError(
            422,
            "pause_after_due",
            "中止期间须在期限届满之前开始",
            "the pause must begin before the deadline ends",
            {"due_on": row.due_on.isoformat()},
        )
    for earlier in row.pauses:
        if (
            first_day <= date.fromisoformat(earlier["last_day"])
            and date.fromisoformat(earlier["first_day"]) <= last_day
        ):
            raise conflict(
                "pause_overlaps",
                "与已登记的中止期间重叠",
                "overlaps a pause already recorded",
                {"pause": earlier},
            )
    before, was_due = snapshot(case), row.due_on
    pause = {"first_day": first_day.isoformat(), "last_day": last_day.isoformat(), "cause": cause.value}
    row.pauses = [*row.pauses, pause]
    return _clock_step(
        session,
        case,
        row,
        action=CaseAction.deadline_paused,
        before=before,
        was_due=was_due,
        actor=actor,
        reason=reason,
        details={"pause": pause},
        request_id=request_id,
    )


def transfer(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    jurisdiction_code: str,
    reason: str,
    request_id: str | None = None,
) -> Case:
    """Transfer (移送) to another bureau: it decides on acceptance afresh, from the day it receives the case."""
    case = lock(session, case)
    _check(case, CaseAction.transferred)
    target = session.get(Jurisdiction, jurisdiction_code)
    if target is None:
        raise AppError(
            422,
            "unknown_jurisdiction",
            "目标辖区不存在",
            "no such jurisdiction",
            {"jurisdiction_code": jurisdiction_code},
        )
    if jurisdiction_code == case.jurisdiction_code:
        raise AppError(
            422,
            "same_jurisdiction",
            "案件已在该辖区",
            "the case is already with this jurisdiction",
            {"jurisdiction_code": jurisdiction_code},
        )
    before = snapshot(case)
    from_state, from_code = case.state, case.jurisdiction_code
    now = utcnow()
    _end_deadlines(session, case, None, CaseAction.transferred, now)
    place(session, case, jurisdiction_code)
    case.triage = False
    case.state = CaseState.routed
    case.assignee_id = None
    case.accepted_at = None
    case.version += 1
    case.updated_at = now
    session.add(case)
    session.flush()
    # Every earlier deadline has just ended: the new acceptance decision is the only one running.
    case.due_on = _open_deadline(session, case, ACCEPTANCE_SPECS[case.kind], now).due_on
    case.overdue, case.escalated, case.escalated_to = False, False, None
    session.add(case)
    complaint = session.get(Complaint, case.complaint_id)
    assert complaint is not None
    complaint.jurisdiction_code = jurisdiction_code
    complaint.routing_status = RoutingStatus.routed
    complaint.status = ComplaintStatus.routed
    complaint.updated_at = now
    session.add(complaint)
    _event(
        session,
        case,
        CaseAction.transferred,
        from_state=from_state,
        actor=actor,
        reason=reason,
        moved=(from_code, jurisdiction_code),
    )
    zh, en = bureau_label(session, jurisdiction_code)
    complaints.add_event(
        session, complaint, ComplaintStatus.routed, f"已移送{zh}办理", f"Transferred to {en}"
    )
    audit.service.record(
        session,
        actor=actor,
        action="case.transfer",
        entity_type="case",
        entity_id=case.id or 0,
        before=before,
        after={**(snapshot(case) or {}), "reason": reason},
        request_id=request_id,
    )
    _assigned(session, case, f"v{case.version}")
    tell_filer(session, case, CaseAction.transferred.value, jurisdiction_code=jurisdiction_code)
    return case


# ---- reading ----------------------------------------------------------------------------------------------


def get_in_scope(session: Session, scope: Scope, case_id: int) -> Case:
    """The case if its jurisdiction lies in the scope (the national triage queue: admins); 404 otherwise."""
    return load_scoped(session, scope, Case, case_id, CASE, via="jurisdiction")
