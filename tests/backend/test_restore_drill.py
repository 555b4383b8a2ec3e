"""The restore drill of docs/DEPLOY.md, on PostgreSQL: dump, drop, restore into a fresh database; the audit chain
verifies and every table has the rows it had."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from backend.audit.service import verify_chain
from backend.auth.models import Role
from backend.db import metadata
from tests.factories import COUNTY_A, make_account, make_operator

pytestmark = pytest.mark.postgres

ADMIN_URL = os.environ.get("GONGPING_TEST_DATABASE_URL", "")


def _url(database: str) -> str:
    return f"{ADMIN_URL.rpartition('/')[0]}/{database}"


def _engine(database: str) -> Engine:
    return create_engine(_url(database).replace("postgresql://", "postgresql+psycopg://", 1))


def _admin(sql: str) -> None:
    engine = _engine(ADMIN_URL.rpartition("/")[2])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(sql))
    engine.dispose()


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in metadata.tables
        }


def _run(*args: str) -> None:
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, f"{args[0]} failed: {out.stderr}"


@pytest.fixture
def scratch() -> Iterator[list[str]]:
    """Names of scratch databases, dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_dump_drop_restore_keeps_every_row_and_the_audit_chain(
    committed_session: Session, db_engine: Engine, scratch: list[str], tmp_path: Path
) -> None:
    if not ADMIN_URL.startswith("postgresql"):
        pytest.skip("the restore drill is PostgreSQL's: set GONGPING_TEST_DATABASE_URL")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.fail("pg_dump and pg_restore (postgresql-client) are needed for the restore drill")
    # Audited changes to carry through the drill.
    staff = make_account(committed_session, Role.staff, COUNTY_A)
    for _ in range(3):
        make_operator(committed_session, staff)
    committed_session.commit()
    source = db_engine.url.database
    assert source
    # The production database stands in as a copy of the test database (the test's own must survive).
    live = f"{source}_live"
    scratch.append(live)
    _admin(f'CREATE DATABASE "{live}"')
    dump = tmp_path / "gongping.dump"
    _run("pg_dump", "--format=custom", f"--file={dump}", _url(source))
    _run("pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_url(live)}", str(dump))
    live_engine = _engine(live)
    before = _counts(live_engine)
    assert before["audit_entry"] > 0 and before["operator"] >= 3
    # The drill: back up, lose the database, restore the backup into a fresh one.
    backup = tmp_path / f"backup-{uuid.uuid4().hex[:6]}.dump"
    _run("pg_dump", "--format=custom", f"--file={backup}", _url(live))
    live_engine.dispose()
    _admin(f'DROP DATABASE "{live}" WITH (FORCE)')
    restored = f"{source}_restored"
    scratch.append(restored)
    _admin(f'CREATE DATABASE "{restored}"')
    _run("pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_url(restored)}", str(backup))
    engine = _engine(restored)
    try:
        assert _counts(engine) == before
        with Session(engine) as session:
            checked, problems = verify_chain(session)
        assert problems == [] and checked == before["audit_entry"]
        with engine.connect() as conn:
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        with db_engine.connect() as conn:
            assert head == conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
