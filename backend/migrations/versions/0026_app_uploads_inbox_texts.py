"""The app's features: photos uploaded ahead of their complaint (``photo_upload``), and each inbox entry's text
in every locale (``inbox_notification.texts``) so the inbox reads in the language the app asks for. Existing
entries keep only the language they were written in.

Revision ID: 0026_app_uploads_inbox_texts
Revises: 0023_law_as_data
Create Date: 2026-12-07 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0026_app_uploads_inbox_texts"
down_revision: str | None = "0023_law_as_data"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "photo_upload",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("original_key", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("original_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("original_bytes", sa.Integer(), nullable=False),
        sa.Column("original_format", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=True),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_photo_upload_account_id_account")),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaint.id"], name=op.f("fk_photo_upload_complaint_id_complaint")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo_upload")),
    )
    with op.batch_alter_table("photo_upload", schema=None) as batch_op:
        batch_op.create_index("ix_photo_upload_account_sha", ["account_id", "original_sha256"], unique=False)
        batch_op.create_index("ix_photo_upload_expiry", ["complaint_id", "expires_at"], unique=False)
    with op.batch_alter_table("inbox_notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("texts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox_notification", schema=None) as batch_op:
        batch_op.drop_column("texts")
    with op.batch_alter_table("photo_upload", schema=None) as batch_op:
        batch_op.drop_index("ix_photo_upload_expiry")
        batch_op.drop_index("ix_photo_upload_account_sha")
    op.drop_table("photo_upload")
