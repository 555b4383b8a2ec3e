"""Issue 6 figure: the daily reminder sweep over 1,000,000 instruments on PostgreSQL.

Finds the instruments whose verification falls due in 30/7/1 days (``backend.notices.reminders.find_due``) and
the overdue ones still in use (``backend.instruments.service.overdue_in_use``, the sweep the records issue
consumes), timing the find phase apart from the emit phase (multi-row outbox inserts with dedupe keys).
A second run shows the steady state: the same rows are found, every event already exists, nothing is
emitted twice.

Rows come from ``generate_series`` (seconds, not the minutes an ORM import would take): 50,000 operators;
1,000,000 instruments, 2 % retired, 1 % never verified, validity ends spread over 400 days from 20 days ago
(so ~5 % overdue and ~7.75 % due within 30 days).

Run: .venv/bin/python -m bench.bench_reminder_sweep [--instruments N] [--operators N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date, timedelta
from typing import Any

from bench.common import Figure, fresh_postgres, insert_operators, machine, save, table

BATCH = 5000


def generate(url: str, operators: int, instruments: int, today: date) -> float:
    """Fill a migrated database with synthetic operators and instruments; returns seconds taken."""
    from sqlalchemy import text

    from backend.db import make_engine

    engine = make_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        insert_operators(conn, operators)
        conn.execute(
            text(
                """
                INSERT INTO instrument (type_code, serial, maker, model, operator_id, status, qr_serial,
                    last_verified_on, last_passed, valid_until, created_at)
                SELECT 'price_scale', 'SN' || i, '', '', (SELECT min(id) FROM operator) + i % :ops,
                    CASE WHEN i % 50 = 0 THEN 'retired' ELSE 'in_use' END, 1,
                    CASE WHEN i % 100 = 1 THEN NULL ELSE CAST(:today AS date) - 300 END,
                    CASE WHEN i % 100 = 1 THEN NULL ELSE true END,
                    CASE WHEN i % 100 = 1 THEN NULL
                         ELSE CAST(:today AS date) + ((i::bigint * 7919) % 400)::int - 20 END,
                    now()
                FROM generate_series(1, :n) AS i
                """
            ),
            {"n": instruments, "ops": operators, "today": today},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE operator"))
        conn.execute(text("VACUUM ANALYZE instrument"))
    engine.dispose()
    return time.perf_counter() - started


def _scopes(engine: Any) -> Callable[[], AbstractContextManager[Any]]:
    from backend.db import session_scope

    @contextmanager
    def scope() -> Iterator[Any]:
        with session_scope(engine) as session:
            yield session

    return scope


def find_all_due(engine: Any, today: date) -> list[tuple[int, date, int]]:
    """Every due row, page by page, each page its own transaction (as the sweep reads them)."""
    from backend.notices.reminders import find_due

    found: list[tuple[int, date, int]] = []
    after = None
    while True:
        with _scopes(engine)() as session:
            rows = find_due(session, today, after, BATCH)
        found += rows
        if len(rows) < BATCH:
            return found
        after = (rows[-1][1], rows[-1][0])


def find_all_overdue(engine: Any, today: date) -> list[tuple[int, date, int]]:
    """Every overdue in-use row, by the instrument service's paged query."""
    from backend.instruments.service import overdue_in_use

    found: list[tuple[int, date, int]] = []
    after_id = 0
    while True:
        with _scopes(engine)() as session:
            rows = overdue_in_use(session, today, after_id, BATCH)
        found += list(rows)
        if len(rows) < BATCH:
            return found
        after_id = rows[-1][0]


def emit_due(engine: Any, rows: list[tuple[int, date, int]], today: date) -> int:
    """The emit phase of the due sweep: events and dedupe keys, multi-row inserts per page."""
    from backend.notices.reminders import due_event
    from backend.outbox.service import emit_many

    stored = 0
    for start in range(0, len(rows), BATCH):
        events = [e for e in (due_event(r, today) for r in rows[start : start + BATCH]) if e is not None]
        with _scopes(engine)() as session:
            stored += emit_many(session, "instrument.due", events)
    return stored


def emit_overdue(engine: Any, rows: list[tuple[int, date, int]]) -> int:
    """The emit phase of the overdue sweep, with the same payloads and dedupe keys as backend/instruments/sweep.py."""
    from backend.outbox.service import emit_many

    stored = 0
    for start in range(0, len(rows), BATCH):
        events = [
            (
                {"instrument_id": i, "operator_id": op, "valid_until": vu.isoformat()},
                f"instrument.overdue:{i}:{vu.isoformat()}",
            )
            for i, vu, op in rows[start : start + BATCH]
        ]
        with _scopes(engine)() as session:
            stored += emit_many(session, "instrument.overdue", events)
    return stored


