"""Run every benchmark under bench/ and write bench/REPORT.md from the figures each one saved in bench/out/.

Run: .venv/bin/python -m bench.run_all [--only NAME ...]
Each script runs in its own process (settings and engines are per process); a failing script is reported,
not hidden, and the report still lists the others.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import OUT, machine

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", help="script names without .py, e.g. bench_geo")
    args = parser.parse_args()
    scripts = sorted(p for p in BENCH.glob("bench_*.py") if not args.only or p.stem in args.only)
    failures: list[str] = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", f"bench.{script.stem}"], cwd=ROOT, check=False)
        print(
            f"   {script.stem}: exit {result.returncode} in {time.perf_counter() - started:.0f} s", flush=True
        )
        if result.returncode != 0:
            failures.append(script.stem)
    lines = [
        "# Benchmark report",
        "",
        f"Machine: {machine()}",
        "",
        "| benchmark | figure | measured | anchor | ratio | ok |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(OUT.glob("*.json")):
        data = json.loads(path.read_text())
        for f in data.get("figures", []):
            lines.append(
                f"| {path.stem} | {f['name']} | {f['value']:,.3f} {f['unit']} | {f['anchor_label']} "
                f"| {f['ratio']:.2f}× | {'✅' if f['ok'] else '❌'} |"
            )
    if failures:
        lines += ["", "Scripts that failed this run: " + ", ".join(failures)]
    (BENCH / "REPORT.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {BENCH / 'REPORT.md'}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
