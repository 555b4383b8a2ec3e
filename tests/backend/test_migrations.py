"""The migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from backend.models import metadata


def test_autogenerate_finds_nothing_to_do(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_every_table_is_migrated(db_engine: Engine) -> None:
    from sqlalchemy import inspect

    tables = set(inspect(db_engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert "alembic_version" in tables
