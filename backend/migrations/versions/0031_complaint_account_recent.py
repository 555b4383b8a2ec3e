"""The filer's own complaints by (account_id, id): the list page and its validator read one index range.

The single-column ``ix_complaint_account_id`` is its prefix and goes (every lookup by account uses the new one).

Revision ID: 0031_complaint_account_recent
Revises: 0030_sms
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031_complaint_account_recent"
down_revision: str | None = "0030_sms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("complaint", schema=None) as batch_op:
        batch_op.create_index("ix_complaint_account_recent", ["account_id", "id"], unique=False)
        batch_op.drop_index("ix_complaint_account_id")


def downgrade() -> None:
    with op.batch_alter_table("complaint", schema=None) as batch_op:
        batch_op.create_index("ix_complaint_account_id", ["account_id"], unique=False)
        batch_op.drop_index("ix_complaint_account_recent")
