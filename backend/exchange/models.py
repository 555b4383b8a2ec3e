"""Partner-department API keys, the feed's own ordered entries and capture marks, and the read log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow


class FeedField(StrEnum):
    """What a key may see beyond the event itself (type, time, operator id, jurisdiction code, record id)."""

    operator_identity = "operator_identity"  # USCC and name
    operator_details = "operator_details"  # sector and registered address
    legal_representative = "legal_representative"  # a person's name: only when the agreement needs it
    integrity_class = "class"  # class changes: from, to, as of, rule-set version, trigger
    class_reasons = "class_reasons"  # the reasons of the new class (rule, article, record ids, explanation)
    record_kind = "record_kind"  # verified records and their revocations: kind, good/bad, source
    record_dates = "record_dates"  # the record's fact date
    record_findings = "record_findings"  # Art. 13(2)/(3) findings
    record_summary = "record_summary"  # the staff-written summary
    evidence_refs = "evidence_refs"  # evidence references and official document numbers


class FeedEventType(StrEnum):
    """What an entry of the feed says happened."""

    class_change = "class_change"
    record_verified = "record_verified"
    record_corrected = "record_corrected"
    record_revoked = "record_revoked"


class FeedSource(StrEnum):
    """The history table an entry was captured from."""

    rating_change = "rating_change"
    record_version = "record_version"


class ExchangeApiKey(SQLModel, table=True):
    """A partner department's API key: its scope (jurisdictions, fields), expiry and revocation."""

    __tablename__ = "exchange_api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    department: str = Field(max_length=120)
    # The public half of the key, looked up by index; the secret half is only ever stored as an HMAC.
    lookup_id: str = Field(max_length=16, unique=True)
    secret_hash: str = Field(max_length=64)
    jurisdiction_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fields: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The path of the lowest division covering every jurisdiction of the key: staff whose scope covers it
    # manage the key (a prefix scan), and "/" means only admins do.
    scope_path: str = Field(max_length=40, index=True)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_by_id: int | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoked_by_id: int | None = Field(default=None, foreign_key="account.id")
    revoke_reason: str | None = Field(default=None, sa_column=Column(Text))
    rotated_from_id: int | None = Field(default=None, foreign_key="exchange_api_key.id")


class FeedEntry(SQLModel, table=True):
    """One shareable change, numbered in the order it became visible to the feed (see ``capture``)."""

    __tablename__ = "exchange_feed_entry"
    __table_args__ = (UniqueConstraint("source", "source_id"),)

    seq: int | None = Field(default=None, primary_key=True)
    source: FeedSource = Field(sa_type=enum_type(FeedSource))
    source_id: int
    event: FeedEventType = Field(sa_type=enum_type(FeedEventType))
    operator_id: int = Field(foreign_key="operator.id", index=True)
    record_id: int | None = Field(default=None, foreign_key="integrity_record.id")
    captured_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class FeedCaptureMark(SQLModel, table=True):
    """Per history table, the id up to which every row is final and captured (or not shareable)."""

    __tablename__ = "exchange_capture_mark"

    source: FeedSource = Field(sa_type=enum_type(FeedSource), primary_key=True)
    settled_through: int = 0
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class FeedReadLog(SQLModel, table=True):
    """One call of the feed by a key (Art. 20): who read how much from where."""

    __tablename__ = "exchange_read_log"
    __table_args__ = (Index("ix_exchange_read_log_key", "api_key_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="exchange_api_key.id")
    department: str = Field(max_length=120)
    cursor_from: int
    cursor_to: int
    rows: int
    has_more: bool
    client_ip: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
