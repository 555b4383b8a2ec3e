"""Intake from verification institutions (Art. 15) and industry associations (Art. 16): CSV jobs with their
row-level errors, verification submissions (one per instrument and certificate) and reports.

Revision ID: 0005_intake
Revises: 2b18e1a22c77
Create Date: 2026-12-02 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_intake"
down_revision: str | None = "2b18e1a22c77"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORD_KINDS = (
    "inspection_failed",
    "metrology_accident",
    "instrument_unverified",
    "instrument_failed_verification",
    "instrument_overdue",
    "net_content_noncompliant",
    "short_weight",
    "metrology_cheating",
    "complaint_substantiated",
    "short_changing_penalty",
    "commitment_breached",
    "association_warning",
    "commitment_kept",
    "demonstration_unit",
)


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "intake_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("verifications", "association_reports", name="jobkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "queued", "running", "succeeded", "failed", name="jobstate", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("filename", _string(255), nullable=False),
        sa.Column("file_key", _string(512), nullable=False),
        sa.Column("file_sha256", _string(64), nullable=False),
        sa.Column("encoding", _string(16), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("records_created", sa.Integer(), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_intake_job_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_job")),
    )
    with op.batch_alter_table("intake_job", schema=None) as batch_op:
        batch_op.create_index("ix_intake_job_account", ["account_id", "id"], unique=False)

    op.create_table(
        "intake_row_error",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("column_name", _string(64), nullable=True),
        sa.Column("code", _string(64), nullable=False),
        sa.Column("message_zh", sa.Text(), nullable=False),
        sa.Column("message_en", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["intake_job.id"], name=op.f("fk_intake_row_error_job_id_intake_job")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_row_error")),
    )
    with op.batch_alter_table("intake_row_error", schema=None) as batch_op:
        batch_op.create_index("ix_intake_row_error_job", ["job_id", "row_number"], unique=False)

    op.create_table(
        "intake_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("row_number", sa.Integer(), nullable=True),
        sa.Column(
            "measure",
            sa.Enum("violation", "warning", "censure", name="reportmeasure", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "kind", sa.Enum(*RECORD_KINDS, name="recordkind", native_enum=False, length=32), nullable=False
        ),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.Integer(), nullable=True),
        sa.Column("fact_date", sa.Date(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence_refs", sa.JSON(), nullable=False),
        sa.Column("reference", _string(100), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", _string(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_intake_report_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"], ["instrument.id"], name=op.f("fk_intake_report_instrument_id_instrument")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["intake_job.id"], name=op.f("fk_intake_report_job_id_intake_job")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name=op.f("fk_intake_report_operator_id_operator")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"], ["integrity_record.id"], name=op.f("fk_intake_report_record_id_integrity_record")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_report")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_intake_report_dedupe_key")),
    )
    with op.batch_alter_table("intake_report", schema=None) as batch_op:
        batch_op.create_index("ix_intake_report_account", ["account_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_intake_report_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_intake_report_operator_id"), ["operator_id"], unique=False)

    op.create_table(
        "verification_submission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("row_number", sa.Integer(), nullable=True),
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("verification_record_id", sa.Integer(), nullable=False),
        sa.Column("certificate_no", _string(64), nullable=False),
        sa.Column("verified_on", sa.Date(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("overdue_in_use", sa.Boolean(), nullable=True),
        sa.Column("record_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_verification_submission_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instrument.id"],
            name=op.f("fk_verification_submission_instrument_id_instrument"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["intake_job.id"], name=op.f("fk_verification_submission_job_id_intake_job")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operator.id"], name=op.f("fk_verification_submission_operator_id_operator")
        ),
        sa.ForeignKeyConstraint(
            ["verification_record_id"],
            ["verification_record.id"],
            name=op.f("fk_verification_submission_verification_record_id_verification_record"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_submission")),
        sa.UniqueConstraint(
            "instrument_id",
            "certificate_no",
            name=op.f("uq_verification_submission_instrument_id_certificate_no"),
        ),
    )
    with op.batch_alter_table("verification_submission", schema=None) as batch_op:
        batch_op.create_index("ix_verification_submission_account", ["account_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_verification_submission_job_id"), ["job_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_verification_submission_operator_id"), ["operator_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("verification_submission", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_submission_operator_id"))
        batch_op.drop_index(batch_op.f("ix_verification_submission_job_id"))
        batch_op.drop_index("ix_verification_submission_account")
    op.drop_table("verification_submission")
    with op.batch_alter_table("intake_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_report_operator_id"))
        batch_op.drop_index(batch_op.f("ix_intake_report_job_id"))
        batch_op.drop_index("ix_intake_report_account")
    op.drop_table("intake_report")
    with op.batch_alter_table("intake_row_error", schema=None) as batch_op:
        batch_op.drop_index("ix_intake_row_error_job")
    op.drop_table("intake_row_error")
    with op.batch_alter_table("intake_job", schema=None) as batch_op:
        batch_op.drop_index("ix_intake_job_account")
    op.drop_table("intake_job")
