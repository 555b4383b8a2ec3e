"""Volunteer integrity supervisors' reports (Art. 17): reported records pending staff verification."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.auth.service import term_is_current
from backend.errors import AppError, forbidden, not_found
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.records import service as records
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import RecordKind, RecordState
from backend.records.schemas import SupervisorReportCreate

#: What a citizen on patrol can witness; inspections, penalties and commitments are the bureau's own findings.
SUPERVISOR_KINDS: frozenset[RecordKind] = frozenset(
    {
        RecordKind.INSTRUMENT_UNVERIFIED,
        RecordKind.INSTRUMENT_OVERDUE,
        RecordKind.SHORT_WEIGHT,
        RecordKind.METROLOGY_CHEATING,
        RecordKind.NET_CONTENT_NONCOMPLIANT,
        RecordKind.METROLOGY_ACCIDENT,
    }
)


def _operator_in_area(session: Session, supervisor: Account, operator_id: int) -> Operator:
    """The operator if it lies in the supervisor's jurisdiction; 404 otherwise."""
    area = session.get(Jurisdiction, supervisor.jurisdiction_code) if supervisor.jurisdiction_code else None
    if area is None:
        raise forbidden("监督员未绑定辖区", "the supervisor has no jurisdiction")
    row = session.execute(
        select(Operator, col(Jurisdiction.path))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        .where(col(Operator.id) == operator_id)
    ).first()
    if row is None or not row[1].startswith(area.path):
        raise not_found("经营者", "operator")
    operator: Operator = row[0]
    return operator


def report(
    session: Session, *, supervisor: Account, data: SupervisorReportCreate, idempotency_key: str | None
) -> IntegrityRecord:
    """File a supervisor's finding as a reported record; a repeated Idempotency-Key returns the first one."""
    if supervisor.role != Role.supervisor:
        raise forbidden("仅限计量诚信监督员", "integrity supervisors only")
    if not term_is_current(supervisor, records.bureau_today()):
        raise forbidden("不在聘任期内", "outside the appointment term")
    if data.kind not in SUPERVISOR_KINDS:
        raise AppError(
            422,
            "kind_not_reportable",
            "监督员不能报告该类记录",
            "supervisors cannot report this kind of record",
            {"kind": data.kind.value, "allowed": sorted(k.value for k in SUPERVISOR_KINDS)},
        )
    operator = _operator_in_area(session, supervisor, data.operator_id)
    return records.create(
        session,
        operator=operator,
        kind=data.kind,
        fact_date=data.fact_date,
        source=RecordSource.supervisor,
        source_ref=f"supervisor:{supervisor.id}:{idempotency_key}" if idempotency_key else None,
        state=RecordState.REPORTED,
        summary=data.summary,
        evidence_refs=data.evidence_refs,
        instrument_id=data.instrument_id,
        instrument_still_in_use=data.instrument_still_in_use,
        actor=supervisor,
        reason="计量诚信监督员报告 / reported by an integrity supervisor",
    )


def mine(
    session: Session, supervisor: Account, *, limit: int, offset: int
) -> tuple[Sequence[tuple[IntegrityRecord, str]], int]:
    """The supervisor's own reports with the operator's name, newest first."""
    where = (
        col(IntegrityRecord.author_id) == supervisor.id,
        col(IntegrityRecord.source) == RecordSource.supervisor,
    )
    total = session.execute(select(func.count()).select_from(IntegrityRecord).where(*where)).scalar_one()
    rows = session.execute(
        select(IntegrityRecord, col(Operator.name))
        .join(Operator, col(Operator.id) == col(IntegrityRecord.operator_id))
        .where(*where)
        .order_by(col(IntegrityRecord.id).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [(r, name) for r, name in rows], total
