"""Issue 7 figures: a verification institution's CSV of 100,000 results imported as an intake job, on SQLite and
PostgreSQL (anchor: ≤ 60 s), and the same file uploaded again (every row a duplicate).

Run: .venv/bin/python -m bench.bench_intake [--rows N] [--skip-sqlite] [--skip-postgres]
Each database backend runs in its own subprocess, because settings and engines are per process. The data is
generated here: operators and instruments are loaded with the operator/instrument importer first (not timed);
what is timed is the upload check (decode, headers, row count, store) plus the job run, chunk by chunk, exactly
as the Celery task runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import Figure, fresh_postgres, machine, save, table

ROOT = Path(__file__).resolve().parent.parent
PER_OPERATOR = 5
TYPES = ["price_scale", "fuel_dispenser", "taximeter", "sphygmomanometer", "refractometer"]


def write_csvs(folder: Path, rows: int) -> tuple[Path, Path, Path]:
    """Operators and instruments to load, and the institution's file: ~5 % failures, ~1 % malformed rows, and a
    twentieth of the instruments last verified so long ago that the new verification finds them overdue."""
    from backend.dates import bureau_date
    from backend.operators.uscc import random_usccs

    rng = random.Random(1517)
    n_ops = -(-rows // PER_OPERATOR)
    codes = random_usccs("330106", n_ops, seed=15)
    today = bureau_date()
    ops, insts, results = folder / "operators.csv", folder / "instruments.csv", folder / "verifications.csv"
    with ops.open("w", encoding="utf-8") as fo, insts.open("w", encoding="utf-8") as fi:
        fo.write("统一社会信用代码,名称,行业,地址,法定代表人,行政区划代码\n")
        fi.write("统一社会信用代码,器具类型,出厂编号,检定日期,检定结果,证书编号\n")
        for i, code in enumerate(codes):
            fo.write(f"{code},经营者{i},market,某路{i}号,法人{i},330106\n")
            for j in range(PER_OPERATOR):
                # Within the shortest period (6 months) for most; 5 % lapsed long ago and still in use.
                old = rng.random() < 0.05
                verified = today - timedelta(days=rng.randrange(500, 700) if old else rng.randrange(120, 170))
                fi.write(f"{code},{TYPES[j]},SN{i}-{j},{verified},合格,OLD-{i}-{j}\n")
    with results.open("w", encoding="utf-8") as fr:
        fr.write("出厂编号,统一社会信用代码,检定日期,检定结果,证书编号,有效期至,备注\n")
        for n in range(rows):
            i, j = divmod(n, PER_OPERATOR)
            verified = today - timedelta(days=rng.randrange(1, 30))
            roll = rng.random()
            if roll < 0.01:
                fr.write(f"SN{i}-{j},{codes[i]},{verified},也许,,,\n")  # malformed: result and certificate
                continue
            result = "不合格" if roll < 0.06 else "合格"
            fr.write(f"SN{i}-{j},{codes[i]},{verified},{result},JD2026-{n:06d},,周期检定\n")
    return ops, insts, results


def child(url: str, ops: str, insts: str, results: str) -> None:
    """Runs in a subprocess: migrate, load the registry, then time the upload check and the job, twice."""
    os.environ["GONGPING_DATABASE_URL"] = url
    media = tempfile.mkdtemp(prefix="gongping-bench-media-")
    os.environ["GONGPING_MEDIA_DIR"] = media
    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Account, Role
    from backend.auth.scope import Scope
    from backend.db import session_scope
    from backend.intake import jobs
    from backend.intake.models import IntakeJob, JobKind
    from backend.media.storage import LocalMediaStorage
    from backend.migrate import upgrade
    from backend.operators.importer import import_instruments, import_operators

    upgrade(url)
    scope = Scope(SYSTEM, "/")
    with session_scope() as session, open(ops, encoding="utf-8") as fh:
        import_operators(session, fh, scope=scope)
    with session_scope() as session, open(insts, encoding="utf-8") as fh:
        import_instruments(session, fh, scope=scope)
    with session_scope() as session:
        institution = auth_service.create_account(
            session,
            actor=SYSTEM,
            username="bench_institution",
            password="Bench-institution-2026",
            role=Role.institution,
            organisation="浙江省计量科学研究院",
            check_policy=False,
        )
        account_id = institution.id
    storage = LocalMediaStorage(Path(media))
    data = Path(results).read_bytes()
    runs = []
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        with session_scope() as session:
            account = session.get(Account, account_id)
            assert account is not None
            job = jobs.create_job(
                session,
                account=account,
                kind=JobKind.verifications,
                filename="v.csv",
                data=data,
                storage=storage,
            )
            job_id = job.id or 0
        t1 = time.perf_counter()
        jobs.run_job(job_id, storage=storage)
        t2, c2 = time.perf_counter(), time.process_time()
        with session_scope() as session:
            done = session.get(IntakeJob, job_id)
            assert done is not None
            runs.append(
                {
                    "upload_s": t1 - t0,
                    "job_s": t2 - t1,
                    # This process's CPU time: on a shared, oversubscribed machine, what the import itself cost
                    # (SQLite works in-process; PostgreSQL's own work is in the server and not counted here).
                    "cpu_s": c2 - c0,
                    "rows": done.total_rows,
                    "imported": done.imported,
                    "duplicates": done.duplicates,
                    "rejected": done.rejected,
                    "records": done.records_created,
                    "state": done.state.value,
                }
            )
    print(json.dumps(runs))


def _run_child(*args: str) -> list[dict[str, float]]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_intake", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-5000:])
        raise SystemExit(out.returncode)
    result: list[dict[str, float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _figures(label: str, runs: list[dict[str, float]]) -> list[Figure]:
    first, again = runs
    total = first["upload_s"] + first["job_s"]
    print(
        f"{label}: {first['rows']:,.0f} rows in {total:.1f} s wall, {first.get('cpu_s', 0):.1f} s CPU in the "
        f"importing process ({first['rows'] / total:,.0f} rows/s; upload check "
        f"{first['upload_s']:.1f} s, job {first['job_s']:.1f} s) — imported {first['imported']:,.0f}, rejected "
        f"{first['rejected']:,.0f}, records {first['records']:,.0f}; again: {again['upload_s'] + again['job_s']:.1f} s, "
        f"duplicates {again['duplicates']:,.0f}, imported {again['imported']:,.0f}"
    )
    return [
        Figure(
            f"Institution CSV import on {label} ({first['rows']:,.0f} rows)",
            total,
            "s",
            60,
            "≤ 60 s",
            "lower",
        ),
        Figure(
            f"Institution CSV import rate on {label}",
            first["rows"] / total,
            "rows/s",
            100_000 / 60,
            "≥ 1,667 rows/s",
            "higher",
        ),
        Figure(
            f"Same file again on {label} (all duplicates)",
            again["upload_s"] + again["job_s"],
            "s",
            60,
            "≤ 60 s",
            "lower",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    figures: list[Figure] = []
    extra: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = [str(p) for p in write_csvs(Path(tmp), args.rows)]
        if not args.skip_sqlite:
            runs = _run_child("--child", f"sqlite:///{Path(tmp) / 'bench.db'}", *files)
            figures += _figures("SQLite", runs)
            extra["sqlite_runs"] = runs
        if not args.skip_postgres:
            with fresh_postgres() as url:
                runs = _run_child("--child", url, *files)
                figures += _figures("PostgreSQL", runs)
                extra["postgresql_runs"] = runs
    print(f"\nMachine: {machine()}\n")
    print(table("Issue 7 — verification institution intake", figures))
    save("intake", figures, extra)


if __name__ == "__main__":
    main()
