"""Open311 GeoReport v2 clients (civic-tech apps with an API key) and what they sent beside each complaint."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from backend.db import utcnow


class Open311Client(SQLModel, table=True):
    """A civic-tech client: its API key (stored as a hash) and the account its complaints are filed under."""

    __tablename__ = "open311_client"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    # SHA-256 of the key: keys are 256-bit random, so a fast hash is enough and lookups stay one index probe.
    api_key_hash: str = Field(max_length=64, unique=True)
    # The key's first characters, so an operator of the platform can tell keys apart without seeing them.
    key_prefix: str = Field(max_length=16)
    account_id: int = Field(foreign_key="account.id", index=True)
    is_active: bool = True
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class Open311Submission(SQLModel, table=True):
    """Which client filed a complaint, with the spec's fields our complaint has no place for (staff only)."""

    __tablename__ = "open311_submission"

    complaint_id: int = Field(
        foreign_key="complaint.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    client_id: int = Field(foreign_key="open311_client.id", index=True)
    # The client's own reference for the person (spec: account_id / device_id); echoed back on POST.
    client_account_ref: str | None = Field(default=None, max_length=100)
    # A name without a phone number, and an e-mail address: the complaint's own contact holds name and phone.
    contact_name: str | None = Field(default=None, max_length=100)
    contact_email: str | None = Field(default=None, max_length=254)
    # Never fetched: a URL handed to us is the client's hosting, not evidence we hold.
    media_url: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
