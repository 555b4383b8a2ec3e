"""Issue 5 figures on PostgreSQL: the nightly full re-rating of 1,000,000 operators with 5,000,000 records, and
the incremental re-rating after one new record (what the record.changed worker runs).

Run: .venv/bin/python -m bench.bench_rating_db [--operators 1000000] [--records 5000000] [--samples 1000]

A fresh database is migrated and filled with generate_series SQL (records spread at random over operators,
kinds and states weighted as in bench_rating_engine, dates over seven years); indexes are rebuilt after the
load and the tables vacuumed, as after a bulk import. Then, timed one after another:

1. the first full rating (nothing stored yet: every operator with a counting record gets its row, and each
   class that differs from the no-record class its history row, audit entry and rating.changed event);
2. the nightly run on the same day (steady state: every operator re-rated set-based, nothing to write);
3. the nightly run a day later (windows expire for some records: those operators are rewritten);
4. the incremental re-rating, ``--samples`` times (see ``incremental``): one verified record and its
   ``record.changed`` event committed first (untimed, what the request that made the record does), then the
   worker's task body timed: read the event, re-rate, write what changed, commit. Every other sample is a
   control with same-class writes committed durably, interleaved so both see the same load.

Wall time is what the figures compare; the Python process's CPU time and the PostgreSQL backends' CPU time
(read from /proc for the connections the run used) are reported beside it, as the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench import bench_rating_engine as rating_engine
from bench.common import Figure, expand, fresh_postgres, machine, save, table

# The records' kinds and states drawn as in bench_rating_engine, as the plain strings the SQL takes.
KIND_WEIGHTS = {kind.value: weight for kind, weight in rating_engine.KIND_WEIGHTS.items()}
STATE_WEIGHTS = {state.value: weight for state, weight in rating_engine.STATE_WEIGHTS.items()}
SECTORS = ["market", "fuel_station", "catering", "retail", "medical", "optical", "road_transport", "utility"]
_CLK = os.sysconf("SC_CLK_TCK")


def _backend_cpu(pid: int) -> float:
    """User + system CPU seconds of one PostgreSQL backend process so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK


class Meter:
    """Wall, Python CPU and PostgreSQL backend CPU of a block of work."""

    def __init__(self) -> None:
        self.pids: set[int] = set()

    @contextmanager
    def measure(self, into: dict[str, float], name: str) -> Iterator[None]:
        """Time the block; backends first used inside it count from their start."""
        before = {pid: _backend_cpu(pid) for pid in self.pids}
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        into[f"{name}_wall_s"] = time.perf_counter() - wall
        into[f"{name}_cpu_s"] = time.process_time() - cpu
        into[f"{name}_pg_cpu_s"] = sum(_backend_cpu(pid) - before.get(pid, 0.0) for pid in self.pids)