def run(url: str, operators: int, instruments: int) -> dict[str, Any]:
    """Generate, then sweep twice; returns the timings and counts."""
    os.environ["GONGPING_DATABASE_URL"] = url
    from backend.db import make_engine
    from backend.instruments.sweep import sweep_overdue_instruments
    from backend.migrate import upgrade
    from backend.notices import reminders
    from backend.records.service import bureau_today

    # Loaded before the clock starts, so the first find measures the queries, not the module's import.
    assert reminders.find_due is not None
    today = bureau_today()
    upgrade(url)
    generate_s = generate(url, operators, instruments, today)
    engine = make_engine(url)
    result: dict[str, Any] = {"generate_s": generate_s}
    # First run: the one-off backfill (every due and overdue instrument is new); second: the same day again;
    # next_day: the steady state, where only instruments that reached a step or fell overdue overnight are new.
    for label, day in (("first", today), ("second", today), ("next_day", today + timedelta(days=1))):
        t0 = time.perf_counter()
        due = find_all_due(engine, day)
        t1 = time.perf_counter()
        overdue = find_all_overdue(engine, day)
        t2 = time.perf_counter()
        due_events = emit_due(engine, due, day)
        t3 = time.perf_counter()
        overdue_events = emit_overdue(engine, overdue)
        t4 = time.perf_counter()
        result[label] = {
            "due_found": len(due),
            "overdue_found": len(overdue),
            "find_due_s": t1 - t0,
            "find_overdue_s": t2 - t1,
            "find_s": t2 - t0,
            "due_events": due_events,
            "overdue_events": overdue_events,
            "emit_due_s": t3 - t2,
            "emit_overdue_s": t4 - t3,
            "emit_s": t4 - t2,
        }
    # The shipped overdue sweep as a whole (its own find + one-row emits): a no-op run after the above.
    t0 = time.perf_counter()
    result["shipped_overdue_sweep_rerun"] = {
        "events": sweep_overdue_instruments(today, unit_of_work=_scopes(engine)),
        "s": time.perf_counter() - t0,
    }
    t0 = time.perf_counter()
    from backend.notices.reminders import sweep_due_instruments

    result["shipped_due_sweep_rerun"] = {
        "events": sweep_due_instruments(today, unit_of_work=_scopes(engine)),
        "s": time.perf_counter() - t0,
    }
    engine.dispose()
    return result


def main() -> None:
    """Run the bench and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--instruments", type=int, default=1_000_000)
    parser.add_argument("--operators", type=int, default=50_000)
    args = parser.parse_args()
    with fresh_postgres() as url:
        result = run(url, args.operators, args.instruments)
    first, second, nxt = result["first"], result["second"], result["next_day"]
    figures = [
        Figure("find due + overdue", first["find_s"], "s", 10.0, "≤ 10 s (issue)", "lower"),
        Figure("find due + overdue, next day", nxt["find_s"], "s", 10.0, "≤ 10 s (issue)", "lower"),
        Figure("emit phase, next day (steady state)", nxt["emit_s"], "s", 10.0, "≤ 10 s (ours)", "lower"),
        Figure(
            "emit phase, same day again (all known)", second["emit_s"], "s", 10.0, "≤ 10 s (ours)", "lower"
        ),
        Figure(
            "emit phase, first run (one-off backfill)", first["emit_s"], "s", 60.0, "≤ 60 s (ours)", "lower"
        ),
    ]
    print(machine())
    print(table(f"Daily reminder sweep over {args.instruments:,} instruments (PostgreSQL)", figures))
    print(
        f"\ngenerated in {result['generate_s']:.1f} s; due {first['due_found']:,} "
        f"(find {first['find_due_s']:.2f} s), overdue {first['overdue_found']:,} "
        f"(find {first['find_overdue_s']:.2f} s); events first run: {first['due_events']:,} due + "
        f"{first['overdue_events']:,} overdue in {first['emit_s']:.2f} s (due {first['emit_due_s']:.2f} s, "
        f"overdue {first['emit_overdue_s']:.2f} s); same day again: {second['due_events']} + "
        f"{second['overdue_events']} new events; next day: {nxt['due_events']:,} + {nxt['overdue_events']:,} "
        f"new events in {nxt['emit_s']:.2f} s; shipped sweeps re-run: due "
        f"{result['shipped_due_sweep_rerun']['s']:.2f} s, overdue {result['shipped_overdue_sweep_rerun']['s']:.2f} s"
    )
    save("reminder_sweep", figures, {"instruments": args.instruments, "operators": args.operators, **result})


if __name__ == "__main__":
    main()
