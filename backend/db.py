"""Engine, naming convention and the per-request session that commits at the boundary."""

from __future__ import annotations

import json
import select as _select
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy import ARRAY, JSON, ColumnElement, MetaData, Select, Table, any_, bindparam, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, UOWTransaction
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel import Session, SQLModel, create_engine
from starlette.concurrency import run_in_threadpool

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


def system_clock() -> datetime:
    """The machine's clock, in UTC."""
    return datetime.now(UTC)


#: Where :func:`utcnow` reads the time. The one clock of the code base: a test that runs a flow at a chosen
#: instant replaces it (``tests/clock.py``), and every ``from backend.db import utcnow`` sees the change.
clock: Callable[[], datetime] = system_clock


def utcnow() -> datetime:
    """Timezone-aware now in UTC (stored naive-free everywhere)."""
    return clock()


def aware(at: datetime) -> datetime:
    """An instant read back from the database as UTC-aware (SQLite hands back naive values, stored in UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@lru_cache(maxsize=1024)
def iso_utc(at: datetime) -> str:
    """A datetime as UTC ISO-8601 with microseconds (SQLite hands back naive values, which are UTC here).

    Cached: bulk writes stamp thousands of rows with the same instant (equal datetimes give equal text).
    """
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


#: ``json.dumps(value, ensure_ascii=False, default=json_default)`` builds this encoder on every call; bulk
#: writes serialise hundreds of thousands of values, so build it once (encode() keeps no state between calls).
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=json_default)


def json_dumps(value: Any) -> str:
    """The JSON text stored in JSON columns."""
    return _ENCODER.encode(value)


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


#: Execution option of a read-only session's connections (see ``read_only``).
READ_ONLY_OPTION = "gongping_read_only"


class _SQLiteUTCDateTime(SQLITE_DATETIME):
    """SQLite's DATETIME for ``DateTime(timezone=True)`` columns: UTC in storage, aware UTC when read.

    SQLite has no time zones: SQLAlchemy writes an aware value's wall-clock time and drops its offset, and
    reads naive values back, which responses then serialise without an offset (not an RFC 3339 date-time).
    """

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        inner = super().bind_processor(dialect)

        def process(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            return inner(value) if inner else value

        return process

    def result_processor(self, dialect: Any, coltype: object) -> Callable[[Any], Any] | None:
        inner = super().result_processor(dialect, coltype)
        if not self.timezone:
            return inner

        def process(value: Any) -> Any:
            value = inner(value) if inner else value
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value

        return process


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front: concurrent writers queue on busy_timeout instead of failing
    # with SQLITE_BUSY when a deferred read transaction tries to upgrade. SQLite is the single-machine default;
    # PostgreSQL is what scales. A read-only session never upgrades, so it takes a plain (deferred) snapshot
    # and neither waits for nor blocks the writer (WAL).
    if conn.get_execution_options().get(READ_ONLY_OPTION):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _socket_check(dbapi_conn: Any, _record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
    """On checkout, refuse a pooled PostgreSQL connection the server has already closed, without a round trip.

    An idle connection receives nothing unless the server ends it: a restart or an administrator's kill sends
    an error and closes the socket, which then polls readable. That costs a ``poll()`` instead of the
    ``SELECT 1`` of ``pool_pre_ping`` on every checkout. Raising ``InvalidatePoolError`` makes the pool
    reconnect (up to two attempts) and recycle every connection older than now, as pre-ping would; while the
    server stays down the reconnect fails with ``OperationalError`` (503 with Retry-After). A connection that
    breaks mid-request is still detected by the driver, and SQLAlchemy then invalidates the pool likewise.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        raise sa_exc.InvalidatePoolError("connection closed")
    poller = _select.poll()
    poller.register(dbapi_conn.fileno(), _select.POLLIN | _select.POLLERR | _select.POLLHUP)
    if poller.poll(0):
        raise sa_exc.InvalidatePoolError("server closed the idle connection")


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
        # Timezone-aware columns come back aware (UTC), as on PostgreSQL, and aware values are stored in UTC.
        engine.dialect.colspecs = {**engine.dialect.colspecs, sqltypes.DateTime: _SQLiteUTCDateTime}
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # No SELECT 1 before every checkout: _socket_check finds connections the server closed without a round
    # trip. pool_pre_ping=True may still be passed for a pessimistic ping (e.g. behind a proxy that keeps the
    # client socket open when the server goes away); recycling bounds how long any connection lives.
    pre_ping = kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_timeout", 5)
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(url, **kwargs)
    if not pre_ping and engine.dialect.driver == "psycopg":
        event.listen(engine, "checkout", _socket_check)
    return engine


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return make_engine(get_settings().database_url)


