"""Photos uploaded ahead of their complaint (the app's flow on a bad network)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index
from sqlmodel import Field, SQLModel

from backend.db import utcnow


class PhotoUpload(SQLModel, table=True):
    """One validated photo an account uploaded, waiting to be named by a complaint (or to expire).

    The original is stored where complaint originals live (content-addressed), so attaching it copies nothing.
    """

    __tablename__ = "photo_upload"
    __table_args__ = (
        # The dedupe lookup: the account's unattached upload of these bytes.
        Index("ix_photo_upload_account_sha", "account_id", "original_sha256"),
        Index("ix_photo_upload_expiry", "complaint_id", "expires_at"),
    )

    # Random, so an id says nothing about how many uploads there are.
    id: str = Field(primary_key=True, max_length=32)
    account_id: int = Field(foreign_key="account.id")
    original_key: str = Field(max_length=512)
    original_sha256: str = Field(max_length=64)
    original_bytes: int
    original_format: str = Field(max_length=8)
    width: int
    height: int
    complaint_id: int | None = Field(default=None, foreign_key="complaint.id")
    attached_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
