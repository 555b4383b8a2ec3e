"""Staff reads of non-public data, audited from routes (Art. 20): one helper, so every route logs alike."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlmodel import Session

from backend.audit.service import Actor, record_read
from backend.auth.models import Role

#: Whose reads are logged: the bureau's people. An operator reading its own data or a filer their own filing
#: is reading about themselves.
AUDITED_ROLES = frozenset({Role.staff.value, Role.auditor.value, Role.admin.value})


def staff_read(
    session: Session,
    request: Request,
    reader: Actor,
    *,
    action: str,
    entity_type: str,
    entity_id: str | int,
    after: dict[str, Any] | None = None,
) -> None:
    """Log a staff member's read (``action`` like ``operator.read``) when it commits; others' reads are not."""
    if str(reader.role) not in AUDITED_ROLES:
        return
    record_read(
        session,
        actor=reader,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        after=after,
        request_id=getattr(request.state, "request_id", None),
    )
