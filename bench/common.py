"""Shared helpers for the benchmark scripts: machine description, fresh databases, result tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("GONGPING_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
#: Where save() writes; run_all gives each script an empty folder of its own, so no figure outlives its run.
OUT = Path(os.environ.get("GONGPING_BENCH_OUT") or Path(__file__).resolve().parent / "out")


@dataclass
class Figure:
    """One measured figure beside its anchor (the target or the compared implementation)."""

    name: str
    value: float
    unit: str
    anchor: float
    anchor_label: str
    better: str  # "lower" or "higher"

    @property
    def ratio(self) -> float:
        """value / anchor (or anchor / value when lower is better), > 1 means the anchor is met with room."""
        if self.better == "lower":
            return self.anchor / self.value if self.value else float("inf")
        return self.value / self.anchor if self.anchor else float("inf")

    @property
    def ok(self) -> bool:
        """Whether the figure meets its anchor."""
        return self.ratio >= 1.0


def expand(weights: dict[str, int]) -> list[str]:
    """Each key repeated its weight times (weights out of 100), so a uniform draw from the list is weighted."""
    assert sum(weights.values()) == 100
    return [k for k, w in weights.items() for _ in range(w)]


def machine() -> str:
    """A one-line description of the machine."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return f"{os.cpu_count()} cores · {cpu} · {mem:.0f} GiB · Python {platform.python_version()} · {pg}"


def table(title: str, figures: list[Figure]) -> str:
    """A markdown table of figures with their anchors and ratios."""
    lines = [f"### {title}", "", "| figure | measured | anchor | ratio | ok |", "|---|---|---|---|---|"]
    for f in figures:
        lines.append(
            f"| {f.name} | {f.value:,.3f} {f.unit} | {f.anchor_label} | {f.ratio:.2f}× | {'✅' if f.ok else '❌'} |"
        )
    return "\n".join(lines)


def save(name: str, figures: list[Figure], extra: dict[str, object] | None = None) -> None:
    """Write the figures as JSON under bench/out/ for the report."""
    OUT.mkdir(exist_ok=True)
    payload = {"machine": machine(), "figures": [asdict(f) | {"ratio": f.ratio, "ok": f.ok} for f in figures]}
    payload |= extra or {}
    (OUT / f"{name}.json").write_text(json.dumps(payload, ensure_ascii=False, indent=2))


def start_app(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """One uvicorn process serving the app on ``port`` with ``env``; returns once /healthz answers (2 min at most)."""
    import httpx

    from tests.support.processes import stop_process

    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "backend.asgi:app", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    stop_process(proc)
    raise RuntimeError("uvicorn did not start")


def insert_operators(conn: Any, count: int, *, prefix: str = "B", first: int = 1) -> None:
    """``count`` market operators of 西湖区 (330106) in one INSERT on a SQLAlchemy connection, numbered from
    ``first``: USCC ``prefix`` + the number, name 经营者<number>."""
    from sqlalchemy import text

    conn.execute(
        text(
            """
            INSERT INTO operator (uscc, name, sector, address, legal_representative, jurisdiction_code,
                management_assessment, metrology_assurance, is_demonstration_unit, qr_serial, is_active,
                created_at, updated_at)
            SELECT CAST(:prefix AS text) || lpad(i::text, 17, '0'), '经营者' || i, 'market', '某路' || i || '号',
                '法人' || i, '330106', 'not_assessed', '', false, 1, true, now(), now()
            FROM generate_series(:first, :first + :n - 1) AS i
            """
        ),
        {"prefix": prefix, "first": first, "n": count},
    )


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL database; yields its URL and drops it afterwards."""
    from sqlalchemy import create_engine, text

    name = f"gongping_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
