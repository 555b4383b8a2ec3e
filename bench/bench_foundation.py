"""Issue 2 figures: CSV import of 100,000 operators + 300,000 instruments (SQLite and PostgreSQL), and the
p99 of GET /api/v1/operators/{id} in-process on PostgreSQL with 100,000 operators.

Run: .venv/bin/python -m bench.bench_foundation [--operators N] [--skip-sqlite]
Each database backend runs in its own subprocess, because settings and engines are per process.
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
COUNTIES = [
    "330106",
    "330102",
    "330105",
    "330108",
    "330109",
    "330110",
    "110105",
    "440305",
    "510104",
    "420106",
]
SECTORS = ["market", "fuel_station", "catering", "retail", "medical", "optical", "road_transport", "utility"]
TYPES = ["price_scale", "fuel_dispenser", "taximeter", "sphygmomanometer", "refractometer", "water_meter"]


def write_csvs(folder: Path, n_operators: int, per_operator: int) -> tuple[Path, Path]:
    """Synthetic operator and instrument CSVs with Chinese headers, as a bureau would export them."""
    from backend.dates import bureau_date
    from backend.operators.uscc import random_usccs

    rng = random.Random(2260)
    codes = random_usccs("330106", n_operators, seed=11)
    ops, insts = folder / "operators.csv", folder / "instruments.csv"
    today = bureau_date()
    with ops.open("w", encoding="utf-8") as fo, insts.open("w", encoding="utf-8") as fi:
        fo.write("统一社会信用代码,名称,行业,地址,法定代表人,行政区划代码,经度,纬度\n")
        fi.write("统一社会信用代码,器具类型,出厂编号,制造商,型号,检定日期,检定结果,证书编号,检定机构\n")
        for i, code in enumerate(codes):
            county = COUNTIES[i % len(COUNTIES)]
            fo.write(
                f"{code},经营者{i},{SECTORS[i % 8]},某路{i}号,法人{i},{county},"
                f"{110 + rng.random() * 10:.6f},{25 + rng.random() * 10:.6f}\n"
            )
            for j in range(per_operator):
                verified = today - timedelta(days=rng.randrange(0, 600))
                result = "合格" if rng.random() > 0.05 else "不合格"
                fi.write(
                    f"{code},{TYPES[(i + j) % len(TYPES)]},SN{i}-{j},厂家,M{j},{verified},{result},C{i}-{j},计量院\n"
                )
    return ops, insts


def _cpu_s() -> float:
    """CPU seconds of this process so far (user + system, all threads)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu_s(session: object) -> float | None:
    """CPU seconds of the PostgreSQL backend serving ``session`` (same machine only), else None.

    On a shared machine wall time mostly measures the other load; CPU time of client plus server is what
    the import itself costs.
    """
    from sqlmodel import Session

    assert isinstance(session, Session)
    if session.get_bind().dialect.name != "postgresql":
        return None
    pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_import(url: str, ops: str, insts: str) -> None:
    """Runs in a subprocess: migrate, import both files, print timings as JSON."""
    os.environ["GONGPING_DATABASE_URL"] = url
    from backend.audit.service import SYSTEM
    from backend.auth.scope import Scope
    from backend.db import session_scope
    from backend.migrate import upgrade
    from backend.operators.importer import import_instruments, import_operators

    upgrade(url)
    scope = Scope(SYSTEM, "/")
    server_cpu = 0.0
    c0, t0 = _cpu_s(), time.perf_counter()
    with session_scope() as session, open(ops, encoding="utf-8") as fh:
        before = _backend_cpu_s(session)
        r1 = import_operators(session, fh, scope=scope)
        after = _backend_cpu_s(session)
        server_cpu += (after or 0) - (before or 0)
    c1, t1 = _cpu_s(), time.perf_counter()
    with session_scope() as session, open(insts, encoding="utf-8") as fh:
        before = _backend_cpu_s(session)
        r2 = import_instruments(session, fh, scope=scope)
        after = _backend_cpu_s(session)
        server_cpu += (after or 0) - (before or 0)
    c2, t2 = _cpu_s(), time.perf_counter()
    print(
        json.dumps(
            {
                "operators_s": t1 - t0,
                "instruments_s": t2 - t1,
                "client_cpu_s": c2 - c0,
                "client_cpu_operators_s": c1 - c0,
                "server_cpu_s": server_cpu if before is not None else None,
                "load": os.getloadavg(),
                "created": [r1.created, r2.created],
                "errors": [len(r1.errors), len(r2.errors)],
            }
        )
    )


