"""Correction requests (Art. 22): an operator asks to correct or revoke a record, staff decide within a deadline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Final

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import Actor, snapshot
from backend.auth.scope import Scope
from backend.cases.deadlines import DeadlineSpec, StartEvent, compute_deadline
from backend.common.scoped import load_scoped
from backend.config import get_settings
from backend.db import utcnow
from backend.errors import AppError, conflict
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.outbox.service import emit
from backend.records import service as records
from backend.records.models import (
    CorrectionDecision,
    CorrectionRequest,
    CorrectionStatus,
    IntegrityRecord,
)
from backend.records.rules import RecordState
from backend.records.schemas import CorrectionCreate, CorrectionDecide

# The guideline says a record found inaccurate "shall be corrected after verification under the statutory
# procedure" but sets no period; a bureau rule has to. 15 working days matches the verification period the
# penalty procedure rules give a bureau for a tip-off, the closest statutory analogue.
CORRECTION_DECISION: Final = DeadlineSpec(
    key="correction_decision",
    working_days=15,
    starts_from=StartEvent.RECEIPT,
    legal_basis_zh=(
        "《服务业诚信计量监督管理制度建设指南》第二十二条：经营者认为其诚信计量信息不准确的，可以申请变更或撤销，"
        "按法定程序核实后应当予以更正；该条未规定办理期限。本期限为本局自定规则，"
        "参照《市场监督管理行政处罚程序规定》第十八条十五个工作日的核查期限设定，可由各局调整。"
    ),
    legal_basis_en=(
        "Guideline Art. 22: an operator may ask for inaccurate integrity information to be changed or revoked, "
        "and it shall be corrected after verification under the statutory procedure; the article sets no "
        "period. This is the bureau's own rule, set by analogy with the 15-working-day verification period of "
        "Art. 18 of the Rules on Administrative Penalty Procedures for Market Regulation; bureaus may change it."
    ),
)

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
    deadline = compute_deadline(CORRECTION_DECISION, now, get_settings().timezone)
    row = CorrectionRequest(
        record_id=record.id or 0,
        operator_id=record.operator_id,
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
        late = (col(CorrectionRequest.status) == CorrectionStatus.pending) & (
            col(CorrectionRequest.due_on) < records.bureau_today()
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
    """Whether a pending request has passed its decision date (bureau-local)."""
    return row.status is CorrectionStatus.pending and row.due_on < records.bureau_today()
