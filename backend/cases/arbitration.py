"""Arbitration verification (仲裁检定, Art. 14(3)): staff order one for an instrument within a case, a
verification institution (or staff) records the result, and the result decides the finding: a failed
instrument substantiates the case with an ``instrument_failed_verification`` record; a pass leaves staff to
find the complaint unsubstantiated. While one is pending, no finding can be made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import SYSTEM, Actor, snapshot
from backend.auth.models import Account, Role
from backend.auth.scope import Scope
from backend.cases import service
from backend.cases.models import (
    ArbitrationResult,
    ArbitrationVerification,
    Case,
    CaseAction,
    CaseEvent,
    CaseState,
)
from backend.complaints import service as complaints
from backend.complaints.models import Complaint
from backend.db import utcnow
from backend.errors import AppError, conflict, not_found
from backend.instruments.models import Instrument
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.records.rules import RecordKind

#: What a missing (or not yours) arbitration verification is called in the 404.
ARBITRATION = ("仲裁检定", "arbitration verification")
#: The states in which an instrument can be sent for arbitration: the case is being investigated.
ORDERABLE = frozenset({CaseState.investigating})


@dataclass(frozen=True)
class ArbitrationOutcome:
    """What the institution found."""

    passed: bool
    verified_on: date
    certificate_no: str
    notes: str = ""


def for_case(session: Session, case_id: int) -> Sequence[ArbitrationVerification]:
    """Every arbitration verification of a case, oldest first."""
    return (
        session.execute(
            select(ArbitrationVerification)
            .where(col(ArbitrationVerification.case_id) == case_id)
            .order_by(col(ArbitrationVerification.id))
        )
        .scalars()
        .all()
    )


def _institution(session: Session, institution_id: int, operator: Operator) -> Account:
    account = session.get(Account, institution_id)
    jurisdiction = session.get(Jurisdiction, operator.jurisdiction_code)
    bound = (
        session.get(Jurisdiction, account.jurisdiction_code)
        if account and account.jurisdiction_code
        else None
    )
    # An institution bound to a division verifies there; a national or provincial one without a binding anywhere.
    reaches = bound is None or (jurisdiction is not None and jurisdiction.path.startswith(bound.path))
    if account is None or account.role != Role.institution or not account.is_active or not reaches:
        raise AppError(
            422,
            "unknown_institution",
            "所选计量技术机构不存在、已停用或不承担该辖区的检定",
            "no active verification institution with this id verifies in the operator's jurisdiction",
            {"institution_id": institution_id},
        )
    return account


def order(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    instrument_id: int,
    institution_id: int,
    reason: str,
    request_id: str | None = None,
) -> ArbitrationVerification:
    """Order an arbitration verification of an instrument of the case's operator (the case is investigating)."""
    case = service.lock(session, case)
    if case.state not in ORDERABLE:
        raise conflict(
            "invalid_transition",
            "仅调查中的案件可委托仲裁检定",
            "an arbitration verification is ordered while the case is being investigated",
            {"state": case.state.value, "allowed_from": sorted(s.value for s in ORDERABLE)},
        )
    instrument = session.get(Instrument, instrument_id)
    if instrument is None or (case.operator_id is not None and instrument.operator_id != case.operator_id):
        raise AppError(
            422,
            "unknown_instrument",
            "该计量器具不存在或不属于被投诉经营者",
            "no such instrument of the operator complained about",
            {"instrument_id": instrument_id},
        )
    operator = session.get(Operator, instrument.operator_id)
    assert operator is not None
    if case.operator_id is None:
        # The complaint named no operator: the instrument's must be one the ordering staff may reach.
        scope_path = _scope_path(session, actor)
        jurisdiction = session.get(Jurisdiction, operator.jurisdiction_code)
        if jurisdiction is None or not jurisdiction.path.startswith(scope_path):
            raise AppError(
                422,
                "unknown_instrument",
                "该计量器具不存在或不属于被投诉经营者",
                "no such instrument of the operator complained about",
                {"instrument_id": instrument_id},
            )
    institution = _institution(session, institution_id, operator)
    if any(a.instrument_id == instrument_id for a in service.pending_arbitrations(session, case.id or 0)):
        raise conflict(
            "arbitration_pending",
            "该计量器具已有待出具结果的仲裁检定",
            "this instrument already has a pending arbitration verification in this case",
        )
    before = snapshot(case)
    now = utcnow()
    # The instrument names the operator when the complaint did not: the finding will be about it.
    case.operator_id = operator.id
    case.version += 1
    case.updated_at = now
    session.add(case)
    row = ArbitrationVerification(
        case_id=case.id or 0,
        instrument_id=instrument_id,
        operator_id=operator.id or 0,
        institution_id=institution.id or 0,
        reason=reason,
        ordered_by_id=actor.id,
        ordered_at=now,
    )
    session.add(row)
    session.flush()
    details: dict[str, Any] = {
        "arbitration_id": row.id,
        "instrument_id": instrument_id,
        "institution_id": institution.id,
    }
    _timeline(
        session,
        case,
        CaseAction.arbitration_ordered,
        actor=actor,
        reason=reason,
        details=details,
        before=before,
        request_id=request_id,
        note=(
            "已委托法定计量技术机构对涉案计量器具进行仲裁检定",
            "An arbitration verification of the instrument has been ordered from a verification institution",
        ),
    )
    return row