def child_get_p99(url: str, requests: int) -> None:
    """Runs in a subprocess on an imported database: time GET /api/v1/operators/{id} in-process (ASGI)."""
    os.environ["GONGPING_DATABASE_URL"] = url
    os.environ["GONGPING_ARGON2_MEMORY_KIB"] = "8192"
    import asyncio

    import httpx
    from sqlmodel import func, select

    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Role
    from backend.db import session_scope
    from backend.main import create_app
    from backend.operators.models import Operator

    with session_scope() as session:
        auth_service.create_account(
            session,
            actor=SYSTEM,
            username="bench_admin",
            password="Bench-admin-2026",
            role=Role.admin,
            check_policy=False,
        )
        max_id = session.exec(select(func.max(Operator.id))).one() or 1

    async def run() -> list[float]:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            token = await client.post(
                "/api/v1/auth/token", data={"username": "bench_admin", "password": "Bench-admin-2026"}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            rng = random.Random(1)
            for _ in range(300):  # warm-up: pool, caches
                await client.get(f"/api/v1/operators/{rng.randint(1, max_id)}", headers=headers)
            samples = []
            cpu_before = _cpu_s()
            for _ in range(requests):
                t = time.perf_counter()
                resp = await client.get(f"/api/v1/operators/{rng.randint(1, max_id)}", headers=headers)
                samples.append(time.perf_counter() - t)
                assert resp.status_code == 200, resp.text
            cpu.append(_cpu_s() - cpu_before)
            return samples

    cpu: list[float] = []
    samples = sorted(asyncio.run(run()))
    print(
        json.dumps(
            {
                "p50_ms": samples[len(samples) // 2] * 1000,
                "p99_ms": samples[int(len(samples) * 0.99)] * 1000,
                # Client and app share the process: this is both, per request (the client's share included).
                "cpu_ms_per_request": cpu[0] / requests * 1000,
                "load": os.getloadavg(),
                "requests": requests,
            }
        )
    )


def _run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_foundation", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--operators", type=int, default=100_000)
    parser.add_argument("--per-operator", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "import":
            child_import(*args.child[1:])
        else:
            child_get_p99(args.child[1], int(args.child[2]))
        return
    figures: list[Figure] = []
    details: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        ops, insts = write_csvs(Path(tmp), args.operators, args.per_operator)
        label = f"{args.operators:,} operators + {args.operators * args.per_operator:,} instruments"
        if not args.skip_sqlite:
            db = Path(tmp) / "bench.db"
            r = _run_child("--child", "import", f"sqlite:///{db}", str(ops), str(insts))
            details.append(f"SQLite import: {json.dumps(r)}")
            figures.append(
                Figure(
                    f"CSV import on SQLite ({label})",
                    r["operators_s"] + r["instruments_s"],
                    "s",
                    60,
                    "≤ 60 s",
                    "lower",
                )
            )
        with fresh_postgres() as url:
            r = _run_child("--child", "import", url, str(ops), str(insts))
            details.append(f"PostgreSQL import: {json.dumps(r)}")
            figures.append(
                Figure(
                    f"CSV import on PostgreSQL ({label})",
                    r["operators_s"] + r["instruments_s"],
                    "s",
                    60,
                    "≤ 60 s",
                    "lower",
                )
            )
            g = _run_child("--child", "get", url, str(args.requests))
            details.append(f"GET: {json.dumps(g)}")
            figures.append(
                Figure(
                    f"GET /api/v1/operators/{{id}} p99 in-process, PostgreSQL, {args.operators:,} ops",
                    g["p99_ms"],
                    "ms",
                    10,
                    "≤ 10 ms",
                    "lower",
                )
            )
    for line in details:
        print(line)
    print(f"Machine: {machine()}\n")
    print(table("Issue 2 — foundation", figures))
    save("foundation", figures)


if __name__ == "__main__":
    main()
