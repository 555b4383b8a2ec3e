"""Run every benchmark under bench/ and write bench/REPORT.md from the figures each one saved in this run.

Run: .venv/bin/python -m bench.run_all [--only NAME ...]
Scripts in OPT_IN run only when named in --only (bench_archive imports a provincial archive: about an hour).
Each script runs in its own process (settings and engines are per process) with an empty output folder of its
own: the report lists only the figures a script saved in this run, and a script that failed is reported as
failed with no figures (never the numbers of an earlier run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import machine

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
#: Too long for every run: only when asked for by name (``--only bench_archive``).
OPT_IN = frozenset({"bench_archive"})


@dataclass
class ScriptResult:
    """What one script did in this run: its exit status and the figures it saved (none when it failed)."""

    name: str
    returncode: int
    seconds: float
    figures: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Markdown a script adds below the table (``report_md`` in its JSON): step times, sizes.
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the script exited 0."""
        return self.returncode == 0


def run_script(name: str, command: list[str]) -> ScriptResult:
    """Run ``command`` with an empty GONGPING_BENCH_OUT and keep the figures it saved, if it succeeded."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"gongping-bench-{name}-") as folder:
        env = {**os.environ, "GONGPING_BENCH_OUT": folder}
        returncode = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        result = ScriptResult(name, returncode, time.perf_counter() - started)
        if result.ok:
            for path in sorted(Path(folder).glob("*.json")):
                data = json.loads(path.read_text(encoding="utf-8"))
                result.figures += [(path.stem, f) for f in data.get("figures", [])]
                result.notes += data.get("report_md", [])
    return result


def render(results: list[ScriptResult], machine_line: str) -> str:
    """The report: every figure of the scripts that succeeded, and a failed row for each that did not."""
    lines = [
        "# Benchmark report",
        "",
        f"Machine: {machine_line}",
        "",
        "| benchmark | figure | measured | anchor | ratio | ok |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        if not result.ok:
            lines.append(f"| {result.name} | failed (exit {result.returncode}) | — | — | — | ❌ |")
            continue
        for source, f in result.figures:
            lines.append(
                f"| {source} | {f['name']} | {f['value']:,.3f} {f['unit']} | {f['anchor_label']} "
                f"| {f['ratio']:.2f}× | {'✅' if f['ok'] else '❌'} |"
            )
    failures = [r.name for r in results if not r.ok]
    if failures:
        lines += ["", "Scripts that failed this run (no figures reported): " + ", ".join(failures)]
    for result in results:
        if result.ok and result.notes:
            lines += ["", *result.notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", help="script names without .py, e.g. bench_geo")
    args = parser.parse_args()
    scripts = sorted(
        p for p in BENCH.glob("bench_*.py") if (p.stem in args.only if args.only else p.stem not in OPT_IN)
    )
    results: list[ScriptResult] = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        result = run_script(script.stem, [sys.executable, "-m", f"bench.{script.stem}"])
        print(f"   {script.stem}: exit {result.returncode} in {result.seconds:.0f} s", flush=True)
        results.append(result)
    (BENCH / "REPORT.md").write_text(render(results, machine()), encoding="utf-8")
    print(f"wrote {BENCH / 'REPORT.md'}")
    if any(not r.ok for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