def _scope_path(session: Session, actor: Actor) -> str:
    if isinstance(actor, Account) and actor.role != Role.admin and actor.jurisdiction_code:
        jurisdiction = session.get(Jurisdiction, actor.jurisdiction_code)
        return jurisdiction.path if jurisdiction is not None else "\x00"
    return "/"


def _timeline(
    session: Session,
    case: Case,
    action: CaseAction,
    *,
    actor: Actor,
    reason: str,
    details: dict[str, Any],
    before: dict[str, Any] | None,
    request_id: str | None,
    note: tuple[str, str],
) -> None:
    """The step on the case history, the filer's timeline (no institution or staff identity) and the audit."""
    session.add(
        CaseEvent(
            case_id=case.id or 0,
            action=action,
            from_state=case.state,
            to_state=case.state,
            from_jurisdiction=case.jurisdiction_code,
            to_jurisdiction=case.jurisdiction_code,
            reason=reason,
            details=details,
            actor_id=actor.id,
            actor_role=str(actor.role),
        )
    )
    complaint = session.get(Complaint, case.complaint_id)
    if complaint is not None:
        complaints.add_event(session, complaint, complaint.status, *note)
    audit.service.record(
        session,
        actor=actor,
        action=f"case.{action.value}",
        entity_type="case",
        entity_id=case.id or 0,
        before=before,
        after={**(snapshot(case) or {}), "arbitration": details},
        request_id=request_id,
    )
    session.flush()


def get_for_institution(session: Session, account: Account, arbitration_id: int) -> ArbitrationVerification:
    """An arbitration verification asked of this institution; 404 otherwise."""
    row = session.get(ArbitrationVerification, arbitration_id)
    if row is None or row.institution_id != account.id:
        raise not_found(*ARBITRATION)
    return row


def get_for_case(session: Session, case: Case, arbitration_id: int) -> ArbitrationVerification:
    """An arbitration verification of this case; 404 otherwise."""
    row = session.get(ArbitrationVerification, arbitration_id)
    if row is None or row.case_id != case.id:
        raise not_found(*ARBITRATION)
    return row


def list_for_institution(
    session: Session, account: Account, *, pending: bool | None, limit: int, offset: int
) -> tuple[Sequence[ArbitrationVerification], int]:
    """The arbitration verifications asked of an institution, newest first."""
    stmt = select(ArbitrationVerification).where(col(ArbitrationVerification.institution_id) == account.id)
    if pending is not None:
        is_pending = col(ArbitrationVerification.result) == ArbitrationResult.pending
        stmt = stmt.where(is_pending if pending else ~is_pending)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.order_by(col(ArbitrationVerification.id).desc()).limit(limit).offset(offset)
    ).scalars()
    return list(rows), total


def record_result(
    session: Session,
    row: ArbitrationVerification,
    *,
    actor: Actor,
    outcome: ArbitrationOutcome,
    request_id: str | None = None,
) -> ArbitrationVerification:
    """Record the result; a failure substantiates the case (still under investigation) with an
    ``instrument_failed_verification`` record of that instrument."""
    locked_case = service.locked_case(session, row.case_id)
    if locked_case is None:
        raise not_found(*ARBITRATION)
    case: Case = locked_case
    if row.result is not ArbitrationResult.pending:
        raise conflict(
            "arbitration_decided",
            "该仲裁检定已出具结果",
            "this arbitration verification already has a result",
        )
    before = snapshot(case)
    row.result = ArbitrationResult.passed if outcome.passed else ArbitrationResult.failed
    row.verified_on = outcome.verified_on
    row.certificate_no = outcome.certificate_no
    row.result_notes = outcome.notes
    row.result_by_id = actor.id
    row.result_at = utcnow()
    session.add(row)
    session.flush()
    details: dict[str, Any] = {
        "arbitration_id": row.id,
        "instrument_id": row.instrument_id,
        "result": row.result.value,
        "certificate_no": outcome.certificate_no,
        "verified_on": outcome.verified_on.isoformat(),
    }
    _timeline(
        session,
        case,
        CaseAction.arbitration_result,
        actor=actor,
        reason=outcome.notes,
        details=details,
        before=before,
        request_id=request_id,
        note=(
            f"仲裁检定结果：{'合格' if outcome.passed else '不合格'}",
            f"Arbitration verification result: {'passed' if outcome.passed else 'failed'}",
        ),
    )
    if (
        not outcome.passed
        and case.state is CaseState.investigating
        and not service.pending_arbitrations(session, case.id or 0)
    ):
        findings = (
            f"仲裁检定不合格（证书编号 {outcome.certificate_no}，{outcome.verified_on.isoformat()}）"
            + (f"：{outcome.notes}" if outcome.notes else "")
        )
        service.substantiate(
            session,
            case,
            actor=actor,
            # The case names the operator (set when the verification was ordered): no scope is consulted.
            scope=Scope(actor if isinstance(actor, Account) else SYSTEM, "/"),
            data=service.Substantiation(
                findings=findings,
                fact_date=outcome.verified_on,
                record_kinds=(RecordKind.INSTRUMENT_FAILED_VERIFICATION,),
                instrument_id=row.instrument_id,
                evidence_refs=(f"arbitration:{row.id}", f"certificate:{outcome.certificate_no}"),
            ),
            request_id=request_id,
        )
    return row
