"""Run Alembic migrations and sync reference data (divisions, instrument catalogue)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from backend.config import get_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our migrations and the given (or configured) database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = database_url or get_settings().database_url
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(database_url: str | None = None) -> None:
    """Bring the schema to the newest revision and load reference data."""
    url = database_url or get_settings().database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
    sync_reference_data(url)


def sync_reference_data(database_url: str | None = None) -> tuple[int, int]:
    """Upsert the GB/T 2260 divisions and the instrument catalogue; returns the rows changed of each."""
    from backend.db import make_engine, session_scope
    from backend.instruments.service import sync_catalogue
    from backend.jurisdictions.service import sync_divisions

    engine = make_engine(database_url or get_settings().database_url)
    try:
        with session_scope(engine) as session:
            return sync_divisions(session), sync_catalogue(session)
    finally:
        engine.dispose()
