"""Measuring instruments and their verification history (Art. 7, 8, 13(3))."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow


class InstrumentType(SQLModel, table=True):
    """A row of the instrument catalogue (kept in sync with ``catalogue.py``)."""

    __tablename__ = "instrument_type"

    code: str = Field(primary_key=True, max_length=32)
    name_zh: str = Field(max_length=100)
    name_en: str = Field(max_length=100)
    mandatory: bool
    period_months: int | None = None
    service_life_years: int | None = None
    regulation: str = Field(max_length=200)


class InstrumentStatus(StrEnum):
    """Whether an instrument is still used in trade."""

    in_use = "in_use"
    retired = "retired"


class VerificationState(StrEnum):
    """Derived from the latest verification and today."""

    valid = "valid"
    due_soon = "due_soon"  # valid, but expires within the reminder horizon (30 days by default)
    overdue = "overdue"
    failed = "failed"
    never_verified = "never_verified"


class Instrument(SQLModel, table=True):
    """One measuring instrument of an operator (optionally at a stall).

    ``last_*`` and ``valid_until`` mirror the newest verification so the daily sweep over tens of millions of
    instruments is an index range scan rather than a join over the history.
    """

    __tablename__ = "instrument"
    __table_args__ = (
        UniqueConstraint("operator_id", "serial"),
        Index("ix_instrument_sweep", "status", "valid_until"),
    )

    id: int | None = Field(default=None, primary_key=True)
    type_code: str = Field(foreign_key="instrument_type.code", max_length=32)
    serial: str = Field(max_length=64, index=True)
    maker: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=100)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    stall_id: int | None = Field(default=None, foreign_key="stall.id", index=True)
    status: InstrumentStatus = Field(default=InstrumentStatus.in_use, sa_type=enum_type(InstrumentStatus))
    qr_serial: int = 1
    last_verified_on: date | None = None
    last_passed: bool | None = None
    valid_until: date | None = None
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class VerificationRecord(SQLModel, table=True):
    """One verification of an instrument by a legal metrology technical institution."""

    __tablename__ = "verification_record"
    __table_args__ = (Index("ix_verification_record_instrument_date", "instrument_id", "verified_on"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument_id: int = Field(foreign_key="instrument.id")
    verified_on: date
    passed: bool
    certificate_no: str = Field(default="", max_length=64)
    institution: str = Field(default="", max_length=120)
    valid_until: date | None = None
    recorded_by_id: int | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
