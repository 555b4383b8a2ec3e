"""Engine, naming convention and the per-request session that commits at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import Enum as SAEnum
from sqlalchemy import MetaData, Table, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel, create_engine

from backend.config import get_settings

# Stable constraint names, so Alembic autogenerate and both dialects agree.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    """Timezone-aware now in UTC (stored naive-free everywhere)."""
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    # Take transaction control from pysqlite (its implicit BEGIN breaks SAVEPOINTs); see _sqlite_begin.
    dbapi_conn.isolation_level = None
    # WAL lets readers proceed beside the writer; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front: concurrent writers queue on busy_timeout instead of failing
    # with SQLITE_BUSY when a deferred read transaction tries to upgrade. SQLite is the single-machine default;
    # PostgreSQL is what scales.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the pragmas and pool settings each dialect needs."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_timeout", 5)
    return create_engine(url, **kwargs)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return make_engine(get_settings().database_url)


def new_session(engine: Engine | None = None) -> Session:
    """A session whose objects stay readable after commit (responses are built after the commit)."""
    return Session(engine or get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A unit of work for tasks and commands: commit on success, roll back on error."""
    from backend.errors import AppError

    session = new_session(engine)
    try:
        yield session
        session.commit()
    except AppError as exc:
        if exc.keep_changes:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_session() -> Iterator[Session]:
    """The request's session: services flush, this boundary commits before the response is sent."""
    with session_scope() as session:
        yield session


# scope="function" runs the commit before the response leaves, so a failed commit is never reported as success.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a model, for bulk statements that skip ORM object construction."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (for dialect-specific locking and upserts)."""
    return session.get_bind().dialect.name == "postgresql"


def enum_type(enum_cls: type[Enum]) -> SAEnum:
    """Store an enum as VARCHAR of its values: adding a value later needs no ALTER TYPE on PostgreSQL."""
    return SAEnum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )
