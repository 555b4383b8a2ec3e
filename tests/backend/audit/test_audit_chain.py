"""The audit chain detects altered, inserted and deleted entries."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry, AuditHead
from backend.audit.service import SYSTEM, AuditItem, record, record_many, record_read, verify_chain


def _seed(session: Session, n: int = 5) -> list[AuditEntry]:
    return record_many(
        session,
        actor=SYSTEM,
        items=[AuditItem("test.change", "thing", str(i), {"v": i}, {"v": i + 1}) for i in range(n)],
    )


def _raw(session: Session, sql: str, **params: object) -> None:
    # Bypass the ORM (and, on PostgreSQL, the append-only trigger) the way a tampering insider would.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    session.execute(text(sql), params)
    session.expire_all()


def test_intact_chain_verifies(session: Session) -> None:
    _seed(session)
    checked, problems = verify_chain(session)
    assert checked >= 5 and problems == []


def test_edited_row_is_detected(session: Session) -> None:
    rows = _seed(session)
    _raw(session, "UPDATE audit_entry SET after = :v WHERE seq = :s", v='{"v": 999}', s=rows[2].seq)
    _checked, problems = verify_chain(session)
    assert [(p.seq, p.kind) for p in problems] == [(rows[2].seq, "altered")]


def test_deleted_row_is_detected(session: Session) -> None:
    rows = _seed(session)
    _raw(session, "DELETE FROM audit_entry WHERE seq = :s", s=rows[1].seq)
    kinds = {p.kind for p in verify_chain(session)[1]}
    assert "deleted" in kinds and "inserted" in kinds


def test_deleting_the_newest_row_is_detected_by_the_head(session: Session) -> None:
    rows = _seed(session)
    _raw(session, "DELETE FROM audit_entry WHERE seq = :s", s=rows[-1].seq)
    assert [p.kind for p in verify_chain(session)[1]] == ["head_mismatch"]


def test_inserted_row_is_detected(session: Session) -> None:
    rows = _seed(session)
    fake = rows[3]
    _raw(
        session,
        "UPDATE audit_entry SET prev_hash = :h WHERE seq = :s",
        h="f" * 64,
        s=fake.seq,
    )
    kinds = [p.kind for p in verify_chain(session)[1]]
    assert "inserted" in kinds and "altered" in kinds


def test_single_record_links_to_previous(session: Session) -> None:
    first = record(session, actor=SYSTEM, action="a", entity_type="t", entity_id=1)
    second = record(session, actor=SYSTEM, action="b", entity_type="t", entity_id=2)
    assert second.prev_hash == first.hash and second.seq == first.seq + 1
    assert session.exec(select(AuditEntry).where(col(AuditEntry.seq) == second.seq)).one().hash == second.hash


def test_postgres_refuses_updates_and_deletes(session: Session) -> None:
    import pytest
    from sqlalchemy.exc import DBAPIError

    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's; SQLite relies on the hash chain alone")
    row = _seed(session, 1)[0]
    nested = session.begin_nested()
    with pytest.raises(DBAPIError):
        session.execute(text("UPDATE audit_entry SET action = 'x' WHERE seq = :s"), {"s": row.seq})
    nested.rollback()


def _reads(session: Session, entity_id: str) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry).where(
                col(AuditEntry.action) == "thing.read", col(AuditEntry.entity_id) == entity_id
            )
        )
    )


def test_a_read_is_appended_when_the_transaction_commits(session: Session) -> None:
    before = session.exec(select(AuditHead)).first()
    seq_before = before.seq if before is not None else 0
    record_read(session, actor=SYSTEM, action="thing.read", entity_type="thing", entity_id=7, request_id="r1")
    record_read(session, actor=SYSTEM, action="thing.read", entity_type="thing", entity_id=8, request_id="r1")
    # Nothing is written (and the chain's head is not locked) while the request builds its answer.
    assert _reads(session, "7") == []
    head = session.exec(select(AuditHead)).first()
    assert (head.seq if head is not None else 0) == seq_before
    session.commit()
    [seven], [eight] = _reads(session, "7"), _reads(session, "8")
    assert (seven.seq, eight.seq) == (seq_before + 1, seq_before + 2)
    assert seven.request_id == "r1" and seven.actor_role == "system"
    assert verify_chain(session)[1] == []
    # Appended once: a later commit does not log the reads again.
    session.commit()
    assert len(_reads(session, "7")) == 1


def test_a_read_in_a_transaction_that_rolls_back_is_not_logged(session: Session) -> None:
    record_read(session, actor=SYSTEM, action="thing.read", entity_type="thing", entity_id=9)
    session.rollback()
    session.commit()
    assert _reads(session, "9") == []


def test_a_savepoint_rolled_back_inside_the_request_keeps_its_reads(session: Session) -> None:
    record_read(session, actor=SYSTEM, action="thing.read", entity_type="thing", entity_id=10)
    with session.begin_nested() as nested:
        nested.rollback()
    session.commit()
    assert len(_reads(session, "10")) == 1
