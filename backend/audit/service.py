"""Append to and verify the hash-chained audit log; appends happen in the caller's transaction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, SQLModel, col, select

from backend.audit.models import AuditEntry, AuditHead
from backend.db import bulk_insert, iso_utc, json_default, table_of, utcnow

GENESIS_HASH = "0" * 64


class Actor(Protocol):
    """Whoever causes a change: an account, or the system itself."""

    @property
    def id(self) -> int | None: ...

    @property
    def role(self) -> str: ...


@dataclass(frozen=True)
class SystemActor:
    """The platform acting on its own (workers, sweeps, imports without a signed-in user)."""

    id: int | None = None
    role: str = "system"
    name: str = "system"


SYSTEM = SystemActor()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def snapshot(obj: SQLModel | None, exclude: Iterable[str] = ()) -> dict[str, Any] | None:
    """A JSON-safe copy of a row's columns for the before/after of an audit entry."""
    if obj is None:
        return None
    skip = set(exclude)
    data = {k: v for k, v in obj.model_dump().items() if k not in skip}
    result: dict[str, Any] = _jsonable(data)
    return result


def _canonical(value: Any) -> str:
    # The same conversion of dates, decimals and enums as the JSON columns use, so stored and hashed agree.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=json_default)


def entry_hash(entry: AuditEntry | AppendedEntry) -> str:
    """The SHA-256 that links ``entry`` to its predecessor; any edited field changes it."""
    material = _canonical(
        [
            entry.prev_hash,
            entry.seq,
            iso_utc(entry.at),
            entry.actor_id,
            entry.actor_role,
            entry.action,
            entry.entity_type,
            entry.entity_id,
            entry.before,
            entry.after,
            entry.request_id,
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class AppendedEntry:
    """An entry as appended (plain data: bulk imports append hundreds of thousands without ORM objects)."""

    seq: int
    at: datetime
    actor_id: int | None
    actor_role: str
    action: str
    entity_type: str
    entity_id: str
    before: Any
    after: Any
    request_id: str | None
    prev_hash: str
    hash: str = ""


def _lock_head(session: Session) -> AuditHead:
    # FOR UPDATE serialises appends on PostgreSQL so the chain never forks; SQLite serialises writers anyway.
    head = session.execute(
        select(AuditHead).where(col(AuditHead.id) == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    return head


@dataclass(frozen=True)
class AuditItem:
    """One change to append; used to write many in one locked pass (bulk imports)."""

    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def record_many(
    session: Session, *, actor: Actor, items: Sequence[AuditItem], request_id: str | None = None
) -> list[AppendedEntry]:
    """Append several entries under one lock, in order, in the caller's transaction."""
    if not items:
        return []
    head = _lock_head(session)
    seq, prev = head.seq, head.hash
    now = utcnow()
    rows: list[AppendedEntry] = []
    for item in items:
        seq += 1
        entry = AppendedEntry(
            seq=seq,
            at=now,
            actor_id=actor.id,
            actor_role=str(actor.role),
            action=item.action,
            entity_type=item.entity_type,
            entity_id=item.entity_id,
            before=item.before,
            after=item.after,
            request_id=request_id,
            prev_hash=prev,
        )
        entry.hash = entry_hash(entry)
        prev = entry.hash
        rows.append(entry)
    # vars() is a shallow copy; dataclasses.asdict would deep-copy every before/after dict.
    bulk_insert(session, table_of(AuditEntry), [dict(vars(r)) for r in rows])
    head.seq, head.hash = seq, prev
    session.add(head)
    session.flush()
    return rows


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AppendedEntry:
    """Append one entry (a change, or a staff read of non-public data) in the caller's transaction."""
    item = AuditItem(action, entity_type, str(entity_id), before, after)
    return record_many(session, actor=actor, items=[item], request_id=request_id)[0]


#: ``session.info`` key of the reads waiting for the commit.
_PENDING_READS = "gongping_audit_pending_reads"


def record_read(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    after: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """Log a staff read of non-public data (Art. 20); appended when the caller's transaction commits.

    An append locks the chain's head until the commit, and every audited request waits for that lock: taken
    at the start of a read, it was held while the whole answer was built (a case view's p99 was 728 ms in
    ``bench_load_mix``, 307 ms appended at commit). A read changes nothing an entry must come before, so it
    is appended last; if the transaction rolls back (the request failed) it is not logged, as before.
    """
    item = AuditItem(action, entity_type, str(entity_id), None, after)
    if not session.in_transaction():
        session.begin()  # so that a rollback before any statement still drops the read (no connection yet)
    session.info.setdefault(_PENDING_READS, []).append((actor, request_id, item))


@event.listens_for(OrmSession, "before_commit")
def _append_pending_reads(session: OrmSession) -> None:
    pending: list[tuple[Actor, str | None, AuditItem]] | None = session.info.pop(_PENDING_READS, None)
    if not pending:
        return
    # One locked pass per actor and request (in practice: one).
    batches: dict[tuple[int, str | None], tuple[Actor, list[AuditItem]]] = {}
    for actor, request_id, item in pending:
        batches.setdefault((id(actor), request_id), (actor, []))[1].append(item)
    for (_actor, request_id), (actor, items) in batches.items():
        # Every session here is sqlmodel's (a subclass); record_many uses only the ORM session's API.
        record_many(session, actor=actor, items=items, request_id=request_id)  # type: ignore[arg-type]


@event.listens_for(OrmSession, "after_soft_rollback")
def _drop_pending_reads(session: OrmSession, _previous: object) -> None:
    # The whole transaction rolled back (not a savepoint inside it, after which the request goes on).
    if not session.in_transaction():
        session.info.pop(_PENDING_READS, None)


@dataclass(frozen=True)
class ChainProblem:
    """One way the stored chain differs from what was written."""

    seq: int | None
    kind: str  # altered | inserted | deleted | head_mismatch
    detail: str


def verify_chain(session: Session, batch: int = 5000) -> tuple[int, list[ChainProblem]]:
    """Walk the whole log in order; return how many entries were checked and every problem found."""
    problems: list[ChainProblem] = []
    expected_seq, prev = 1, GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        rows = (
            session.execute(
                select(AuditEntry)
                .where(col(AuditEntry.seq) >= expected_seq)
                .order_by(col(AuditEntry.seq))
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows or rows[0].id == last_id:
            break
        for entry in rows:
            checked += 1
            if entry.seq != expected_seq:
                problems.append(
                    ChainProblem(expected_seq, "deleted", f"entries {expected_seq}..{entry.seq - 1} missing")
                )
            if entry.prev_hash != prev:
                problems.append(
                    ChainProblem(entry.seq, "inserted", "prev_hash does not match the previous entry")
                )
            if entry_hash(entry) != entry.hash:
                problems.append(ChainProblem(entry.seq, "altered", "content does not match its hash"))
            prev = entry.hash
            expected_seq = entry.seq + 1
            last_id = entry.id or 0
        if len(rows) < batch:
            break
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev):
        problems.append(
            ChainProblem(
                head.seq, "head_mismatch", f"head says seq {head.seq}, chain ends at {expected_seq - 1}"
            )
        )
    return checked, problems
