"""The publication gate (Art. 18): one row per request to publish an integrity record, with its four-eyes
review, the three confidentiality confirmations and how the publication ended; at most one open per record.

Revision ID: 0003_publication_gate
Revises: 2b18e1a22c77
Create Date: 2026-12-02 15:45:51.097287
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_publication_gate"
down_revision: str | None = "2b18e1a22c77"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "record_publication",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("record_version", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "published",
                "refused",
                "unpublished",
                "withdrawn",
                name="publicationstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_note", sa.Text(), nullable=False),
        sa.Column("reviewed_by_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=False),
        sa.Column("no_state_or_trade_secret", sa.Boolean(), nullable=False),
        sa.Column("no_personal_data", sa.Boolean(), nullable=False),
        sa.Column("no_undisclosed_information_of_other_organs", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ended_by_id"], ["account.id"], name=op.f("fk_record_publication_ended_by_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name=op.f("fk_record_publication_operator_id_operator")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["integrity_record.id"],
            name=op.f("fk_record_publication_record_id_integrity_record"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["account.id"], name=op.f("fk_record_publication_requested_by_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by_id"], ["account.id"], name=op.f("fk_record_publication_reviewed_by_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_publication")),
    )
    with op.batch_alter_table("record_publication", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_publication_record_id"), ["record_id"], unique=False)
        batch_op.create_index("ix_record_publication_status", ["status", "operator_id"], unique=False)
        batch_op.create_index(
            "ux_record_publication_open",
            ["record_id"],
            unique=True,
            postgresql_where=sa.text("status IN ('pending', 'published')"),
            sqlite_where=sa.text("status IN ('pending', 'published')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("record_publication", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_record_publication_open",
            postgresql_where=sa.text("status IN ('pending', 'published')"),
            sqlite_where=sa.text("status IN ('pending', 'published')"),
        )
        batch_op.drop_index("ix_record_publication_status")
        batch_op.drop_index(batch_op.f("ix_record_publication_record_id"))

    op.drop_table("record_publication")
