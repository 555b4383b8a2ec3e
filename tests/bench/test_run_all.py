"""bench/run_all reports only this run's figures (a failed script: failed, no numbers), and throughput counts only
successful answers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import run_all
from bench.bench_load_mix import Results
from bench.bench_public import parse_wrk
from bench.common import OUT

FIGURE = {"name": "speed", "value": 12.5, "unit": "req/s", "anchor_label": "≥ 10", "ratio": 1.25, "ok": True}


def _script(tmp_path: Path, name: str, exit_code: int, value: float) -> list[str]:
    """A stand-in benchmark that saves one figure through bench.common.save and exits with ``exit_code``."""
    path = tmp_path / f"{name}.py"
    path.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(run_all.ROOT)!r})\n"
        "from bench.common import Figure, save\n"
        f"save({name!r}, [Figure('speed', {value}, 'req/s', 10.0, '≥ 10', 'higher')])\n"
        f"sys.exit({exit_code})\n"
    )
    return [sys.executable, str(path)]


def test_a_failed_script_reports_failed_and_no_figures(tmp_path: Path) -> None:
    ok = run_all.run_script("bench_good", _script(tmp_path, "good", 0, 12.5))
    failed = run_all.run_script("bench_bad", _script(tmp_path, "bad", 3, 99.0))
    assert ok.ok and [(s, f["value"]) for s, f in ok.figures] == [("good", 12.5)]
    assert not failed.ok and failed.returncode == 3 and failed.figures == []
    report = run_all.render([ok, failed], "test machine")
    assert "| good | speed | 12.500 req/s |" in report
    assert "| bench_bad | failed (exit 3) |" in report
    assert "99.000" not in report


def test_figures_of_an_earlier_run_are_never_reported(tmp_path: Path) -> None:
    # What an earlier run left in the shared output folder must not reappear for a script that failed now.
    OUT.mkdir(exist_ok=True)
    stale = OUT / "stale_test_figures.json"
    stale.write_text(json.dumps({"figures": [FIGURE | {"value": 777.0}]}))
    try:
        failed = run_all.run_script("bench_stale", _script(tmp_path, "stale_test_figures", 1, 1.0))
        report = run_all.render([failed], "test machine")
    finally:
        stale.unlink()
    assert "777" not in report and "failed (exit 1)" in report


def test_load_mix_throughput_counts_only_successes() -> None:
    results = Results(elapsed=10.0)
    results.latencies["qr"] += [0.01] * 80
    results.errors["qr"]["HTTP 500"] += 20
    assert results.throughput() == 8.0


WRK_OUT = """Running 10s test @ http://127.0.0.1:8000
  2 threads and 32 connections
  Latency Distribution
     50%    2.00ms
     99%   10.50ms
  10000 requests in 10.00s, 1.00MB read
  Non-2xx or 3xx responses: 2500
Requests/sec:   1000.00
Transfer/sec:    100.00KB
"""


def test_wrk_throughput_counts_only_2xx_and_3xx() -> None:
    measured = parse_wrk(WRK_OUT)
    assert measured.non_2xx == 2500
    assert measured.rps == 750.0
    assert measured.p99_ms == 10.5
    assert parse_wrk(WRK_OUT.replace("  Non-2xx or 3xx responses: 2500\n", "")).rps == 1000.0