def new_session(engine: Engine | None = None) -> Session:
    """A session whose objects stay readable after commit (responses are built after the commit)."""
    return Session(engine or get_engine(), expire_on_commit=False)


class ReadOnlySession(Session):
    """A session for requests that only read: no write lock on SQLite, no BEGIN/COMMIT round trips on
    PostgreSQL (autocommit; under READ COMMITTED each statement took its own snapshot anyway).

    Writing through it is a programming error and refused before anything reaches the database.
    """


def _refuse_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise sa_exc.InvalidRequestError("a read-only session cannot write (mark the route as writing)")


def _refuse_writes(state: ORMExecuteState) -> None:
    if not state.is_select:
        raise sa_exc.InvalidRequestError("a read-only session runs SELECT statements only")


event.listen(ReadOnlySession, "before_flush", _refuse_flush)
event.listen(ReadOnlySession, "do_orm_execute", _refuse_writes)


@lru_cache(maxsize=8)
def _read_only_engine(engine: Engine) -> Engine:
    options: dict[str, Any] = {READ_ONLY_OPTION: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    return engine.execution_options(**options)


def new_read_only_session(engine: Engine | None = None) -> ReadOnlySession:
    """A session that only reads (see ``ReadOnlySession``), on the same pool as ``new_session``'s."""
    return ReadOnlySession(_read_only_engine(engine or get_engine()), expire_on_commit=False)


_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])
_READ_ONLY_ATTR = "__gongping_read_only__"


def read_only(endpoint: _Endpoint) -> _Endpoint:
    """Mark a route that only reads: its ``SessionDep`` (and its dependencies') is a ``ReadOnlySession``.

    Only for routes and dependencies that never write, lock or audit; a write through it raises.
    """
    setattr(endpoint, _READ_ONLY_ATTR, True)
    return endpoint


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


#: What batch jobs take to open their transactions: ``session_scope`` in production, a test's session in tests.
UnitOfWork = Callable[[], AbstractContextManager[Session]]


def _finish(session: Session, error: BaseException | None) -> None:
    """End a request's unit of work as ``session_scope`` does: commit, or roll back on error; then close."""
    from backend.errors import AppError

    try:
        if error is None or (isinstance(error, AppError) and error.keep_changes):
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def _finishes_without_io(session: Session) -> bool:
    # Autocommit (read-only on PostgreSQL) and SQLite read snapshots end without waiting on anyone; a session
    # that never touched the database has nothing to end. Anything else may wait for a COMMIT: off the loop.
    if isinstance(session, ReadOnlySession):
        return True
    return not session.in_transaction() and not (session.new or session.dirty or session.deleted)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session: services flush, this boundary commits before the response is sent.

    Creating a session does no I/O (it connects on first use), so it happens on the event loop instead of
    costing a worker-thread round trip per request; the commit goes to a worker thread unless it can do no
    I/O. Routes marked ``read_only`` get a ``ReadOnlySession``.
    """
    if getattr(request.scope.get("endpoint"), _READ_ONLY_ATTR, False):
        session: Session = new_read_only_session()
    else:
        session = new_session()
    try:
        yield session
    except BaseException as exc:
        # Shielded: a cancelled request (client gone) still returns its connection, rolled back.
        with anyio.CancelScope(shield=True):
            if _finishes_without_io(session):
                _finish(session, exc)
            else:
                await run_in_threadpool(_finish, session, exc)
        raise
    if _finishes_without_io(session):
        _finish(session, None)
    else:
        await run_in_threadpool(_finish, session, None)


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


def skip_locked(session: Session, stmt: Select[Any]) -> Select[Any]:
    """``stmt`` taking row locks that concurrent claimers skip rather than wait for (PostgreSQL).

    Waiting would let two claimers lock overlapping rows in different orders and deadlock; skipping hands
    each row to exactly one of them. SQLite serialises writers with BEGIN IMMEDIATE and has no row locks.
    """
    return stmt.with_for_update(skip_locked=True) if is_postgres(session) else stmt


def one_of(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``: one array parameter instead of one per
    value, so a batch of thousands is neither expanded by SQLAlchemy nor re-parsed by the driver each time.
    """
    values = list(values)
    if is_postgres(session):
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(values)  # type: ignore[no-any-return]


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
