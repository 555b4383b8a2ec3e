"""Data sharing with partner departments (Art. 21): their API keys, the feed's own ordered entries with the
capture marks over the history tables, and the read log of every feed call (Art. 20).

Revision ID: 0004_department_feed
Revises: 2b18e1a22c77
Create Date: 2026-12-02 16:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004_department_feed"
down_revision: str | None = "2b18e1a22c77"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEED_SOURCE = sa.Enum("rating_change", "record_version", name="feedsource", native_enum=False, length=32)


def upgrade() -> None:
    op.create_table(
        "exchange_api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("lookup_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("jurisdiction_codes", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("scope_path", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_id", sa.Integer(), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("rotated_from_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["account.id"], name=op.f("fk_exchange_api_key_created_by_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by_id"], ["account.id"], name=op.f("fk_exchange_api_key_revoked_by_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["rotated_from_id"],
            ["exchange_api_key.id"],
            name=op.f("fk_exchange_api_key_rotated_from_id_exchange_api_key"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_api_key")),
        sa.UniqueConstraint("lookup_id", name=op.f("uq_exchange_api_key_lookup_id")),
    )
    op.create_index(op.f("ix_exchange_api_key_scope_path"), "exchange_api_key", ["scope_path"], unique=False)
    op.create_table(
        "exchange_capture_mark",
        sa.Column("source", FEED_SOURCE, nullable=False),
        sa.Column("settled_through", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_exchange_capture_mark")),
    )
    op.create_table(
        "exchange_feed_entry",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("source", FEED_SOURCE, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column(
            "event",
            sa.Enum(
                "class_change",
                "record_verified",
                "record_corrected",
                "record_revoked",
                name="feedeventtype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name=op.f("fk_exchange_feed_entry_operator_id_operator")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["integrity_record.id"],
            name=op.f("fk_exchange_feed_entry_record_id_integrity_record"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_exchange_feed_entry")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_exchange_feed_entry_source_source_id")),
    )
    op.create_index(
        op.f("ix_exchange_feed_entry_operator_id"), "exchange_feed_entry", ["operator_id"], unique=False
    )
    op.create_table(
        "exchange_read_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("cursor_from", sa.Integer(), nullable=False),
        sa.Column("cursor_to", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("has_more", sa.Boolean(), nullable=False),
        sa.Column("client_ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["exchange_api_key.id"],
            name=op.f("fk_exchange_read_log_api_key_id_exchange_api_key"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_read_log")),
    )
    op.create_index("ix_exchange_read_log_key", "exchange_read_log", ["api_key_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_exchange_read_log_key", table_name="exchange_read_log")
    op.drop_table("exchange_read_log")
    op.drop_index(op.f("ix_exchange_feed_entry_operator_id"), table_name="exchange_feed_entry")
    op.drop_table("exchange_feed_entry")
    op.drop_table("exchange_capture_mark")
    op.drop_index(op.f("ix_exchange_api_key_scope_path"), table_name="exchange_api_key")
    op.drop_table("exchange_api_key")
