"""The correction deadline sweep (Art. 22): a request whose decision ran late is marked, escalated to the
parent jurisdiction and its staff told, once per request, like a case's statutory deadline (``cases.sweep``)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import SYSTEM, snapshot
from backend.cases.service import aware
from backend.cases.sweep import BATCH
from backend.config import get_settings
from backend.db import UnitOfWork, session_scope, utcnow
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.outbox.service import emit
from backend.records.models import CorrectionRequest, CorrectionStatus


def mark_correction_overdue(session: Session, correction_id: int, now: datetime) -> bool:
    """Mark one late request: overdue, escalated to the parent bureau, audited, ``correction.overdue``."""
    # Locked and re-read: a decision made at the same moment either comes first (nothing to mark) or waits.
    row = session.execute(
        select(CorrectionRequest)
        .where(col(CorrectionRequest.id) == correction_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None or row.status is not CorrectionStatus.pending or row.overdue_at is not None:
        return False
    operator = session.get(Operator, row.operator_id)
    jurisdiction = session.get(Jurisdiction, operator.jurisdiction_code) if operator is not None else None
    parent = jurisdiction.parent_code if jurisdiction is not None else None
    before = snapshot(row)
    row.overdue_at = now
    row.escalated_to = parent
    session.add(row)
    session.flush()
    audit.service.record(
        session,
        actor=SYSTEM,
        action="correction.overdue",
        entity_type="correction_request",
        entity_id=row.id or 0,
        before=before,
        after=snapshot(row),
    )
    # The parent's staff are told (it is their escalation); at province level the province's own staff.
    target = parent or (jurisdiction.code if jurisdiction is not None else None)
    if target is not None:
        emit(
            session,
            "correction.overdue",
            {
                "correction_id": row.id,
                "operator_id": row.operator_id,
                "jurisdiction_code": target,
                "due_on": row.due_on.isoformat(),
            },
            dedupe_key=f"correction.overdue:{row.id}:{row.due_on.isoformat()}",
        )
    return True


def sweep_corrections(
    now: datetime | None = None, *, batch: int = BATCH, unit_of_work: UnitOfWork = session_scope
) -> int:
    """Mark every pending request past its decision date (bureau-local); each batch its own transaction."""
    now = aware(now).astimezone(UTC) if now is not None else utcnow()
    # The decision is due by 24:00 of due_on in the bureau's time zone: late from the next local day on.
    today = now.astimezone(ZoneInfo(get_settings().timezone)).date()
    marked = 0
    after_id = 0
    while True:
        with unit_of_work() as session:
            rows = list(
                session.execute(
                    select(col(CorrectionRequest.id))
                    .where(
                        col(CorrectionRequest.status) == CorrectionStatus.pending,
                        col(CorrectionRequest.overdue_at).is_(None),
                        col(CorrectionRequest.due_on) < today,
                        col(CorrectionRequest.id) > after_id,
                    )
                    .order_by(col(CorrectionRequest.id))
                    .limit(batch)
                ).scalars()
            )
            for correction_id in rows:
                if mark_correction_overdue(session, correction_id, now):
                    marked += 1
        if len(rows) < batch:
            return marked
        after_id = rows[-1]
