"""Engine, naming convention and the per-request session that commits at the boundary."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import JSON, MetaData, Table, event
from sqlalchemy import Enum as SAEnum
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


def iso_utc(at: datetime) -> str:
    """A datetime as UTC ISO-8601 with microseconds (SQLite hands back naive values, which are UTC here)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def json_default(value: Any) -> Any:
    """How non-JSON values are written everywhere (JSON columns and audit hashes must agree)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_dumps(value: Any) -> str:
    """The JSON text stored in JSON columns."""
    return json.dumps(value, ensure_ascii=False, default=json_default)


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
    settings = get_settings()
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("pool_size", settings.db_pool_size)
    kwargs.setdefault("max_overflow", settings.db_max_overflow)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_pre_ping", True)
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


def bulk_insert(
    session: Session, table: Table, rows: list[dict[str, Any]], *, assign_ids: bool = False
) -> None:
    """Insert many rows fast, bypassing per-row statement compilation: COPY on PostgreSQL, a raw
    ``executemany`` on SQLite. With ``assign_ids`` each row gets its ``id`` first (from the sequence, or after
    the current maximum under SQLite's write lock), so callers know the keys without RETURNING.
    """
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    if assign_ids:
        ids: Iterable[int]
        if dialect.name == "postgresql":
            ids = conn.exec_driver_sql(
                # Identifiers come from our own Table objects, never from input.
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, {len(rows)})"  # noqa: S608
            ).scalars()
        else:
            start = conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table.name}").scalar_one()  # noqa: S608
            ids = iter(range(start + 1, start + 1 + len(rows)))
        for row, new_id in zip(rows, ids, strict=True):
            row["id"] = new_id
    # Raw statements skip SQLAlchemy's Python-side defaults, so apply them here (scalar or callable).
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.name in rows[0] or column.default is None or column.primary_key:
            continue
        default = column.default
        if getattr(default, "is_scalar", False):
            defaults[column.name] = default.arg  # type: ignore[attr-defined]
        elif getattr(default, "is_callable", False):
            defaults[column.name] = default.arg(None)  # type: ignore[attr-defined]
    if defaults:
        for row in rows:
            for name, value in defaults.items():
                row.setdefault(name, value)
    columns = list(rows[0])
    # Each column's own bind processor turns Python values into what the driver stores (JSON text, dates).
    processors = []
    for name in columns:
        column_type = table.c[name].type
        processor = column_type.bind_processor(dialect)
        if dialect.name == "postgresql" and not isinstance(column_type, JSON):
            processor = None  # psycopg adapts dates, booleans and text natively in COPY
        processors.append(processor)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    if dialect.name == "postgresql":
        pg_cursor: Any = dbapi.cursor()  # psycopg's cursor: COPY is not in the DBAPI protocol
        with pg_cursor, pg_cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([p(row[c]) if p else row[c] for c, p in zip(columns, processors, strict=True)])
        return
    placeholders = ", ".join("?" for _ in columns)
    cursor = dbapi.cursor()
    cursor.executemany(
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608
        [[p(row[c]) if p else row[c] for c, p in zip(columns, processors, strict=True)] for row in rows],
    )
    cursor.close()
