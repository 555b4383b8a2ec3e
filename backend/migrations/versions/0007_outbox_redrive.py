"""Outbox redrive: which tasks of an event finished, and whether all did (``handled_at``), so events whose
messages the broker lost are published again. Events already published count as handled.

Revision ID: 0007_outbox_redrive
Revises: 2b18e1a22c77
Create Date: 2026-12-02 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_outbox_redrive"
down_revision: str | None = "2b18e1a22c77"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNHANDLED = "handled_at IS NULL AND published_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "outbox_task_done",
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "task"),
    )
    with op.batch_alter_table("outbox_event") as batch:
        batch.add_column(sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("redrives", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE outbox_event SET handled_at = published_at WHERE published_at IS NOT NULL")
    op.create_index(
        "ix_outbox_event_unhandled",
        "outbox_event",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text(UNHANDLED),
        sqlite_where=sa.text(UNHANDLED),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_event_unhandled", table_name="outbox_event")
    with op.batch_alter_table("outbox_event") as batch:
        batch.drop_column("redrives")
        batch.drop_column("handled_at")
    op.drop_table("outbox_task_done")
