"""The scheduler lease: one row per singleton role, held by one process until it stops renewing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from backend.db import utcnow


class SchedulerLease(SQLModel, table=True):
    """Who runs the periodic schedule (``beat``) now, and until when unless renewed.

    A row, not a PostgreSQL advisory lock: the same code on SQLite and PostgreSQL, it survives connection
    poolers that hand a session's connection to others, and ``SELECT * FROM scheduler_lease`` tells operations
    which node is active.
    """

    __tablename__ = "scheduler_lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=200)
    # Raised by one on every change of holder: a log line names the term a scheduler sent its tasks in.
    term: int = Field(default=1)
    acquired_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    renewed_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
