"""What a step left behind, made comparable: the parity tests take the same step through the API and through
the workbench and compare the audit entries and outbox events each wrote, ids, numbers and instants masked."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.outbox.models import OutboxEvent

#: What differs between two runs by construction: ids, numbers and instants.
_VOLATILE_KEYS = {"id", "seq", "case_no", "hash", "prev_hash", "request_id"}


def norm(value: Any) -> Any:
    """``value`` with ids and instants masked ("*") and every number in a string replaced by "#"."""
    if isinstance(value, dict):
        return {
            k: "*" if k in _VOLATILE_KEYS or k.endswith(("_id", "_ids", "_at")) or k == "at" else norm(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [norm(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"\d+", "#", value)
    return value


def marks(session: Session) -> tuple[int, int]:
    """The last audit entry's and outbox event's number now: what comes after is a step's."""
    audit = session.execute(select(func.max(col(AuditEntry.seq)))).scalar_one() or 0
    outbox = session.execute(select(func.max(col(OutboxEvent.id)))).scalar_one() or 0
    return int(audit), int(outbox)


def written_since(session: Session, since: tuple[int, int]) -> dict[str, Any]:
    """The audit entries and outbox events written after ``since`` (from ``marks``), in order and masked."""
    audits = [
        norm(
            {
                "action": a.action,
                "entity_type": a.entity_type,
                "actor_id": a.actor_id,
                "actor_role": a.actor_role,
                "before": a.before,
                "after": a.after,
            }
        )
        for a in session.exec(
            select(AuditEntry).where(col(AuditEntry.seq) > since[0]).order_by(col(AuditEntry.seq))
        )
    ]
    outbox = [
        norm({"topic": o.topic, "payload": o.payload, "dedupe_key": o.dedupe_key})
        for o in session.exec(
            select(OutboxEvent).where(col(OutboxEvent.id) > since[1]).order_by(col(OutboxEvent.id))
        )
    ]
    return {"audit": audits, "outbox": outbox}
