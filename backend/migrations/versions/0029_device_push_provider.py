"""Each device says which push provider carries it (``device.provider``: ``fcm`` or ``jpush``); every
device registered before this is an FCM device.

Revision ID: 0029_device_push_provider
Revises: 0028_scheduler_lease
Create Date: 2026-12-07 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_device_push_provider"
down_revision: str | None = "0028_scheduler_lease"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "provider",
                sa.Enum("fcm", "jpush", name="pushprovider", native_enum=False, length=32),
                nullable=False,
                server_default="fcm",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_column("provider")
