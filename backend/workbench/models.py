"""Server-side sign-ins of the workbench: the browser holds only a random id, the row holds who and until when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from backend.db import utcnow


class WorkbenchSession(SQLModel, table=True):
    """One signed-in browser: the SHA-256 of its cookie (a leaked table signs nobody in) and its CSRF token."""

    __tablename__ = "workbench_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    account_id: int = Field(foreign_key="account.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # Moved forward by each request; a session idle for longer than the timeout is gone.
    last_seen_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
