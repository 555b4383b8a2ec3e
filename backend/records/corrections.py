"""Correction requests (Art. 22): an operator asks to correct or revoke a record, staff decide within a deadline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import Actor, snapshot
from backend.auth.scope import Scope
from backend.cases import figures
from backend.cases.deadlines import CORRECTION_DECISION, compute_deadline
from backend.common.scoped import load_scoped
from backend.config import get_settings
from backend.db import utcnow
from backend.errors import AppError, conflict
from backend.instruments.models import Instrument
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.outbox.service import emit
from backend.records import service as records
from backend.records.models import (
    CorrectionAction,
    CorrectionDecision,
    CorrectionRequest,
    CorrectionStatus,
    CorrectionSubject,
    IntegrityRecord,
)
from backend.records.rules import RecordState
from backend.records.schemas import CorrectionCreate, CorrectionDecide, InfoCorrectionCreate

_STATUS_OF: dict[CorrectionDecision, CorrectionStatus] = {
    CorrectionDecision.correct: CorrectionStatus.corrected,
    CorrectionDecision.revoke: CorrectionStatus.revoked,
    CorrectionDecision.reject: CorrectionStatus.rejected,
}


def request(
    session: Session, *, record: IntegrityRecord, data: CorrectionCreate, actor: Actor
) -> CorrectionRequest:
    """File a request about one of the operator's records; one open request per record at a time."""
    if record.state is RecordState.REVOKED:
        raise conflict("record_revoked", "该记录已撤销", "the record is already revoked")
    open_request = session.execute(
        select(col(CorrectionRequest.id)).where(
            col(CorrectionRequest.record_id) == record.id,
            col(CorrectionRequest.status) == CorrectionStatus.pending,
        )
    ).first()
    if open_request is not None:
        raise conflict(
            "correction_pending",
            "该记录已有待处理的更正申请",
            "a correction request for this record is already pending",
            {"correction_id": open_request[0]},
        )
    now = utcnow()
    operator = session.get(Operator, record.operator_id)
    applied = figures.effective(
        session, CORRECTION_DECISION, operator.jurisdiction_code if operator else None
    )
    deadline = compute_deadline(applied.spec, now, get_settings().timezone)
    row = CorrectionRequest(
        record_id=record.id or 0,
        operator_id=record.operator_id,
        basis_source=applied.source.value,
        requested_by_id=actor.id or 0,
        action=data.action,
        reasons=data.reasons,
        document_refs=list(data.document_refs),
        requested_change=(
            data.requested_change.model_dump(mode="json", exclude_unset=True)
            if data.requested_change
            else None
        ),
        record_version=record.version,
        due_on=deadline.due_date,
        calendar_exact=deadline.calendar_exact,
        created_at=now,
    )
    return _filed(session, row, actor)


def _filed(session: Session, row: CorrectionRequest, actor: Actor) -> CorrectionRequest:
    session.add(row)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="correction.request",
        entity_type="correction_request",
        entity_id=row.id or 0,
        after=snapshot(row),
    )
    emit(
        session,
        "correction.requested",
        {"correction_id": row.id, "record_id": row.record_id, "operator_id": row.operator_id},
        dedupe_key=f"correction.requested:{row.id}",
    )
    return row


def request_info(
    session: Session, *, operator: Operator, data: InfoCorrectionCreate, actor: Actor
) -> CorrectionRequest:
    """File a request about the operator's basic information or one of its instruments' data; one open
    request per operator's basic information, and per instrument, at a time."""
    instrument_id: int | None = None
    if data.subject is CorrectionSubject.instrument:
        instrument = session.get(Instrument, data.instrument_id)
        if instrument is None or instrument.operator_id != operator.id:
            raise AppError(
                422,
                "unknown_instrument",
                "该计量器具不存在或不属于您",
                "no such instrument of yours",
                {"instrument_id": data.instrument_id},
            )
        instrument_id = instrument.id
    open_request = session.execute(
        select(col(CorrectionRequest.id)).where(
            col(CorrectionRequest.operator_id) == operator.id,
            col(CorrectionRequest.subject) == data.subject,
            col(CorrectionRequest.instrument_id).is_(None)
            if instrument_id is None
            else col(CorrectionRequest.instrument_id) == instrument_id,
            col(CorrectionRequest.status) == CorrectionStatus.pending,
        )
    ).first()
    if open_request is not None:
        raise conflict(
            "correction_pending",
            "该信息已有待处理的更正申请",
            "a correction request for this information is already pending",
            {"correction_id": open_request[0]},
        )
    change = data.instrument_change if instrument_id is not None else data.operator_change
    assert change is not None
    now = utcnow()
    applied = figures.effective(session, CORRECTION_DECISION, operator.jurisdiction_code)
    deadline = compute_deadline(applied.spec, now, get_settings().timezone)
    row = CorrectionRequest(
        subject=data.subject,
        instrument_id=instrument_id,
        operator_id=operator.id or 0,
        basis_source=applied.source.value,
        requested_by_id=actor.id or 0,
        action=CorrectionAction.correct,
        reasons=data.reasons,
        document_refs=list(data.document_refs),
        requested_change=change.model_dump(mode="json", exclude_unset=True),
        # Basic information and instrument data keep no versions: the audit trail holds their history.
        record_version=0,
        due_on=deadline.due_date,
        calendar_exact=deadline.calendar_exact,
        created_at=now,
    )
    return _filed(session, row, actor)


