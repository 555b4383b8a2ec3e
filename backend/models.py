"""Imports every table module so ``SQLModel.metadata`` is complete (Alembic and tests use this)."""

from __future__ import annotations

from backend.audit.models import AuditEntry, AuditHead
from backend.auth.models import Account, ActivationCode, LoginThrottle, RefreshToken
from backend.cases.models import Case, CaseDeadline, CaseEvent
from backend.complaints.models import Complaint, ComplaintEvent, ComplaintPhoto, IdempotencyKey
from backend.db import metadata
from backend.exchange.models import ExchangeApiKey, FeedCaptureMark, FeedEntry, FeedReadLog
from backend.instruments.models import Instrument, InstrumentType, VerificationRecord
from backend.intake.models import (
    AssociationMembership,
    IntakeJob,
    IntakeReport,
    IntakeRowError,
    VerificationSubmission,
)
from backend.jurisdictions.models import Jurisdiction
from backend.notices.models import Device, InboxNotification, NotificationPreference, PushDelivery
from backend.notices.sms.models import SmsContact, SmsDailyCount, SmsMessage
from backend.open311.models import Open311Client, Open311Submission
from backend.operators.models import Operator, SelfCommitment, Stall
from backend.outbox.models import OutboxEvent, OutboxTaskDone
from backend.publication.models import RecordPublication
from backend.records.models import (
    CorrectionRequest,
    IntegrityRecord,
    IntegrityRecordVersion,
    OperatorRating,
    RatingChange,
)
from backend.roles.models import SchedulerLease
from backend.supervision.models import DepartmentNotice, Inspection, InspectionPlan, Interview, PlanEntry
from backend.uploads.models import PhotoUpload
from backend.workbench.models import WorkbenchSession

__all__ = [
    "Account",
    "ActivationCode",
    "AssociationMembership",
    "AuditEntry",
    "AuditHead",
    "Case",
    "CaseDeadline",
    "CaseEvent",
    "Complaint",
    "ComplaintEvent",
    "ComplaintPhoto",
    "CorrectionRequest",
    "DepartmentNotice",
    "Device",
    "ExchangeApiKey",
    "FeedCaptureMark",
    "FeedEntry",
    "FeedReadLog",
    "IdempotencyKey",
    "InboxNotification",
    "Inspection",
    "InspectionPlan",
    "Instrument",
    "InstrumentType",
    "IntakeJob",
    "IntakeReport",
    "IntakeRowError",
    "IntegrityRecord",
    "IntegrityRecordVersion",
    "Interview",
    "Jurisdiction",
    "LoginThrottle",
    "NotificationPreference",
    "Open311Client",
    "Open311Submission",
    "Operator",
    "OperatorRating",
    "OutboxEvent",
    "OutboxTaskDone",
    "PhotoUpload",
    "PlanEntry",
    "PushDelivery",
    "RatingChange",
    "RecordPublication",
    "RefreshToken",
    "SchedulerLease",
    "SelfCommitment",
    "SmsContact",
    "SmsDailyCount",
    "SmsMessage",
    "Stall",
    "VerificationRecord",
    "VerificationSubmission",
    "WorkbenchSession",
    "metadata",
]
