"""The scheduler lease elects one holder; a second beat sends nothing until the first stops or dies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from backend.roles.lease import claim, release
from workers.beat_scheduler import LeasedScheduler
from workers.celery_app import celery_app

TTL = timedelta(seconds=30)


def _expire(session: Session, name: str) -> None:
    """As if the holder had been killed a lease period ago."""
    session.execute(
        text("UPDATE scheduler_lease SET expires_at = :past WHERE name = :name"),
        {"past": "2001-01-01 00:00:00+00:00", "name": name},
    )
    session.commit()


def test_one_holder_renews_others_wait_and_take_over_only_once_it_expired(committed_session: Session) -> None:
    s = committed_session
    first = claim(s, "test-lease", "node-a:1", TTL)
    s.commit()
    assert first.held and first.term == 1
    other = claim(s, "test-lease", "node-b:2", TTL)
    s.commit()
    assert not other.held and other.holder == "node-a:1"
    renewed = claim(s, "test-lease", "node-a:1", TTL)
    s.commit()
    assert renewed.held and renewed.term == 1 and renewed.expires_at >= first.expires_at
    _expire(s, "test-lease")
    taken = claim(s, "test-lease", "node-b:2", TTL)
    s.commit()
    assert taken.held and taken.term == 2
    # The old holder, back from the dead, finds it taken: it must not send.
    late = claim(s, "test-lease", "node-a:1", TTL)
    s.commit()
    assert not late.held and late.holder == "node-b:2"
    # An orderly stop hands it over at once.
    assert release(s, "test-lease", "node-b:2")
    s.commit()
    back = claim(s, "test-lease", "node-a:1", TTL)
    s.commit()
    assert back.held and back.term == 3


def _scheduler(folder: Path, holder: str, sent: list[str]) -> LeasedScheduler:
    scheduler = LeasedScheduler(app=celery_app, schedule_filename=str(folder / holder), lazy=False)
    scheduler.holder = holder

    def record(entry: Any, producer: Any = None, **_kwargs: Any) -> None:
        sent.append(entry.name)

    scheduler.apply_entry = record  # type: ignore[method-assign]
    # Every periodic task is overdue, as after a long wait: the holder sends them, a standby must not.
    for entry in scheduler.schedule.values():
        entry.last_run_at = entry.default_now() - timedelta(days=2)
    return scheduler


def test_two_beats_one_sends_the_other_takes_over_when_it_stops(
    committed_session: Session, tmp_path: Path
) -> None:
    sent_a: list[str] = []
    sent_b: list[str] = []
    a = _scheduler(tmp_path, "beat-a:1", sent_a)
    b = _scheduler(tmp_path, "beat-b:2", sent_b)
    try:
        for _ in range(5):
            a.tick()
            b.tick()
        assert a.holding and not b.holding
        assert len(sent_a) == 5 and sent_b == []
        assert b._details() == {"lease": "standby", "holder": "beat-a:1", "term": 1}
        a.close()  # SIGTERM: releases the lease
        assert not a.holding
        for _ in range(3):
            b.tick()
        assert b.holding and b.term == 2 and len(sent_b) == 3
        # B sends what came due while it waited, A (stopped) nothing more.
        assert len(sent_a) == 5
    finally:
        a.close()
        b.close()


def test_a_killed_holder_is_replaced_once_its_lease_expired(
    committed_session: Session, tmp_path: Path
) -> None:
    a = _scheduler(tmp_path, "beat-a:1", [])
    sent_b: list[str] = []
    b = _scheduler(tmp_path, "beat-b:2", sent_b)
    try:
        a.tick()
        b.tick()
        assert a.holding and not b.holding and sent_b == []
        # kill -9 of A: it never releases; its lease runs out.
        _expire(committed_session, "beat")
        b.tick()
        assert b.holding and sent_b
    finally:
        b.close()
