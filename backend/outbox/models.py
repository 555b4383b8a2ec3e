"""The transactional outbox: events written with the change, published to Celery after commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, text
from sqlmodel import Field, SQLModel

from backend.db import utcnow


class OutboxEvent(SQLModel, table=True):
    """A domain event waiting to be (or already) handed to the workers."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_pending", "published_at", "available_at"),
        # The redrive sweep looks only at published events whose tasks have not all finished: a small set.
        Index(
            "ix_outbox_event_unhandled",
            "published_at",
            postgresql_where=text("handled_at IS NULL AND published_at IS NOT NULL"),
            sqlite_where=text("handled_at IS NULL AND published_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    topic: str = Field(max_length=64, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The same logical event (e.g. one instrument falling overdue on one date) is stored once, however often
    # its producer runs.
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    available_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    published_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    # Set once every task of the topic has finished successfully (workers/delivery_tracking.py); until then the
    # redrive sweep republishes the event, so a message the broker lost (a Redis restart without persistence)
    # is not lost for good.
    handled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # Server default: bulk producers (COPY, executemany) leave it out.
    redrives: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class OutboxTaskDone(SQLModel, table=True):
    """One task of one event that finished successfully (a redelivered duplicate finds its row already here)."""

    __tablename__ = "outbox_task_done"

    event_id: int = Field(sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True))
    task: str = Field(max_length=100, primary_key=True)
    done_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
