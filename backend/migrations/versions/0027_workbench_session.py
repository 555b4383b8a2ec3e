"""Workbench sign-ins: server-side sessions of the bureau workbench (cookie digest, CSRF token, last activity).

Revision ID: 0027_workbench_session
Revises: 0026_app_uploads_inbox_texts
Create Date: 2026-12-07 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0027_workbench_session"
down_revision: str | None = "0026_app_uploads_inbox_texts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workbench_session",
        sa.Column("id_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_workbench_session_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_workbench_session")),
    )
    op.create_index(
        op.f("ix_workbench_session_account_id"), "workbench_session", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_workbench_session_account_id"), table_name="workbench_session")
    op.drop_table("workbench_session")