def _info_changes(row: CorrectionRequest, data: CorrectionDecide) -> dict[str, Any]:
    """The fields to set on the operator or instrument: staff's, else what the operator asked for."""
    given = data.instrument_changes if row.subject is CorrectionSubject.instrument else data.operator_changes
    if given is not None:
        changes = given.model_dump(exclude_unset=True)
    else:
        changes = dict(row.requested_change or {})
        for key in ("last_verified_on", "valid_until"):
            if isinstance(changes.get(key), str):
                changes[key] = date.fromisoformat(changes[key])
    if not changes:
        raise AppError(
            422,
            "changes_required",
            "更正决定须写明更正内容",
            "a decision to correct needs the changes to make",
        )
    return changes


def _correct_info(session: Session, row: CorrectionRequest, data: CorrectionDecide, actor: Actor) -> None:
    """Apply a granted correction of basic information or instrument data, audited with before and after."""
    if data.decision is CorrectionDecision.revoke:
        raise AppError(
            422,
            "decision_not_applicable",
            "基本信息和计量器具数据只能更正或不予更正，不能撤销",
            "basic information and instrument data are corrected or not, never revoked",
        )
    target: Operator | Instrument | None
    if row.subject is CorrectionSubject.instrument:
        target = session.get(Instrument, row.instrument_id)
    else:
        target = session.get(Operator, row.operator_id)
    assert target is not None
    changes = {k: v for k, v in _info_changes(row, data).items() if getattr(target, k) != v}
    before = snapshot(target)
    for key, value in changes.items():
        setattr(target, key, value)
    if isinstance(target, Operator):
        target.updated_at = utcnow()
    session.add(target)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action=f"{row.subject.value}.correct",
        entity_type=row.subject.value,
        entity_id=target.id or 0,
        before=before,
        after={**(snapshot(target) or {}), "correction_id": row.id, "reason": data.reasons},
    )


def _changes_for(row: CorrectionRequest, data: CorrectionDecide) -> dict[str, Any]:
    if data.changes is not None:
        changes = data.changes.given()
    else:
        changes = dict(row.requested_change or {})
        if isinstance(changes.get("fact_date"), str):
            changes["fact_date"] = date.fromisoformat(changes["fact_date"])
    if not changes:
        raise AppError(
            422,
            "changes_required",
            "更正决定须写明更正内容",
            "a decision to correct needs the changes to make",
        )
    return changes


def decide(
    session: Session, *, row: CorrectionRequest, data: CorrectionDecide, actor: Actor
) -> CorrectionRequest:
    """Decide a pending request: correct or revoke the record (a new version, re-rated) or reject it."""
    if row.status is not CorrectionStatus.pending:
        raise conflict("correction_decided", "该更正申请已办结", "the correction request is already decided")
    if row.subject is not CorrectionSubject.record:
        if data.decision is not CorrectionDecision.reject:
            _correct_info(session, row, data, actor)
    else:
        record = session.get(IntegrityRecord, row.record_id)
        assert record is not None
        reason = f"更正申请 {row.id}：{data.reasons}"
        if data.decision is CorrectionDecision.correct:
            records.correct(session, record, actor=actor, reason=reason, changes=_changes_for(row, data))
        elif data.decision is CorrectionDecision.revoke:
            records.revoke(session, record, actor=actor, reason=reason)
    before = snapshot(row)
    row.status = _STATUS_OF[data.decision]
    row.decided_at = utcnow()
    row.decided_by_id = actor.id
    row.decision_reasons = data.reasons
    session.add(row)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="correction.decide",
        entity_type="correction_request",
        entity_id=row.id or 0,
        before=before,
        after=snapshot(row),
    )
    emit(
        session,
        "correction.decided",
        {
            "correction_id": row.id,
            "record_id": row.record_id,
            "operator_id": row.operator_id,
            "decision": data.decision.value,
        },
        dedupe_key=f"correction.decided:{row.id}",
    )
    return row


#: What a missing or out-of-scope correction request is called in the 404.
CORRECTION = ("更正申请", "correction request")


def get_in_scope(session: Session, scope: Scope, correction_id: int) -> CorrectionRequest:
    """A request about an operator in the scope; 404 otherwise."""
    return load_scoped(session, scope, CorrectionRequest, correction_id, CORRECTION, via="operator")


def list_in_scope(
    session: Session,
    scope: Scope,
    *,
    status: CorrectionStatus | None,
    overdue: bool | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[CorrectionRequest], int]:
    """Requests about operators in the scope, the earliest due first."""
    stmt = (
        select(CorrectionRequest)
        .join(Operator, col(Operator.id) == col(CorrectionRequest.operator_id))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        .where(col(Jurisdiction.path).startswith(scope.path))
    )
    if status is not None:
        stmt = stmt.where(col(CorrectionRequest.status) == status)
    if overdue is not None:
        # Past its date, or marked by the sweep (which runs on the bureau's clock, possibly ahead of ours).
        late = (col(CorrectionRequest.status) == CorrectionStatus.pending) & (
            (col(CorrectionRequest.due_on) < records.bureau_today())
            | col(CorrectionRequest.overdue_at).is_not(None)
        )
        stmt = stmt.where(late if overdue else ~late)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.order_by(col(CorrectionRequest.due_on), col(CorrectionRequest.id)).limit(limit).offset(offset)
    ).scalars()
    return list(rows), total


def list_for_operator(session: Session, operator_id: int) -> Sequence[CorrectionRequest]:
    """An operator's requests, newest first."""
    return (
        session.execute(
            select(CorrectionRequest)
            .where(col(CorrectionRequest.operator_id) == operator_id)
            .order_by(col(CorrectionRequest.id).desc())
        )
        .scalars()
        .all()
    )


def is_overdue(row: CorrectionRequest) -> bool:
    """Whether a pending request has passed its decision date (bureau-local) or the sweep marked it late."""
    return row.status is CorrectionStatus.pending and (
        row.due_on < records.bureau_today() or row.overdue_at is not None
    )
