"""SMS for required notices: contacts with consent, one message per notice and operator, daily counters, and
the inbox's SMS due time under a partial index of unread required notices.

Revision ID: 0030_sms
Revises: 0029_device_push_provider
Create Date: 2026-12-07 05:57:04.846680
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0030_sms"
down_revision: str | None = "0029_device_push_provider"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_daily_count",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "scope", name=op.f("pk_sms_daily_count")),
    )
    op.create_table(
        "sms_contact",
        sa.Column("operator_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=11), nullable=False),
        sa.Column(
            "consent_source",
            sa.Enum("operator", "staff", name="consentsource", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("consent_by_id", sa.Integer(), nullable=False),
        sa.Column("consent_note", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_by_id"], ["account.id"], name=op.f("fk_sms_contact_consent_by_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name=op.f("fk_sms_contact_operator_id_operator")
        ),
        sa.PrimaryKeyConstraint("operator_id", name=op.f("pk_sms_contact")),
    )
    op.create_table(
        "sms_message",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("inbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("jurisdiction_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("template_key", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=11), nullable=True),
        sa.Column("phone_masked", sqlmodel.sql.sqltypes.AutoString(length=11), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "delivered",
                "not_reached",
                "skipped",
                name="smsstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("biz_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inbox_notification.id"], name=op.f("fk_sms_message_inbox_id_inbox_notification")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name=op.f("fk_sms_message_operator_id_operator")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_message")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_sms_message_dedupe_key")),
    )
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sms_message_bureau_month", ["jurisdiction_code", "created_at"], unique=False
        )
        batch_op.create_index("ix_sms_message_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_sms_message_operator", ["operator_id", "id"], unique=False)

    with op.batch_alter_table("inbox_notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_inbox_notification_sms_due",
            ["sms_due_at", "id"],
            unique=False,
            postgresql_where=sa.text("read_at IS NULL AND sms_due_at IS NOT NULL"),
            sqlite_where=sa.text("read_at IS NULL AND sms_due_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("inbox_notification", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_inbox_notification_sms_due",
            postgresql_where=sa.text("read_at IS NULL AND sms_due_at IS NOT NULL"),
            sqlite_where=sa.text("read_at IS NULL AND sms_due_at IS NOT NULL"),
        )
        batch_op.drop_column("sms_due_at")

    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_message_operator")
        batch_op.drop_index("ix_sms_message_due")
        batch_op.drop_index("ix_sms_message_bureau_month")

    op.drop_table("sms_message")
    op.drop_table("sms_contact")
    op.drop_table("sms_daily_count")
