"""Merge the four branches written in parallel (publication gate, department feed, intake, outbox redrive).

A merge revision changes no schema: it only joins the branches so that there is one head again.

Revision ID: 0008_merge_heads
Revises: 0003_publication_gate, 0004_department_feed, 0005_intake, 0007_outbox_redrive
Create Date: 2026-12-02 16:51:00.322986
"""

from collections.abc import Sequence

revision: str = "0008_merge_heads"
down_revision: str | None = (
    "0003_publication_gate",
    "0004_department_feed",
    "0005_intake",
    "0007_outbox_redrive",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the parents hold every operation."""


def downgrade() -> None:
    """Nothing to undo: downgrading past this splits back into the four branches."""
