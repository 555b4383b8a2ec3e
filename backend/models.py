"""Imports every table module so ``SQLModel.metadata`` is complete (Alembic and tests use this)."""

from __future__ import annotations

from backend.audit.models import AuditEntry, AuditHead
from backend.auth.models import Account, ActivationCode, LoginThrottle, RefreshToken
from backend.complaints.models import Complaint, ComplaintEvent, ComplaintPhoto, IdempotencyKey
from backend.db import metadata
from backend.instruments.models import Instrument, InstrumentType, VerificationRecord
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator, SelfCommitment, Stall
from backend.outbox.models import OutboxEvent

__all__ = [
    "Account",
    "ActivationCode",
    "AuditEntry",
    "AuditHead",
    "Complaint",
    "ComplaintEvent",
    "ComplaintPhoto",
    "IdempotencyKey",
    "Instrument",
    "InstrumentType",
    "Jurisdiction",
    "LoginThrottle",
    "Operator",
    "OutboxEvent",
    "RefreshToken",
    "SelfCommitment",
    "Stall",
    "VerificationRecord",
    "metadata",
]
