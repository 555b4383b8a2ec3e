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
        # Boundaries convert once (seconds); keep the cache between runs like a real deployment would.
        "GONGPING_GEO_CACHE_DIR": str(Path(__file__).resolve().parent.parent / "var" / "geo-test"),
        "GONGPING_ARGON2_TIME_COST": "1",
        "GONGPING_ARGON2_MEMORY_KIB": "1024",
        "GONGPING_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        # Tests change data between two reads of a public page; the micro-cache has its own tests.
        "GONGPING_PUBLIC_CACHE_SECONDS": "0",
    }
)

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402
from sqlmodel import Session  # noqa: E402

from backend import ratelimit  # noqa: E402
from backend.db import get_engine, get_session  # noqa: E402
from backend.hooks import install as install_hooks  # noqa: E402
from backend.main import create_app  # noqa: E402
from tests.support.s3_standin import s3_bucket, s3_server  # noqa: E402, F401 - the S3 stand-in for any test

# Like every entry point, the test session installs the session hooks (services run here without the app).
install_hooks()

DB_FIXTURES = {"db_engine", "session", "client", "committed_session"}


def is_pure(item: pytest.Item) -> bool:
    """A test is pure when it uses no database fixture and is not marked ``postgres`` (written for the
    PostgreSQL re-run: marking it pure would deselect it exactly where it can run)."""
    if item.get_closest_marker("postgres") is not None:
        return False
    return not DB_FIXTURES & set(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use no database as pure, so the PostgreSQL re-run skips them."""
    for item in items:
        if is_pure(item):
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


def _table_keys(engine: Engine) -> dict[str, set[tuple[object, ...]]]:
    """Every row's primary key in every table, to tell afterwards which rows a test committed."""
    from sqlalchemy import inspect, select

    import backend.models  # noqa: F401 - every table in the metadata
    from backend.db import metadata

    present = set(inspect(engine).get_table_names())
    keys: dict[str, set[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in present:
                keys[table.name] = {tuple(row) for row in conn.execute(select(*table.primary_key.columns))}
    return keys


def _delete_new_rows(
    engine: Engine, before: dict[str, set[tuple[object, ...]]], head: dict[str, object] | None
) -> None:
    """Delete the rows committed since ``before`` (children first) and put the audit chain's head back."""
    from sqlalchemy import delete, tuple_

    from backend.db import metadata

    after = _table_keys(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # The audit log is append-only by trigger; a test's own entries are removed like any other row.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(metadata.sorted_tables):
            added = after.get(table.name, set()) - before.get(table.name, set())
            if not added or table.name == "audit_head":
                continue
            pk = tuple(table.primary_key.columns)
            for chunk in (list(added)[i : i + 500] for i in range(0, len(added), 500)):
                conn.execute(delete(table).where(tuple_(*pk).in_(chunk)))
        # The head follows the newest entry that remains: a task still finishing from the test may have appended
        # after the snapshot, and restoring an older head would make the next append reuse a sequence number.
        last = conn.execute(text("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")).first()
        conn.execute(text("DELETE FROM audit_head"))
        if last is not None:
            conn.execute(
                text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)"),
                {"seq": last[0], "hash": last[1]},
            )
        elif head is not None:
            conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)"), dict(head))


def _table_rows(engine: Engine) -> dict[str, dict[tuple[object, ...], dict[str, object]]]:
    """Every row of every table by primary key, to put rows a test changed or deleted back afterwards."""
    from sqlalchemy import inspect, select

    import backend.models  # noqa: F401 - every table in the metadata
    from backend.db import metadata

    present = set(inspect(engine).get_table_names())
    rows: dict[str, dict[tuple[object, ...], dict[str, object]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name not in present or table.name == "audit_head":
                continue
            pk = [c.name for c in table.primary_key.columns]
            rows[table.name] = {
                tuple(m[c] for c in pk): dict(m) for m in conn.execute(select(table)).mappings()
            }
    return rows


def _restore_rows(engine: Engine, before: dict[str, dict[tuple[object, ...], dict[str, object]]]) -> None:
    """Delete the rows added since ``before`` and put back the ones changed or deleted (values as they were).

    ``_delete_new_rows`` only removes additions; a sequence of calls that changes a row it did not create (a
    case accepted, a profile edited) needs this to be replayed against the same world.
    """
    from sqlalchemy import and_, delete, insert, update

    from backend.db import metadata

    after = _table_rows(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Triggers (the audit log's append-only guard, foreign keys) are off for this transaction only.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        tables = {t.name: t for t in metadata.sorted_tables}
        for name in reversed([t.name for t in metadata.sorted_tables]):
            if name not in before:
                continue
            table = tables[name]
            pk = list(table.primary_key.columns)
            now = after.get(name, {})
            for key in now.keys() - before[name].keys():
                conn.execute(delete(table).where(and_(*(c == v for c, v in zip(pk, key, strict=True)))))
        for name in [t.name for t in metadata.sorted_tables]:
            if name not in before:
                continue
            table = tables[name]
            pk = list(table.primary_key.columns)
            now = after.get(name, {})
            for key, row in before[name].items():
                if key not in now:
                    conn.execute(insert(table).values(**row))
                elif now[key] != row:
                    where = and_(*(c == v for c, v in zip(pk, key, strict=True)))
                    conn.execute(update(table).where(where).values(**row))
        last = conn.execute(text("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")).first()
        conn.execute(text("DELETE FROM audit_head"))
        if last is not None:
            conn.execute(
                text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)"),
                {"seq": last[0], "hash": last[1]},
            )


@pytest.fixture
def committed_session(db_engine: Engine) -> Iterator[Session]:
    """A session whose commits are real, for workers and concurrent requests that must see the data.

    Whatever the test commits (through this session, the app or a worker) is deleted afterwards and the audit
    chain's head restored, so later tests see the database as it was.
    """
    before = _table_keys(db_engine)
    with db_engine.connect() as conn:
        row = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).first()
    head = {"seq": row[0], "hash": row[1]} if row is not None else None
    s = Session(db_engine, expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()
        _delete_new_rows(db_engine, before, head)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for the tests that need one: ``GONGPING_TEST_REDIS_URL`` (CI: the machine's), else a
    throwaway ``redis-server`` on a free port, else the test is skipped (a machine with only Python and make).
    """
    import shutil
    import subprocess
    import time

    import redis

    url = os.environ.get("GONGPING_TEST_REDIS_URL")
    if url:
        yield url
        return
    if shutil.which("redis-server") is None:
        pytest.skip("no Redis: set GONGPING_TEST_REDIS_URL or install redis-server")
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
