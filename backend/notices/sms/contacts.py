"""An operator's contact person's mobile number for SMS notices: stored only with consent, audited, masked.

Only operators have one (complainants and supervisors are never sent SMS). It is set by the operator's own
account (consent given in the app) or by staff with the consent recorded (how: a signed form, a call); it is
deleted, not flagged, when consent is withdrawn. The audit log and every log line carry the masked number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col

from backend import audit
from backend.audit.service import Actor
from backend.db import table_of, utcnow
from backend.errors import AppError
from backend.notices.sms.models import ConsentSource, SmsContact, SmsMessage, SmsStatus
from backend.notices.sms.phones import mask, normalise_mobile


def consent_required() -> AppError:
    """422 ``consent_required``."""
    return AppError(
        422,
        "consent_required",
        "须经联系人同意方可保存手机号码用于短信通知",
        "the contact person's consent is required to keep a number for SMS notices",
    )


def _snapshot(contact: SmsContact | None) -> dict[str, Any] | None:
    if contact is None:
        return None
    return {
        "operator_id": contact.operator_id,
        "phone": mask(contact.phone),
        "consent_source": contact.consent_source.value,
        "consent_by_id": contact.consent_by_id,
        "consent_note": contact.consent_note,
        "consent_at": contact.consent_at.isoformat(),
    }


def get(session: Session, operator_id: int) -> SmsContact | None:
    """The operator's contact number, if any."""
    return session.get(SmsContact, operator_id)


def set_contact(
    session: Session,
    *,
    operator_id: int,
    phone: str,
    consent: bool,
    source: ConsentSource,
    actor: Actor,
    note: str = "",
    request_id: str | None = None,
    now: datetime | None = None,
) -> SmsContact:
    """Store (or replace) the number with its consent; 422 ``invalid_phone`` / ``consent_required``."""
    number = normalise_mobile(phone)
    if not consent:
        raise consent_required()
    now = now or utcnow()
    row = session.get(SmsContact, operator_id)
    before = _snapshot(row)
    if row is None:
        row = SmsContact(
            operator_id=operator_id, phone=number, consent_source=source, consent_by_id=0, consent_at=now
        )
    row.phone = number
    row.consent_source = source
    row.consent_by_id = int(getattr(actor, "id", 0) or 0)
    row.consent_note = note.strip()[:200]
    row.consent_at = now
    row.updated_at = now
    session.add(row)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="sms_contact.set",
        entity_type="operator",
        entity_id=operator_id,
        before=before,
        after=_snapshot(row),
        request_id=request_id,
    )
    return row


def withdraw(
    session: Session,
    *,
    operator_id: int,
    actor: Actor,
    request_id: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Delete the number (consent withdrawn); SMS not yet sent are skipped. False when there was none."""
    row = session.get(SmsContact, operator_id)
    if row is None:
        return False
    before = _snapshot(row)
    session.delete(row)
    table = table_of(SmsMessage)
    session.execute(
        update(table)
        .where(col(table.c.operator_id) == operator_id, table.c.status == SmsStatus.pending.value)
        .values(
            status=SmsStatus.skipped.value, reason="consent_withdrawn", phone=None, updated_at=now or utcnow()
        )
    )
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="sms_contact.withdraw",
        entity_type="operator",
        entity_id=operator_id,
        before=before,
        after=None,
        request_id=request_id,
    )
    return True
