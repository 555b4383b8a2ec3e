"""Publication reviews of integrity records (Art. 18): who asked, who reviewed, what they confirmed, and why
a publication ended. One row per request; at most one is open (pending or published) per record."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, Index, Text, text
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow


class PublicationStatus(StrEnum):
    """Where a publication request stands."""

    pending = "pending"  # queued for a second staff member's review
    published = "published"  # reviewed and approved: the record is public (public_eligible)
    refused = "refused"  # the reviewer refused it, with reasons
    unpublished = "unpublished"  # staff took it down, with reasons
    withdrawn = (
        "withdrawn"  # the record was corrected or revoked: what was reviewed is no longer what it says
    )


#: Statuses that hold the record's one open publication.
OPEN_STATUSES: frozenset[PublicationStatus] = frozenset(
    {PublicationStatus.pending, PublicationStatus.published}
)


class RecordPublication(SQLModel, table=True):
    """One request to publish an integrity record, and its review under the four-eyes rule."""

    __tablename__ = "record_publication"
    __table_args__ = (
        # The database refuses a second open request for a record, whatever races the service loses.
        Index(
            "ux_record_publication_open",
            "record_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'published')"),
            sqlite_where=text("status IN ('pending', 'published')"),
        ),
        # The review queue and the published list, per operator.
        Index("ix_record_publication_status", "status", "operator_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(foreign_key="integrity_record.id", index=True)
    operator_id: int = Field(foreign_key="operator.id")
    # The record version that was asked for and reviewed; any later change withdraws the publication.
    record_version: int
    status: PublicationStatus = Field(default=PublicationStatus.pending, sa_type=enum_type(PublicationStatus))
    requested_by_id: int | None = Field(default=None, foreign_key="account.id")
    requested_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    request_note: str = Field(default="", sa_column=Column(Text, nullable=False))
    reviewed_by_id: int | None = Field(default=None, foreign_key="account.id")
    reviewed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    review_note: str = Field(default="", sa_column=Column(Text, nullable=False))
    # The confidentiality review of Art. 18, each confirmed explicitly by the reviewer.
    no_state_or_trade_secret: bool = False
    no_personal_data: bool = False
    no_undisclosed_information_of_other_organs: bool = False
    published_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    ended_by_id: int | None = Field(default=None, foreign_key="account.id")
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    end_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
