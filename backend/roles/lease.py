"""A lease in the database that elects one holder of a singleton role (the beat scheduler) among many.

The holder renews its row well before it expires; any other candidate takes the row over only once it has
expired (its holder was killed, or lost the database), with one atomic ``UPDATE … WHERE`` that at most one
candidate can win on SQLite and PostgreSQL alike. Expiry is compared on the database's clock on PostgreSQL, so
the nodes' clocks need not agree; on SQLite every process shares one machine and so one clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, or_, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from backend.db import aware, is_postgres, utcnow
from backend.roles.models import SchedulerLease

log = logging.getLogger(__name__)

#: The lease the beat scheduler holds.
BEAT = "beat"
#: What a released lease expires at: long past, so a waiting candidate takes it on its next try.
RELEASED = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LeaseState:
    """The lease as one candidate last saw it."""

    held: bool
    holder: str
    term: int
    expires_at: datetime


def database_now(session: Session) -> datetime:
    """Now on the database's clock (PostgreSQL), or this machine's (SQLite, a local file)."""
    if is_postgres(session):
        value = session.execute(text("SELECT clock_timestamp()")).scalar_one()
        return aware(value).astimezone(UTC)
    return utcnow()


def claim(session: Session, name: str, holder: str, ttl: timedelta) -> LeaseState:
    """Renew ``name`` for ``holder``, or take it over if it has expired, or create it; else report who holds it.

    The caller commits (the lease is only held once committed).
    """
    now = database_now(session)
    taking = col(SchedulerLease.holder) != holder
    result = session.execute(
        update(SchedulerLease)
        .where(
            col(SchedulerLease.name) == name,
            or_(col(SchedulerLease.holder) == holder, col(SchedulerLease.expires_at) < now),
        )
        .values(
            holder=holder,
            term=case((taking, col(SchedulerLease.term) + 1), else_=col(SchedulerLease.term)),
            acquired_at=case((taking, now), else_=col(SchedulerLease.acquired_at)),
            renewed_at=now,
            expires_at=now + ttl,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) == 0:
        row = session.get(SchedulerLease, name, populate_existing=True)
        if row is None:
            try:
                with session.begin_nested():
                    session.add(
                        SchedulerLease(
                            name=name, holder=holder, acquired_at=now, renewed_at=now, expires_at=now + ttl
                        )
                    )
            except IntegrityError:
                # Another candidate created it first: it holds the lease.
                row = session.get(SchedulerLease, name, populate_existing=True)
                assert row is not None
                return LeaseState(False, row.holder, row.term, aware(row.expires_at))
            return LeaseState(True, holder, 1, now + ttl)
        return LeaseState(False, row.holder, row.term, aware(row.expires_at))
    row = session.get(SchedulerLease, name, populate_existing=True)
    assert row is not None
    return LeaseState(True, holder, row.term, aware(row.expires_at))


def release(session: Session, name: str, holder: str) -> bool:
    """Give ``name`` up if ``holder`` has it (an orderly stop): a waiting candidate takes it at once."""
    result = session.execute(
        update(SchedulerLease)
        .where(col(SchedulerLease.name) == name, col(SchedulerLease.holder) == holder)
        .values(expires_at=RELEASED)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def current(session: Session, name: str) -> SchedulerLease | None:
    """The lease row as stored (for health reports and operations)."""
    return session.get(SchedulerLease, name, populate_existing=True)
