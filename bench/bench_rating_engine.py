"""Pure-engine throughput: rate synthetic operators via rate() and via rate_from_aggregates()."""

# Usage: python bench/bench_rating_engine.py [--operators 1000000] [--records 5000000]. Records are spread
# over operators at random (about five each by default) and generated chunk by chunk so memory stays flat;
# only the rating calls are timed. aggregate() (the Python reference of AGGREGATE_SQL, standing in for the
# database) is timed separately, and every operator's two ratings are checked to agree.

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.records.engine import (
    OperatorFacts,
    RatingInputs,
    RecordFact,
    aggregate,
    rate,
    rate_from_aggregates,
)
from backend.records.rules import INSTRUMENT_KINDS, RecordKind, RecordState

# Rough shares of a real archive: complaints and instrument findings dominate, good records are common.
KIND_WEIGHTS: dict[RecordKind, int] = {
    RecordKind.COMPLAINT_SUBSTANTIATED: 22,
    RecordKind.INSTRUMENT_OVERDUE: 12,
    RecordKind.INSTRUMENT_UNVERIFIED: 5,
    RecordKind.INSTRUMENT_FAILED_VERIFICATION: 4,
    RecordKind.INSPECTION_FAILED: 4,
    RecordKind.SHORT_WEIGHT: 8,
    RecordKind.SHORT_CHANGING_PENALTY: 6,
    RecordKind.NET_CONTENT_NONCOMPLIANT: 3,
    RecordKind.METROLOGY_CHEATING: 2,
    RecordKind.METROLOGY_ACCIDENT: 1,
    RecordKind.COMMITMENT_BREACHED: 3,
    RecordKind.ASSOCIATION_WARNING: 2,
    RecordKind.COMMITMENT_KEPT: 20,
    RecordKind.DEMONSTRATION_UNIT: 8,
}
STATE_WEIGHTS: dict[RecordState, int] = {
    RecordState.VERIFIED: 60,
    RecordState.REPORTED: 20,
    RecordState.DISMISSED: 12,
    RecordState.REVOKED: 8,
}


@dataclass
class Totals:
    """Accumulated timings and counts."""

    operators: int = 0
    records: int = 0
    rate_s: float = 0.0
    aggregate_s: float = 0.0
    from_aggregates_s: float = 0.0
    rate_cpu_s: float = 0.0
    from_aggregates_cpu_s: float = 0.0
    classes: dict[str, int] = field(default_factory=dict)


def make_chunk(
    rng: random.Random, first_id: int, operators: int, records: int, as_of: date
) -> list[tuple[str, OperatorFacts, list[RecordFact]]]:
    """Synthetic operators with ``records`` records spread over them at random."""
    kinds = list(KIND_WEIGHTS)
    kind_w = list(KIND_WEIGHTS.values())
    states = list(STATE_WEIGHTS)
    state_w = list(STATE_WEIGHTS.values())
    per_operator: list[list[RecordFact]] = [[] for _ in range(operators)]
    drawn_kinds = rng.choices(kinds, kind_w, k=records)
    drawn_states = rng.choices(states, state_w, k=records)
    for n in range(records):
        kind = drawn_kinds[n]
        in_use = rng.random() < 0.3 if kind in INSTRUMENT_KINDS else None
        impact = rng.random() < 0.4 if kind is RecordKind.METROLOGY_ACCIDENT else None
        per_operator[rng.randrange(operators)].append(
            RecordFact(
                id=f"r{first_id}-{n}",
                kind=kind,
                state=drawn_states[n],
                fact_date=as_of - timedelta(days=rng.randrange(7 * 365)),
                instrument_still_in_use=in_use,
                social_impact=impact,
            )
        )
    management = (True, False, None)
    return [
        (f"op{first_id + i}", OperatorFacts(management[rng.randrange(3)]), per_operator[i])
        for i in range(operators)
    ]


def run(operators: int, records: int, chunk: int, seed: int, as_of: date) -> Totals:
    """Generate, rate both ways and check agreement, chunk by chunk."""
    rng = random.Random(seed)
    totals = Totals()
    done = 0
    while done < operators:
        size = min(chunk, operators - done)
        # Spread records proportionally so the total is exact whatever the chunking.
        chunk_records = records * (done + size) // operators - records * done // operators
        items = make_chunk(rng, done, size, chunk_records, as_of)
        # The input is long-lived and acyclic: keep the cyclic collector from rescanning it on every
        # allocation burst, as a bulk re-rating worker holding a batch would.
        gc.collect()
        gc.freeze()

        start, cpu = time.perf_counter(), time.process_time()
        ratings = [rate(facts, recs, as_of) for _, facts, recs in items]
        totals.rate_s += time.perf_counter() - start
        totals.rate_cpu_s += time.process_time() - cpu

        start = time.perf_counter()
        inputs: list[RatingInputs] = [aggregate(facts, recs, as_of) for _, facts, recs in items]
        totals.aggregate_s += time.perf_counter() - start

        start, cpu = time.perf_counter(), time.process_time()
        decided = [rate_from_aggregates(agg) for agg in inputs]
        totals.from_aggregates_s += time.perf_counter() - start
        totals.from_aggregates_cpu_s += time.process_time() - cpu
        gc.unfreeze()

        for (operator_id, _, _), rating, (cls, rules) in zip(items, ratings, decided, strict=True):
            if (rating.cls, tuple(r.rule for r in rating.reasons)) != (cls, rules):
                raise SystemExit(f"两条路径结果不一致 / paths disagree for {operator_id}")
            totals.classes[cls.value] = totals.classes.get(cls.value, 0) + 1
        totals.operators += size
        totals.records += chunk_records
        done += size
        print(f"  {done:>9,} / {operators:,} operators", file=sys.stderr, flush=True)
    return totals


def main() -> None:
    """Parse arguments, run the bench and print the figures."""
    parser = argparse.ArgumentParser(description="评级引擎吞吐量基准 / rating engine throughput bench")
    parser.add_argument("--operators", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=5_000_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2017566)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 27))
    args = parser.parse_args()

    totals = run(args.operators, args.records, args.chunk, args.seed, args.as_of)
    result = {
        "operators": totals.operators,
        "records": totals.records,
        "rate_seconds": round(totals.rate_s, 2),
        "rate_ops_per_s": round(totals.operators / totals.rate_s),
        "rate_records_per_s": round(totals.records / totals.rate_s),
        "rate_cpu_ops_per_s": round(totals.operators / totals.rate_cpu_s),
        "rate_from_aggregates_seconds": round(totals.from_aggregates_s, 2),
        "rate_from_aggregates_ops_per_s": round(totals.operators / totals.from_aggregates_s),
        "rate_from_aggregates_cpu_ops_per_s": round(totals.operators / totals.from_aggregates_cpu_s),
        "python_aggregate_seconds": round(totals.aggregate_s, 2),
        "python_aggregate_ops_per_s": round(totals.operators / totals.aggregate_s),
        "classes": totals.classes,
        "paths_agree": True,
        "python": sys.version.split()[0],
    }
    print("评级引擎基准（纯函数，不含数据库）/ rating engine bench (pure, no database)")
    print("  路径 / path                 墙钟 wall ops/s    CPU ops/s")
    print(f"  rate()                 {result['rate_ops_per_s']:>16,} {result['rate_cpu_ops_per_s']:>12,}")
    print(
        f"  rate_from_aggregates() {result['rate_from_aggregates_ops_per_s']:>16,}"
        f" {result['rate_from_aggregates_cpu_ops_per_s']:>12,}"
    )
    print(f"  aggregate() (Python)   {result['python_aggregate_ops_per_s']:>16,}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
