"""The law as data (issue 14 items 7, 8, 10): bureaus' own deadline figures (``deadline_rule``); each case
deadline keeps where its figure comes from, the extension its basis allows, whether testing or appraisal time
is left out and the pauses recorded; arbitration verifications ordered within cases; correction requests about
basic information and instrument data (no record), and the sweep's overdue mark and escalation.

Backfill: running deadlines keep their figures and read as statutory; open tip-off case-filing deadlines get
the extension (15 working days) and the pause their basis (penalty procedure rules, Art. 18) allows.

Revision ID: 0023_law_as_data
Revises: da22e9bc43dc
Create Date: 2026-12-07 00:37:24
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0023_law_as_data"
down_revision: str | None = "da22e9bc43dc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deadline_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("working_days", sa.Integer(), nullable=False),
        sa.Column("extension_working_days", sa.Integer(), nullable=False),
        sa.Column("legal_basis_zh", sa.Text(), nullable=False),
        sa.Column("legal_basis_en", sa.Text(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["jurisdiction_code"],
            ["jurisdiction.code"],
            name=op.f("fk_deadline_rule_jurisdiction_code_jurisdiction"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["account.id"], name=op.f("fk_deadline_rule_updated_by_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline_rule")),
        sa.UniqueConstraint("jurisdiction_code", "key", name=op.f("uq_deadline_rule_jurisdiction_code_key")),
    )
    op.create_table(
        "arbitration_verification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ordered_by_id", sa.Integer(), nullable=True),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "result",
            sa.Enum("pending", "passed", "failed", name="arbitrationresult", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("certificate_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("verified_on", sa.Date(), nullable=True),
        sa.Column("result_notes", sa.Text(), nullable=False),
        sa.Column("result_by_id", sa.Integer(), nullable=True),
        sa.Column("result_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_arbitration_verification_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["account.id"],
            name=op.f("fk_arbitration_verification_institution_id_account"),
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instrument.id"],
            name=op.f("fk_arbitration_verification_instrument_id_instrument"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name=op.f("fk_arbitration_verification_operator_id_operator")
        ),
        sa.ForeignKeyConstraint(
            ["ordered_by_id"], ["account.id"], name=op.f("fk_arbitration_verification_ordered_by_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["result_by_id"], ["account.id"], name=op.f("fk_arbitration_verification_result_by_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arbitration_verification")),
    )
    with op.batch_alter_table("arbitration_verification", schema=None) as batch_op:
        batch_op.create_index("ix_arbitration_case", ["case_id", "id"], unique=False)
        batch_op.create_index("ix_arbitration_institution", ["institution_id", "result"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_arbitration_verification_instrument_id"), ["instrument_id"], unique=False
        )

    with op.batch_alter_table("case_deadline", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "basis_source",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                server_default="statute",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("extension_working_days", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("extended", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("pausable", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("pauses", sa.JSON(), server_default="[]", nullable=False))
    op.execute(
        "UPDATE case_deadline SET extension_working_days = 15, pausable = true "
        "WHERE key = 'tip_off_case_filing_decision' AND ended_at IS NULL"
    )

    with op.batch_alter_table("correction_request", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "subject",
                sa.Enum(
                    "record", "operator", "instrument", name="correctionsubject", native_enum=False, length=32
                ),
                server_default="record",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("instrument_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "basis_source",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                server_default="statute",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("escalated_to", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True)
        )
        batch_op.alter_column("record_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(
            batch_op.f("ix_correction_request_instrument_id"), ["instrument_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_correction_request_instrument_id_instrument"),
            "instrument",
            ["instrument_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_correction_request_escalated_to_jurisdiction"),
            "jurisdiction",
            ["escalated_to"],
            ["code"],
        )


def downgrade() -> None:
    # Requests about basic information or instruments have no record: they cannot survive the NOT NULL.
    op.execute("DELETE FROM correction_request WHERE record_id IS NULL")
    with op.batch_alter_table("correction_request", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_correction_request_escalated_to_jurisdiction"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_correction_request_instrument_id_instrument"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_correction_request_instrument_id"))
        batch_op.alter_column("record_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("escalated_to")
        batch_op.drop_column("overdue_at")
        batch_op.drop_column("basis_source")
        batch_op.drop_column("instrument_id")
        batch_op.drop_column("subject")

    with op.batch_alter_table("case_deadline", schema=None) as batch_op:
        batch_op.drop_column("pauses")
        batch_op.drop_column("pausable")
        batch_op.drop_column("extended")
        batch_op.drop_column("extension_working_days")
        batch_op.drop_column("basis_source")

    with op.batch_alter_table("arbitration_verification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_arbitration_verification_instrument_id"))
        batch_op.drop_index("ix_arbitration_institution")
        batch_op.drop_index("ix_arbitration_case")

    op.drop_table("arbitration_verification")
    op.drop_table("deadline_rule")
