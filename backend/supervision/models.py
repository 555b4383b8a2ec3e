"""Inspections (Art. 14), inspection plans and the key-supervision measures of Art. 12."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Date, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow
from backend.records.rules import IntegrityClass


class InspectionResult(StrEnum):
    """The outcome of one item, or of the whole inspection (failed when any item failed)."""

    passed = "pass"
    failed = "fail"


class Inspection(SQLModel, table=True):
    """A supervision inspection by bureau staff (Art. 14(2)); failures become verified records."""

    __tablename__ = "inspection"
    __table_args__ = (Index("ix_inspection_operator", "operator_id", "inspected_on"),)

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id")
    inspector_id: int = Field(foreign_key="account.id", index=True)
    inspected_on: date = Field(sa_column=Column(Date, nullable=False))
    items: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    result: InspectionResult = Field(sa_type=enum_type(InspectionResult))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False))
    plan_entry_id: int | None = Field(default=None, foreign_key="plan_entry.id")
    # The verified records the failures produced (kept here so a listing needs no second query).
    record_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class InspectionPlan(SQLModel, table=True):
    """A seeded, reproducible draw of operators to inspect in one period and jurisdiction (Art. 11-12)."""

    __tablename__ = "inspection_plan"

    id: int | None = Field(default=None, primary_key=True)
    period_key: str = Field(max_length=16, index=True)
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", max_length=6, index=True)
    # Decimal text: seeds may exceed what a signed 64-bit column holds.
    seed: str = Field(max_length=40)
    rates: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    created_by_id: int | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class PlanEntry(SQLModel, table=True):
    """One drawn operator; unique per period, so no operator is drawn twice in a period."""

    __tablename__ = "plan_entry"
    __table_args__ = (UniqueConstraint("period_key", "operator_id"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="inspection_plan.id", index=True)
    period_key: str = Field(max_length=16)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    jurisdiction_code: str = Field(max_length=6)
    cls: IntegrityClass = Field(sa_type=enum_type(IntegrityClass))
    stratum_size: int
    stratum_quota: int
    draw_ticket: str = Field(max_length=64)


class InterviewKind(StrEnum):
    """Art. 12(2): a reminder (提醒) or an interview (约谈)."""

    reminder = "reminder"
    interview = "interview"


class InterviewStatus(StrEnum):
    """scheduled → acknowledged → held (outcome recorded), or cancelled."""

    scheduled = "scheduled"
    acknowledged = "acknowledged"
    held = "held"
    cancelled = "cancelled"


class Interview(SQLModel, table=True):
    """A reminder or interview of an operator, with its legal basis and recorded outcome."""

    __tablename__ = "interview"
    __table_args__ = (Index("ix_interview_operator", "operator_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id")
    kind: InterviewKind = Field(sa_type=enum_type(InterviewKind))
    scheduled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    place: str = Field(default="", max_length=200)
    subject: str = Field(sa_column=Column(Text, nullable=False))
    legal_basis: str = Field(max_length=500)
    # The class when it was scheduled: Art. 12 measures are for 失信 operators; staff may still remind others.
    class_at_scheduling: IntegrityClass = Field(sa_type=enum_type(IntegrityClass))
    status: InterviewStatus = Field(default=InterviewStatus.scheduled, sa_type=enum_type(InterviewStatus))
    outcome: str | None = Field(default=None, sa_column=Column(Text))
    cancel_reason: str | None = Field(default=None, sa_column=Column(Text))
    created_by_id: int | None = Field(default=None, foreign_key="account.id")
    acknowledged_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    acknowledged_by_id: int | None = Field(default=None, foreign_key="account.id")
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class NoticeChannel(StrEnum):
    """How a notice reached the other department."""

    letter = "letter"
    email = "email"
    fax = "fax"
    platform = "platform"  # a shared government information platform
    meeting = "meeting"
    other = "other"


class DepartmentNotice(SQLModel, table=True):
    """A notice about an untrustworthy operator sent to another department or the local government (Art. 12(3))."""

    __tablename__ = "department_notice"

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    department: str = Field(max_length=100)
    sent_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    content: str = Field(sa_column=Column(Text, nullable=False))
    channel: NoticeChannel = Field(sa_type=enum_type(NoticeChannel))
    created_by_id: int | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
