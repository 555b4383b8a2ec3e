"""Integrity records with their version history, stored ratings with their class history, corrections."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Date, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow
from backend.records.rules import IntegrityClass, RecordKind, RecordState


class RecordSource(StrEnum):
    """Where a record came from (Art. 6, 14-17)."""

    complaint = "complaint"  # a consumer complaint found true by a case (Art. 14(3), 17)
    inspection = "inspection"  # a bureau's supervision inspection (Art. 14(2))
    institution = "institution"  # a legal metrology technical institution (Art. 15)
    association = "association"  # an industry association (Art. 16)
    supervisor = "supervisor"  # a volunteer integrity supervisor (Art. 17)
    overdue_sweep = "overdue_sweep"  # the nightly sweep over instrument verification dates (Art. 13(3))
    staff = "staff"  # entered by bureau staff from their own files (penalty decisions, letters)
    self_commitment = "self_commitment"  # the operator's self-commitment: kept or breached (Art. 8)


class RecordChange(StrEnum):
    """What a version of a record did."""

    create = "create"
    verify = "verify"
    dismiss = "dismiss"
    revoke = "revoke"
    correct = "correct"


class IntegrityRecord(SQLModel, table=True):
    """One good or bad record of Art. 8 about an operator; never deleted, every change a new version."""

    __tablename__ = "integrity_record"
    __table_args__ = (
        # The rating path: one operator's verified records in a date window (incremental re-rating), or a
        # range of operators (nightly). Covering on PostgreSQL so both are index-only scans.
        Index(
            "ix_integrity_record_rating",
            "operator_id",
            "state",
            "fact_date",
            postgresql_include=["kind", "instrument_still_in_use", "social_impact", "id"],
        ),
        # Idempotency of creators (a case, an inspection, a sweep) is looked up by their reference.
        Index("ix_integrity_record_source_ref", "source_ref", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id")
    kind: RecordKind = Field(sa_type=enum_type(RecordKind))
    fact_date: date = Field(sa_column=Column(Date, nullable=False))
    source: RecordSource = Field(sa_type=enum_type(RecordSource))
    source_ref: str | None = Field(default=None, max_length=200)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    evidence_refs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    instrument_id: int | None = Field(default=None, foreign_key="instrument.id")
    state: RecordState = Field(default=RecordState.REPORTED, sa_type=enum_type(RecordState))
    # Art. 13(3) and 13(2) findings; None means no finding was made.
    instrument_still_in_use: bool | None = None
    social_impact: bool | None = None
    # Set only by the publication review (Art. 18); any correction or revocation clears it again.
    public_eligible: bool = False
    author_id: int | None = Field(default=None, foreign_key="account.id", index=True)
    version: int = 1
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class IntegrityRecordVersion(SQLModel, table=True):
    """A full snapshot of a record after one change, with the reason and the actor (Art. 9, 20, 22)."""

    __tablename__ = "integrity_record_version"
    __table_args__ = (UniqueConstraint("record_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(foreign_key="integrity_record.id")
    version: int
    change: RecordChange = Field(sa_type=enum_type(RecordChange))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    actor_id: int | None = Field(default=None, foreign_key="account.id")
    actor_role: str = Field(max_length=32)
    snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class OperatorRating(SQLModel, table=True):
    """An operator's current class with its reasons; absent until it differs from the no-record class."""

    __tablename__ = "operator_rating"
    __table_args__ = (Index("ix_operator_rating_class", "cls", "operator_id"),)

    operator_id: int = Field(
        foreign_key="operator.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    cls: IntegrityClass = Field(sa_type=enum_type(IntegrityClass))
    # The rating date on which this class and these reasons were determined; they have held since.
    as_of: date = Field(sa_column=Column(Date, nullable=False))
    reasons: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rules_version: str = Field(max_length=32)
    # The rule-set version, management finding and windowed counts the class was derived from: the nightly
    # re-rating compares it with fresh aggregates and recomputes reasons only where it differs.
    signature: str = Field(max_length=200)
    # Optimistic concurrency: a writer updates only the revision it read.
    revision: int = 1
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class RatingTrigger(StrEnum):
    """What caused a re-rating."""

    record = "record"  # a record changed (worker)
    nightly = "nightly"  # the nightly full re-rating (windows expire)
    manual = "manual"  # staff asked for it (e.g. after a management assessment)


class RatingChange(SQLModel, table=True):
    """One change of an operator's class: the history Art. 9 asks for, and the source of notifications."""

    __tablename__ = "rating_change"
    __table_args__ = (Index("ix_rating_change_operator", "operator_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id")
    from_cls: IntegrityClass = Field(sa_type=enum_type(IntegrityClass))
    to_cls: IntegrityClass = Field(sa_type=enum_type(IntegrityClass))
    as_of: date = Field(sa_column=Column(Date, nullable=False))
    reasons: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rules_version: str = Field(max_length=32)
    trigger: RatingTrigger = Field(sa_type=enum_type(RatingTrigger))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class CorrectionAction(StrEnum):
    """What an operator asks for under Art. 22."""

    correct = "correct"  # 变更
    revoke = "revoke"  # 撤销


class CorrectionDecision(StrEnum):
    """What staff decide."""

    correct = "correct"
    revoke = "revoke"
    reject = "reject"


class CorrectionStatus(StrEnum):
    """Where a correction request stands."""

    pending = "pending"
    corrected = "corrected"
    revoked = "revoked"
    rejected = "rejected"


class CorrectionSubject(StrEnum):
    """Which integrity information a correction request disputes (Art. 22)."""

    record = "record"  # an integrity record (变更或撤销)
    operator = "operator"  # the operator's basic information (name, address, legal representative…)
    instrument = "instrument"  # an instrument's data (serial, type, verification dates…)


class CorrectionRequest(SQLModel, table=True):
    """An operator's request to correct integrity information about it (Art. 22): a record, its basic
    information or an instrument's data, decided by staff within a deadline that the sweep escalates."""

    __tablename__ = "correction_request"
    __table_args__ = (Index("ix_correction_request_open", "status", "due_on"),)

    id: int | None = Field(default=None, primary_key=True)
    subject: CorrectionSubject = Field(default=CorrectionSubject.record, sa_type=enum_type(CorrectionSubject))
    # The record disputed (subject record), or the instrument (subject instrument); neither for basic info.
    record_id: int | None = Field(default=None, foreign_key="integrity_record.id", index=True)
    instrument_id: int | None = Field(default=None, foreign_key="instrument.id", index=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    requested_by_id: int = Field(foreign_key="account.id")
    action: CorrectionAction = Field(sa_type=enum_type(CorrectionAction))
    reasons: str = Field(sa_column=Column(Text, nullable=False))
    document_refs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    requested_change: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # The record version the request is about, so staff see whether it changed since.
    record_version: int
    status: CorrectionStatus = Field(default=CorrectionStatus.pending, sa_type=enum_type(CorrectionStatus))
    due_on: date = Field(sa_column=Column(Date, nullable=False))
    calendar_exact: bool = True
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decided_by_id: int | None = Field(default=None, foreign_key="account.id")
    decision_reasons: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # Where the decision period comes from (``figures.BasisSource``) and its text, as for case deadlines.
    basis_source: str = Field(default="statute", max_length=16)
    # Set by the deadline sweep when the decision ran late: escalated to the parent jurisdiction's staff.
    overdue_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    escalated_to: str | None = Field(default=None, foreign_key="jurisdiction.code", max_length=6)
