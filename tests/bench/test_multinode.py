"""bench_multinode's arithmetic: the two-of-each figures sit beside the one-of-each anchor, CPU per request divides
by every request sent (failed ones too), and a process's CPU includes the children it started and reaped."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.bench_load_mix import Results
from bench.bench_multinode import Outcome, _tree_cpu, figures
from tests.support.processes import ROLES


def _outcome(name: str, ok: int, errors: int, api_cpu: float) -> Outcome:
    results = Results(elapsed=10.0)
    results.latencies["qr"] += [0.02] * ok
    if errors:
        results.errors["qr"]["HTTP 503"] += errors
    cpu = dict.fromkeys((*ROLES, "postgres", "moto"), 1.0) | {"api": api_cpu}
    return Outcome(name, 1 if name == "one" else 2, results, [], cpu, cpu, 0.5, 1.0, {"ok": True})


def test_figures_put_two_of_each_beside_one_of_each() -> None:
    one = _outcome("one", ok=1000, errors=0, api_cpu=5.0)
    multi = _outcome("multi", ok=1500, errors=0, api_cpu=6.0)
    by_name = {f.name: f for f in figures(one, multi, 10.0, 16)}
    throughput = by_name["throughput, two of each role (16 conns, 10 s)"]
    assert (throughput.value, throughput.anchor, throughput.ok) == (150.0, 100.0, True)
    api = by_name["CPU per request: api, two of each role"]
    assert (api.value, api.anchor) == (4.0, 5.0) and api.ok
    total = by_name["CPU per request: every role + PostgreSQL + moto, two of each role"]
    assert total.anchor == 5.0 + 5 * 1.0  # worker, relay, beat, postgres, moto: 1 s each; 10 s over 1000


def test_cpu_per_request_counts_failed_requests_and_errors_fail() -> None:
    one = _outcome("one", ok=900, errors=100, api_cpu=5.0)
    assert one.requests() == 1000 and one.per_request_ms("api") == 5.0
    by_name = {f.name: f for f in figures(one, _outcome("multi", 1000, 0, 5.0), 10.0, 16)}
    assert not by_name["errors, one of each role"].ok
    assert by_name["errors, two of each role"].ok


def test_tree_cpu_includes_reaped_children() -> None:
    before = _tree_cpu(os.getpid())
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert _tree_cpu(os.getpid()) - before >= 0.3
