"""Test set-up: a fresh database per run (SQLite, or PostgreSQL with GONGPING_TEST_DATABASE_URL), migrated
by Alembic, and a transaction rolled back after every test."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Settings are read once per process: point them at throwaway places before anything imports the backend.
_TMP = Path(tempfile.mkdtemp(prefix="gongping-test-"))
_PG_ADMIN_URL = os.environ.get("GONGPING_TEST_DATABASE_URL")
_DB_NAME = f"gongping_test_{uuid.uuid4().hex[:10]}"


def _pg_url(admin_url: str, database: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


TEST_DATABASE_URL = _pg_url(_PG_ADMIN_URL, _DB_NAME) if _PG_ADMIN_URL else f"sqlite:///{_TMP / 'test.db'}"
os.environ.update(
    {
        "GONGPING_ENVIRONMENT": "test",
        "GONGPING_DATABASE_URL": TEST_DATABASE_URL,
        "GONGPING_BROKER_URL": "filesystem://",
        "GONGPING_BROKER_DIR": str(_TMP / "broker"),
        "GONGPING_MEDIA_DIR": str(_TMP / "media"),
        "GONGPING_GEO_CACHE_DIR": str(_TMP / "geo"),
        "GONGPING_ARGON2_TIME_COST": "1",
        "GONGPING_ARGON2_MEMORY_KIB": "1024",
        "GONGPING_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
    }
)

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402
from sqlmodel import Session  # noqa: E402

from backend import ratelimit  # noqa: E402
from backend.db import get_engine, get_session  # noqa: E402
from backend.main import create_app  # noqa: E402

DB_FIXTURES = {"db_engine", "session", "client", "committed_session"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use no database as pure, so the PostgreSQL re-run skips them."""
    for item in items:
        if not DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pure)


def _create_pg_database() -> None:
    assert _PG_ADMIN_URL
    admin = create_engine(
        _PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{_DB_NAME}"'))
    admin.dispose()


def _drop_pg_database() -> None:
    assert _PG_ADMIN_URL
    get_engine().dispose()
    admin = create_engine(
        _PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{_DB_NAME}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def db_engine() -> Iterator[Engine]:
    """The migrated test database (Alembic from empty, then reference data)."""
    from backend.migrate import upgrade

    if _PG_ADMIN_URL:
        _create_pg_database()
    upgrade(TEST_DATABASE_URL)
    yield get_engine()
    if _PG_ADMIN_URL:
        _drop_pg_database()


@pytest.fixture
def connection(db_engine: Engine) -> Iterator[Connection]:
    """A connection holding an outer transaction that is rolled back after the test."""
    conn = db_engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    """A session whose commits are savepoints inside the test's transaction."""
    s = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    ratelimit.reset()
    yield


@pytest.fixture
def client(session: Session) -> Iterator[TestClient]:
    """The app in-process, its requests sharing the test's rolled-back transaction."""
    from backend.errors import AppError

    app = create_app()

    def _session() -> Iterator[Session]:
        try:
            yield session
            session.commit()
        except AppError as exc:
            session.commit() if exc.keep_changes else session.rollback()
            raise
        except BaseException:
            session.rollback()
            raise

    app.dependency_overrides[get_session] = _session
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