def load(url: str, operators: int, records: int, as_of: date) -> dict[str, float]:
    """Migrate and fill the database with SQL; returns the setup timings."""
    from sqlalchemy import text

    from backend.db import make_engine
    from backend.migrate import upgrade

    timings: dict[str, float] = {}
    t = time.perf_counter()
    upgrade(url)
    timings["migrate_s"] = time.perf_counter() - t
    engine = make_engine(url)
    with engine.begin() as conn:
        counties = [
            r[0]
            for r in conn.execute(
                text("SELECT code FROM jurisdiction WHERE level = 'county' ORDER BY code LIMIT 60")
            )
        ]
        t = time.perf_counter()
        conn.execute(text("SELECT setseed(0.566)"))
        conn.execute(
            text(
                """
                INSERT INTO operator (uscc, name, sector, address, legal_representative, jurisdiction_code,
                    management_assessment, metrology_assurance, is_demonstration_unit, qr_serial, is_active,
                    created_at, updated_at)
                SELECT 'B' || lpad(g::text, 17, '0'), '经营者' || g, (CAST(:sectors AS text[]))[1 + g % 8], '某路' || g || '号',
                       '法人' || g, (CAST(:counties AS text[]))[1 + g % cardinality(CAST(:counties AS text[]))],
                       (ARRAY['sound', 'not_fully_sound', 'not_assessed'])[1 + floor(random() * 3)::int],
                       '', false, 1, true, now(), now()
                FROM generate_series(1, :n) AS g
                """
            ),
            {"sectors": SECTORS, "counties": counties, "n": operators},
        )
        timings["operators_s"] = time.perf_counter() - t
        indexes = [
            (r[0], r[1])
            for r in conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'integrity_record' "
                    "AND indexname NOT LIKE 'pk_%'"
                )
            )
        ]
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        t = time.perf_counter()
        conn.execute(
            text(
                """
                INSERT INTO integrity_record (operator_id, kind, fact_date, source, summary, evidence_refs,
                    state, instrument_still_in_use, social_impact, public_eligible, version, created_at,
                    updated_at)
                SELECT op, kind, fact_date, 'staff', '', '[]', state,
                       CASE WHEN kind IN ('instrument_overdue', 'instrument_unverified',
                                          'instrument_failed_verification') THEN r < 0.3 END,
                       CASE WHEN kind = 'metrology_accident' THEN r < 0.4 END,
                       false, 1, now(), now()
                FROM (
                    SELECT 1 + floor(random() * :n)::int AS op,
                           (CAST(:kinds AS text[]))[1 + floor(random() * 100)::int] AS kind,
                           (CAST(:states AS text[]))[1 + floor(random() * 100)::int] AS state,
                           CAST(:as_of AS date) - floor(random() * 2557)::int AS fact_date,
                           random() AS r
                    FROM generate_series(1, :m)
                ) AS s
                """
            ),
            {
                "n": operators,
                "m": records,
                "kinds": expand(KIND_WEIGHTS),
                "states": expand(STATE_WEIGHTS),
                "as_of": as_of,
            },
        )
        timings["records_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for _, definition in indexes:
            conn.execute(text(definition))
        timings["indexes_s"] = time.perf_counter() - t
    t = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE operator"))
        conn.execute(text("VACUUM ANALYZE integrity_record"))
    timings["vacuum_s"] = time.perf_counter() - t
    engine.dispose()
    return timings


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load, then time the three full runs and the incremental samples."""
    os.environ["GONGPING_DATABASE_URL"] = url
    from sqlalchemy import text
    from sqlmodel import Session

    from backend.db import session_scope
    from backend.operators.models import ManagementAssessment
    from backend.records import rating
    from backend.records.engine import rate

    as_of = date(2026, 6, 30)
    out: dict[str, Any] = {"load": load(url, args.operators, args.records, as_of)}
    print(f"  loaded: {out['load']}", file=sys.stderr, flush=True)
    meter = Meter()

    @contextmanager
    def unit() -> Iterator[Session]:
        with session_scope() as session:
            meter.pids.add(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            yield session

    timings: dict[str, float] = {}
    reports: dict[str, Any] = {}
    for name, day in (("cold", as_of), ("steady", as_of), ("next_day", as_of + timedelta(days=1))):
        with meter.measure(timings, name):
            report = rating.rerate_all(as_of=day, batch=args.batch, unit_of_work=unit)
        reports[name] = asdict(report)
        print(f"  {name}: {timings[name + '_wall_s']:.1f} s {reports[name]}", file=sys.stderr, flush=True)

    # Spot check: stored ratings equal the engine's per-operator rating on the last run's date.
    rng = random.Random(5)
    day = as_of + timedelta(days=1)
    checked = 0
    with session_scope() as session:
        for operator_id in rng.sample(range(1, args.operators + 1), min(2000, args.operators)):
            assessment = session.execute(
                text("SELECT management_assessment FROM operator WHERE id = :id"), {"id": operator_id}
            ).scalar_one()
            facts = rating.facts_of(ManagementAssessment(assessment))
            records = rating.load_verified(session, as_of=day, operator_ids=[operator_id]).get(
                operator_id, []
            )
            expected = rate(facts, records, day)
            stored = rating.load_stored(session, operator_ids=[operator_id], with_reasons=True).get(
                operator_id
            )
            got = (stored.cls, stored.reasons) if stored else (rate(facts, [], day).cls, None)
            want = (expected.cls, rating.reasons_json(expected) if stored else None)
            if got != want:
                raise SystemExit(f"stored rating differs from the engine for operator {operator_id}")
            checked += 1
    out["spot_checked"] = checked

    out["incremental"] = incremental(args, rng, day, meter)
    out["timings"] = timings
    out["reports"] = reports
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0


def incremental(args: argparse.Namespace, rng: random.Random, day: date, meter: Meter) -> dict[str, Any]:
    """The worker's unit of work after one new verified record, timed ``--samples`` times.

    Untimed and committed first, as the records service does in the request that made the record: one verified
    record for a random operator and its ``record.changed`` outbox event. Timed: the Celery task body
    ``rerate_operator_task(event_id)`` run in-process (no broker): it reads the event, loads the operator's
    assessment, stored rating and windowed verified records, rates, writes what changed and commits. Wall time
    is what the target compares; beside it the Python CPU time of the same call, the statements it sent, and
    the PostgreSQL backend's CPU. Interleaved with two floors measured under the same load: a unit of work that
    only pings, and one that inserts one row and commits with a WAL flush (the fsync every durable write pays).
    """
    from sqlalchemy import event, text

    from backend.db import get_engine, session_scope
    from backend.records import rating
    from workers.records_tasks import rerate_for_event

    kinds = expand(KIND_WEIGHTS)
    engine = get_engine()
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    with session_scope() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS bench_commit_probe (x integer)"))
    timed: dict[str, list[float]] = {
        "rerate": [],
        "class_change": [],
        "written": [],
        "durable": [],
        "durable_written": [],
        "ping": [],
        "commit": [],
    }
    cpu: list[float] = []
    pg_cpu: list[float] = []
    stmts: dict[str, list[int]] = {"no_write": [], "written": [], "class_change": []}
    load_before = os.getloadavg()
    for sample in range(2 * args.samples):
        # Every other sample with same-class writes committed durably: the comparison under the same load.
        durable = sample % 2 == 1
        rating.RELAXED_SAME_CLASS_COMMIT = not durable
        operator_id = rng.randint(1, args.operators)
        with session_scope() as session:
            record_id = session.execute(
                text(
                    "INSERT INTO integrity_record (operator_id, kind, fact_date, source, summary, evidence_refs,"
                    " state, public_eligible, version, created_at, updated_at)"
                    " VALUES (:op, :kind, :day, 'staff', '', '[]', 'verified', false, 1, now(), now())"
                    " RETURNING id"
                ),
                {
                    "op": operator_id,
                    "kind": rng.choice(kinds),
                    "day": day - timedelta(days=rng.randrange(0, 300)),
                },
            ).scalar_one()
            event_id = session.execute(
                text(
                    "INSERT INTO outbox_event (topic, payload, dedupe_key, created_at, available_at, attempts)"
                    " VALUES ('record.changed', CAST(:payload AS json), :key, now(), now(), 0) RETURNING id"
                ),
                {
                    "payload": f'{{"record_id": {record_id}, "operator_id": {operator_id}, "version": 1}}',
                    "key": f"record.changed:{record_id}:v1",
                },
            ).scalar_one()
            backend_pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        meter.pids.add(backend_pid)
        pg_before = _backend_cpu(backend_pid)
        statements[0] = 0
        t, c = time.perf_counter(), time.process_time()
        report = rerate_for_event(event_id, as_of=day)
        elapsed = time.perf_counter() - t
        if durable:
            timed["durable"].append(elapsed)
            if report.written and not report.class_changes:
                timed["durable_written"].append(elapsed)
            continue
        cpu.append(time.process_time() - c)
        pg_cpu.append(_backend_cpu(backend_pid) - pg_before)
        timed["rerate"].append(elapsed)
        wrote, changed = report.written, report.class_changes
        if changed:
            timed["class_change"].append(elapsed)
            stmts["class_change"].append(statements[0])
        elif wrote:
            timed["written"].append(elapsed)
            stmts["written"].append(statements[0])
        else:
            stmts["no_write"].append(statements[0])
        t = time.perf_counter()
        with session_scope() as session:
            session.execute(text("SELECT 1"))
        timed["ping"].append(time.perf_counter() - t)
        t = time.perf_counter()
        with session_scope() as session:
            session.execute(text("INSERT INTO bench_commit_probe VALUES (1)"))
        timed["commit"].append(time.perf_counter() - t)
    event.remove(engine, "before_cursor_execute", count)
    rating.RELAXED_SAME_CLASS_COMMIT = True

    def mean(values: list[int] | list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    return {
        "samples": len(timed["rerate"]),
        "p50_ms": _pct(timed["rerate"], 0.5),
        "p99_ms": _pct(timed["rerate"], 0.99),
        "max_ms": _pct(timed["rerate"], 1.0),
        "cpu_p50_ms": _pct(cpu, 0.5),
        "cpu_p99_ms": _pct(cpu, 0.99),
        "mean_cpu_ms": mean(cpu) * 1000,
        "mean_pg_cpu_ms": mean(pg_cpu) * 1000,
        "no_write": len(stmts["no_write"]),
        "written": len(stmts["written"]),
        "class_changes": len(stmts["class_change"]),
        "statements_no_write": mean(stmts["no_write"]),
        "statements_written": mean(stmts["written"]),
        "statements_class_change": mean(stmts["class_change"]),
        "written_p50_ms": _pct(timed["written"], 0.5),
        "written_p99_ms": _pct(timed["written"], 0.99),
        "class_change_p50_ms": _pct(timed["class_change"], 0.5),
        "class_change_p99_ms": _pct(timed["class_change"], 0.99),
        "ping_unit_p50_ms": _pct(timed["ping"], 0.5),
        "ping_unit_p99_ms": _pct(timed["ping"], 0.99),
        "durable_p50_ms": _pct(timed["durable"], 0.5),
        "durable_p99_ms": _pct(timed["durable"], 0.99),
        "durable_written_p50_ms": _pct(timed["durable_written"], 0.5),
        "durable_written_p99_ms": _pct(timed["durable_written"], 0.99),
        "commit_unit_p50_ms": _pct(timed["commit"], 0.5),
        "commit_unit_p99_ms": _pct(timed["commit"], 0.99),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def main() -> None:
    """Parse arguments, run on a fresh PostgreSQL database, print and save the figures."""
    parser = argparse.ArgumentParser(description="评级数据库基准 / rating on PostgreSQL bench")
    parser.add_argument("--operators", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=5_000_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--no-save", action="store_true", help="print only (exploratory runs at other sizes)")
    args = parser.parse_args()
    with fresh_postgres() as url:
        result = run(url, args)
    t, inc = result["timings"], result["incremental"]
    label = f"{args.operators:,} operators, {args.records:,} records"
    figures = [
        Figure(
            f"nightly full re-rating, steady state ({label})", t["steady_wall_s"], "s", 60, "≤ 60 s", "lower"
        ),
        Figure(
            f"nightly full re-rating, next day, windows expire ({label})",
            t["next_day_wall_s"],
            "s",
            60,
            "≤ 60 s",
            "lower",
        ),
        Figure(
            f"first full rating, every row, change, audit entry and event written ({label})",
            t["cold_wall_s"],
            "s",
            300,
            # Not the anchor (that is the nightly re-rating above): a one-off load of an archive.
            "≤ 300 s (ours, one-off archive load)",
            "lower",
        ),
        Figure(
            f"incremental re-rating after one new record, p99 of {inc['samples']:,}",
            inc["p99_ms"],
            "ms",
            20,
            "≤ 20 ms",
            "lower",
        ),
        Figure(
            "incremental re-rating after one new record, p50", inc["p50_ms"], "ms", 20, "≤ 20 ms", "lower"
        ),
    ]
    print(machine())
    print(table("Rating on PostgreSQL (issue 5)", figures))
    print()
    for name in ("cold", "steady", "next_day"):
        print(
            f"- {name}: wall {t[name + '_wall_s']:.1f} s · Python CPU {t[name + '_cpu_s']:.1f} s · "
            f"PostgreSQL backend CPU {t[name + '_pg_cpu_s']:.1f} s · {result['reports'][name]}"
        )
    print(
        f"- incremental (worker task body after the record's commit): wall p50 {inc['p50_ms']:.2f} ms · "
        f"p99 {inc['p99_ms']:.2f} ms · max {inc['max_ms']:.2f} ms · Python CPU p50 {inc['cpu_p50_ms']:.2f} ms / "
        f"p99 {inc['cpu_p99_ms']:.2f} ms · PostgreSQL backend CPU mean {inc['mean_pg_cpu_ms']:.2f} ms"
    )
    print(
        f"- outcomes: nothing to write {inc['no_write']} ({inc['statements_no_write']:.1f} statements) · "
        f"written, same class {inc['written']} ({inc['statements_written']:.1f} statements, p50 "
        f"{inc['written_p50_ms']:.2f} / p99 {inc['written_p99_ms']:.2f} ms) · class change "
        f"{inc['class_changes']} ({inc['statements_class_change']:.1f} statements, p50 "
        f"{inc['class_change_p50_ms']:.2f} / p99 {inc['class_change_p99_ms']:.2f} ms)"
    )
    print(
        f"- interleaved control, every write durable (flush awaited): p50 {inc['durable_p50_ms']:.2f} ms · p99 "
        f"{inc['durable_p99_ms']:.2f} ms; same-class writes alone p50 {inc['durable_written_p50_ms']:.2f} ms · "
        f"p99 {inc['durable_written_p99_ms']:.2f} ms"
    )
    print(
        f"- floors under the same load: ping-only unit of work p50 {inc['ping_unit_p50_ms']:.2f} ms / p99 "
        f"{inc['ping_unit_p99_ms']:.2f} ms · one-row insert + commit p50 {inc['commit_unit_p50_ms']:.2f} ms / "
        f"p99 {inc['commit_unit_p99_ms']:.2f} ms"
    )
    before, after = inc["load_average_before"], inc["load_average_after"]
    print(
        f"- load average (1/5/15 min) {os.cpu_count()} CPUs: before {before[0]:.2f}/{before[1]:.2f}/"
        f"{before[2]:.2f}, after {after[0]:.2f}/{after[1]:.2f}/{after[2]:.2f}"
    )
    print(f"- load: {result['load']} · spot-checked against the engine: {result['spot_checked']} operators")
    if not args.no_save:
        save("rating_db", figures, {"args": vars(args), "result": result})


if __name__ == "__main__":
    main()
