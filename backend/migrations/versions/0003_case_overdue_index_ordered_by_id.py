"""Order the cases' partial overdue indexes by id, carrying the due date (PostgreSQL), so the work list's
``overdue=true`` page is read newest-first straight from the index and the overdue list sorts few entries.

Revision ID: 2b18e1a22c77
Revises: 0002
Create Date: 2026-11-27 03:56:21.635789
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2b18e1a22c77"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = ("county", "prefecture", "province")


def upgrade() -> None:
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        for level in LEVELS:
            batch_op.drop_index(f"ix_case_file_{level}_overdue")
            batch_op.create_index(
                f"ix_case_file_{level}_overdue",
                [f"{level}_code", "id"],
                unique=False,
                postgresql_where=sa.text("overdue"),
                postgresql_include=["due_on"],
                sqlite_where=sa.text("overdue"),
            )


def downgrade() -> None:
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        for level in LEVELS:
            batch_op.drop_index(f"ix_case_file_{level}_overdue")
            batch_op.create_index(
                f"ix_case_file_{level}_overdue",
                [f"{level}_code", "due_on"],
                unique=False,
                postgresql_where=sa.text("overdue"),
                sqlite_where=sa.text("overdue"),
            )
