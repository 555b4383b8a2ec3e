"""Intake jobs with their row-level error reports, institutions' verification submissions, reports, and the
associations' membership registers."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Date, DateTime, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow
from backend.records.rules import RecordKind


class JobKind(StrEnum):
    """What a CSV job imports."""

    verifications = "verifications"  # an institution's verification results (Art. 15(1))
    association_reports = "association_reports"  # an association's warnings and censures (Art. 16(2)(3))
    violation_reports = "violation_reports"  # violations an institution found (Art. 15(1))


class JobState(StrEnum):
    """Where a job stands; ``succeeded`` means every row was imported or reported, not that none failed."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class IntakeJob(SQLModel, table=True):
    """One uploaded CSV file, imported by a worker in chunks; each chunk commits with its progress."""

    __tablename__ = "intake_job"
    __table_args__ = (Index("ix_intake_job_account", "account_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    kind: JobKind = Field(sa_type=enum_type(JobKind))
    state: JobState = Field(default=JobState.queued, sa_type=enum_type(JobState))
    filename: str = Field(default="", max_length=255)
    file_key: str = Field(max_length=512)
    file_sha256: str = Field(max_length=64)
    encoding: str = Field(max_length=16)
    total_rows: int = 0
    rows_done: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    records_created: int = 0
    failure: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class IntakeRowError(SQLModel, table=True):
    """Why one row of a job was not imported."""

    __tablename__ = "intake_row_error"
    __table_args__ = (Index("ix_intake_row_error_job", "job_id", "row_number"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="intake_job.id")
    row_number: int
    column_name: str | None = Field(default=None, max_length=64)
    code: str = Field(max_length=64)
    message_zh: str = Field(sa_column=Column(Text, nullable=False))
    message_en: str = Field(sa_column=Column(Text, nullable=False))


class VerificationSubmission(SQLModel, table=True):
    """A verification result as an institution submitted it; one per instrument and certificate number."""

    __tablename__ = "verification_submission"
    __table_args__ = (
        # Re-uploading a file (or racing two uploads) never records a certificate twice.
        UniqueConstraint("instrument_id", "certificate_no"),
        Index("ix_verification_submission_account", "account_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    job_id: int | None = Field(default=None, foreign_key="intake_job.id", index=True)
    row_number: int | None = None
    instrument_id: int = Field(foreign_key="instrument.id")
    operator_id: int = Field(foreign_key="operator.id", index=True)
    verification_record_id: int = Field(foreign_key="verification_record.id")
    certificate_no: str = Field(max_length=64)
    verified_on: date = Field(sa_column=Column(Date, nullable=False))
    passed: bool
    valid_until: date | None = Field(default=None, sa_column=Column(Date))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False))
    # The institution's statement that the instrument was used in trade past its validity (None: not stated).
    overdue_in_use: bool | None = None
    record_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ReportMeasure(StrEnum):
    """What a report is: an institution's violation finding, or an association's sanction of a member."""

    violation = "violation"  # 法定计量技术机构发现的计量违法行为 (Art. 15(1))
    warning = "warning"  # 行业组织警告 (Art. 16(2))
    censure = "censure"  # 行业内通报批评 (Art. 16(2))


class IntakeReport(SQLModel, table=True):
    """A violation report or an association sanction, filed as a reported integrity record."""

    __tablename__ = "intake_report"
    __table_args__ = (Index("ix_intake_report_account", "account_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    job_id: int | None = Field(default=None, foreign_key="intake_job.id", index=True)
    row_number: int | None = None
    measure: ReportMeasure = Field(sa_type=enum_type(ReportMeasure))
    kind: RecordKind = Field(sa_type=enum_type(RecordKind))
    operator_id: int = Field(foreign_key="operator.id", index=True)
    instrument_id: int | None = Field(default=None, foreign_key="instrument.id")
    fact_date: date = Field(sa_column=Column(Date, nullable=False))
    summary: str = Field(sa_column=Column(Text, nullable=False))
    evidence_refs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reference: str | None = Field(default=None, max_length=100)
    record_id: int = Field(foreign_key="integrity_record.id")
    # sha256 of who reported what about whom on which day: a repeated report returns the first one.
    dedupe_key: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class AssociationMembership(SQLModel, table=True):
    """A period during which an operator was a member of an industry association (Art. 16).

    Associations report warnings and censures about their members only: a report is accepted when a period of
    the reporting association covers its fact date. ``ended_on`` is the last day of membership (inclusive), so
    a censure issued on the day a member is expelled still counts; ``None`` means a current member.
    """

    __tablename__ = "association_membership"
    __table_args__ = (
        # One current membership per association and operator; the index also refuses a racing second add.
        Index(
            "ix_association_membership_current",
            "association_id",
            "operator_id",
            unique=True,
            postgresql_where=text("ended_on IS NULL"),
            sqlite_where=text("ended_on IS NULL"),
        ),
        # The association's register and the membership check of every report (association, operator, date).
        Index("ix_association_membership_member", "association_id", "operator_id", "joined_on"),
        # Staff reading one operator's memberships.
        Index("ix_association_membership_operator", "operator_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    association_id: int = Field(foreign_key="account.id")
    operator_id: int = Field(foreign_key="operator.id")
    member_number: str | None = Field(default=None, max_length=64)
    joined_on: date = Field(sa_column=Column(Date, nullable=False))
    ended_on: date | None = Field(default=None, sa_column=Column(Date))
    end_reason: str | None = Field(default=None, sa_column=Column(Text))
    # The account that registered it (the association itself; None when the system seeded it).
    created_by: int | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
