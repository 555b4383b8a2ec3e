"""The case queue's deadline order: (scope level, due_on, id) and (scope level, state, due_on, id) per level;
the overdue and escalated partial indexes carry due_on and state (PostgreSQL's INCLUDE).

The workbench's queue lists a scope's cases soonest deadline first; without these a page sorted every case in the
scope (100,000 in a city: a parallel sequential scan and a top-N sort per request). Its per-state counts of the
overdue and escalated filters read the partial indexes alone once the entries carry the state.

Revision ID: 0032_case_file_due_order
Revises: 0031_complaint_account_recent
Create Date: 2026-12-07 09:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032_case_file_due_order"
down_revision: str | None = "0031_complaint_account_recent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = ("province", "prefecture", "county")


def _partial(flag: str, include: list[str]) -> None:
    # INCLUDE is PostgreSQL's: on SQLite the partial indexes stay as they are.
    if op.get_bind().dialect.name != "postgresql":
        return
    for level in LEVELS:
        name = f"ix_case_file_{level}_{flag}"
        op.drop_index(name, table_name="case_file")
        op.create_index(
            name,
            "case_file",
            [f"{level}_code", "id"],
            unique=False,
            postgresql_where=sa.text(flag),
            postgresql_include=include,
        )


def upgrade() -> None:
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        for level in LEVELS:
            batch_op.create_index(f"ix_case_file_{level}_due", [f"{level}_code", "due_on", "id"], unique=False)
            batch_op.create_index(
                f"ix_case_file_{level}_state_due", [f"{level}_code", "state", "due_on", "id"], unique=False
            )
    _partial("overdue", ["due_on", "state"])
    _partial("escalated", ["due_on", "state"])


def downgrade() -> None:
    _partial("overdue", ["due_on"])
    _partial("escalated", [])
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        for level in LEVELS:
            batch_op.drop_index(f"ix_case_file_{level}_state_due")
            batch_op.drop_index(f"ix_case_file_{level}_due")
