"""Issue 18 figures: a provincial archive on PostgreSQL — 5,000,000 operators, 15,000,000 instruments,
25,000,000 integrity records and 300,000 cases — its import, the nightly re-rating, ``GET /api/v1/operators/{id}``
and the case queue at that size, and the disk it takes.

Run (opt-in in run_all: hours at full size):
    nice -n 10 .venv/bin/python -m bench.bench_archive [--scale 1.0]     # build gp_archive if absent, then time
    nice -n 10 .venv/bin/python -m bench.bench_archive --reuse            # only the timed steps, on the kept archive
    nice -n 10 .venv/bin/python -m bench.bench_archive --rebuild          # drop and import again

The archive is a database of its own (``gp_archive`` on the bench server, ``--db`` to change), migrated with the
product's migrations, and KEPT after the run: ``--reuse`` re-measures the re-rating and latencies in minutes.

Import (each step timed): the province's operators (浙江, spread unevenly over its counties, valid USCCs issued
in their county), 1-5 instruments each by sector with their newest verification mirrored in a verification
record, integrity records of every kind and state over seven years (so the rating windows matter), and cases
with their complaints (most closed, the recent ones open, some overdue or escalated). Rows stream from
generators through PostgreSQL COPY in chunks of ``CHUNK`` rows into exactly the columns the models define;
secondary indexes and foreign keys are dropped first and rebuilt after (timed), then every table is vacuumed
and analysed. This is a migration import from a predecessor system, like the CSV importers' bulk path: each
chunk commits with one ``archive.import`` audit entry (through ``audit.record_many``, so the chain stays
whole) that names the table, the id range, the row count and the SHA-256 of the exact COPY text. Per-record
version history and case events start in the source system and are not replayed.

Then the product's own code: the first rating of the archive (``rating.rerate_all``, what ``gongping rerate``
runs: every operator with records gets its row, class change, audit entry and event), and the nightly
re-rating timed twice — the same day (steady state) and the next day (windows expire for some records) — in
the ranges the nightly Celery task hands to workers (``workers.records_tasks.RANGE_SIZE``). Latencies go
over HTTP to one uvicorn process: ``GET /api/v1/operators/{id}`` at random ids by a province-level staff
member (each read is audited, as in production), and the case queue's first page through the API as a county's
staff and as an admin, and through the workbench (``/workbench/``) as the same county's staff.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bench_rating_db import KIND_WEIGHTS, STATE_WEIGHTS
from bench.common import PG_ADMIN_URL, Figure, expand, machine, save, start_app, table
from tests.support.processes import port_in, stop_process

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Bench-archive-2026"
PROVINCE = "330000"  # 浙江省
OPERATORS, INSTRUMENTS_PER_OPERATOR, RECORDS_PER_OPERATOR, CASES = 5_000_000, 3, 5, 300_000
CHUNK = 250_000
SEED = 18
#: The bench's own bookkeeping in the archive: what was imported, at which scale, up to which rating day.
META = "bench_archive_meta"
# Big tables whose secondary indexes and foreign keys are dropped for the load and rebuilt after it.
LOADED = ("operator", "instrument", "verification_record", "integrity_record", "complaint", "case_file")

SECTOR_WEIGHTS = {
    "market": 30,
    "catering": 25,
    "retail": 25,
    "fuel_station": 5,
    "medical": 5,
    "optical": 4,
    "road_transport": 4,
    "utility": 2,
}
SECTOR_ZH = {
    "market": "农贸",
    "catering": "餐饮店",
    "retail": "超市",
    "fuel_station": "加油站",
    "medical": "诊所",
    "optical": "眼镜店",
    "road_transport": "出租车服务部",
    "utility": "供水站",
}
#: The instruments an operator of a sector uses (catalogue codes), most common first.
SECTOR_INSTRUMENTS = {
    "market": ["price_scale", "price_scale", "platform_scale", "mechanical_scale", "weights"],
    "catering": ["price_scale", "platform_scale", "platform_scale"],
    "retail": ["price_scale", "platform_scale", "tape_measure"],
    "fuel_station": ["fuel_dispenser", "fuel_dispenser", "fuel_dispenser", "lpg_dispenser", "cng_dispenser"],
    "medical": ["sphygmomanometer", "clinical_thermometer", "platform_scale"],
    "optical": ["focimeter", "refractometer", "trial_lens_set"],
    "road_transport": ["taximeter"],
    "utility": ["water_meter", "gas_meter", "electricity_meter"],
}
KIND_SOURCE = {
    "complaint_substantiated": "complaint",
    "instrument_overdue": "overdue_sweep",
    "instrument_unverified": "inspection",
    "instrument_failed_verification": "institution",
    "inspection_failed": "inspection",
    "short_weight": "inspection",
    "short_changing_penalty": "staff",
    "net_content_noncompliant": "inspection",
    "metrology_cheating": "staff",
    "metrology_accident": "staff",
    "commitment_breached": "self_commitment",
    "association_warning": "association",
    "commitment_kept": "self_commitment",
    "demonstration_unit": "staff",
}
INSTRUMENT_KINDS = {"instrument_overdue", "instrument_unverified", "instrument_failed_verification"}
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
MAKERS = ["上海友声", "凯丰", "托利多", "正星", "长吉", "鱼跃", "欧姆龙", "新天", "金卡", "华立"]
CATEGORIES = (
    ["short_weight"] * 6
    + ["instrument_cheating", "unverified_instrument", "overdue_instrument"]
    + [
        "net_content",
        "other",
    ]
)
#: Rule 1's reason for a complaint naming a known operator without a geotag (cases/routing.py).
ROUTED_ZH = "已知经营者，按其登记辖区分派（投诉未附定位，未核对位置）。"
ROUTED_EN = "Known operator: routed to its registered jurisdiction (no geotag to check against)."
OUTCOMES = ["substantiated", "not_substantiated", "mediated", "mediated", "terminated"]


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


def _b(value: bool | None) -> str:
    return "\\N" if value is None else ("t" if value else "f")


@dataclass
class Plan:
    """What one scale imports; the same seed gives the same archive."""

    scale: float
    as_of: date
    operators: int
    cases: int
    counties: list[tuple[str, str, str]] = field(default_factory=list)  # (code, name, prefecture code)
    county_weights: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, scale: float, as_of: date) -> Plan:
        return cls(scale, as_of, max(1000, round(OPERATORS * scale)), max(500, round(CASES * scale)))


# --- database plumbing --------------------------------------------------------------------------------------


def _url(db: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{db}"


def _connect(db: str, autocommit: bool = False) -> Any:
    import psycopg

    return psycopg.connect(_url(db), autocommit=autocommit)


def _exists(db: str) -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None


def _meta(db: str) -> dict[str, Any]:
    with _connect(db) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (META,)).fetchone()
        if found is None or found[0] is None:
            return {}
        return {k: json.loads(v) for k, v in conn.execute(f"SELECT key, value FROM {META}")}


def _set_meta(db: str, **values: Any) -> None:
    with _connect(db) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {META} (key text PRIMARY KEY, value text NOT NULL)")
        for key, value in values.items():
            conn.execute(
                f"INSERT INTO {META} VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value, default=str)),
            )


class Steps:
    """Wall time of each named step, printed as it ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, int] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        print(f"  {name} …", file=sys.stderr, flush=True)
        yield
        self.seconds[name] = time.perf_counter() - started
        load = os.getloadavg()
        extra = f" ({self.rows[name]:,} rows)" if name in self.rows else ""
        print(
            f"  {name}: {self.seconds[name]:.1f} s{extra} · load {load[0]:.1f}", file=sys.stderr, flush=True
        )


# --- generators: one TSV line per row, in the model's column order ------------------------------------------


def _columns(table_name: str) -> list[str]:
    """The columns the model defines for a table (what COPY names)."""
    from sqlmodel import SQLModel

    import backend.models  # noqa: F401  (registers every table)

    return [c.name for c in SQLModel.metadata.tables[table_name].columns]


def _usccs_body(n: int) -> str:
    from backend.operators.uscc import ALPHABET

    chars = []
    for _ in range(8):
        n, r = divmod(n, 31)
        chars.append(ALPHABET[r])
    return "".join(reversed(chars))


class Archive:
    """The generators of one plan; the per-operator facts later generators need are kept in compact arrays."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.county_of = array("H")  # county index per operator (id - 1)
        self.sector_of = array("B")
        self.first_instrument = array(
            "q"
        )  # first instrument id per operator, and one past the last at the end
        self.sectors = list(SECTOR_WEIGHTS)
        self.db = ""

    def operators(self) -> Iterator[str]:
        from backend.operators.uscc import make_uscc, org_code_check_char

        rng = random.Random(SEED)
        plan = self.plan
        sector_pick = [i for i, (_, w) in enumerate(SECTOR_WEIGHTS.items()) for _ in range(w)]
        counties = [c for c, _, _ in plan.counties]
        names = [n for _, n, _ in plan.counties]
        cum = []
        total = 0.0
        for w in plan.county_weights:
            total += w
            cum.append(total)
        import bisect

        assessments = ["not_assessed"] * 5 + ["sound"] * 4 + ["not_fully_sound"]
        start = datetime(2012, 1, 1, tzinfo=UTC)
        span = (datetime.combine(plan.as_of, datetime.min.time(), UTC) - start).total_seconds()
        for op in range(1, plan.operators + 1):
            ci = bisect.bisect(cum, rng.random() * total)
            ci = min(ci, len(counties) - 1)
            si = rng.choice(sector_pick)
            self.county_of.append(ci)
            self.sector_of.append(si)
            sector = self.sectors[si]
            body = _usccs_body(op)
            # Individual businesses (92…) dominate markets and catering; the rest are enterprises (91…).
            kind = "2" if sector in ("market", "catering") and rng.random() < 0.8 else "1"
            uscc = make_uscc("9" + kind + counties[ci] + body + org_code_check_char(body))
            surname = SURNAMES[op % len(SURNAMES)]
            name = f"{names[ci]}{surname}记{SECTOR_ZH[sector]}{op}"
            created = _ts(start + timedelta(seconds=rng.random() * span))
            yield (
                f"{op}\t{uscc}\t{name}\t{sector}\t{names[ci]}某路{op % 997 + 1}号\t{surname}某某\t{counties[ci]}"
                f"\t\\N\t\\N\t1{op % 10**10:010d}\t{rng.choice(assessments)}\t\t"
                f"{_b(rng.random() < 0.01)}\t1\t{_b(rng.random() > 0.03)}\t{created}\t{created}\n"
            )

    def instruments(self) -> Iterator[str]:
        from backend.instruments.catalogue import CATALOGUE

        period = {c.code: c.period_months for c in CATALOGUE}
        life = {c.code: c.service_life_years for c in CATALOGUE}
        rng = random.Random(SEED + 1)
        as_of = self.plan.as_of
        instrument = 0
        for op in range(1, self.plan.operators + 1):
            self.first_instrument.append(instrument + 1)
            sector = self.sectors[self.sector_of[op - 1]]
            types = SECTOR_INSTRUMENTS[sector]
            for n in range(rng.randint(1, 5)):
                instrument += 1
                code = types[n % len(types)] if n < len(types) else rng.choice(types)
                months = period[code]
                status = "retired" if rng.random() < 0.04 else "in_use"
                # Newest verification: within its period for most, a few overdue, a few never verified.
                roll = rng.random()
                if roll < 0.03:
                    yield (
                        f"{instrument}\t{code}\tSN{instrument:010d}\t{rng.choice(MAKERS)}\tM{n + 1}\t{op}\t\\N"
                        f"\t{status}\t1\t\\N\t\\N\t\\N\t{_ts(datetime(2020, 1, 1, tzinfo=UTC))}\n"
                    )
                    continue
                days = 365 * (months or 12) // 12
                verified = as_of - timedelta(
                    days=int(rng.random() * (days * 1.15 if roll < 0.93 else days * 2))
                )
                passed = rng.random() > 0.02
                valid_until: date | None
                if not passed:
                    valid_until = None
                elif months:
                    valid_until = verified + timedelta(days=days)
                else:
                    valid_until = verified + timedelta(days=365 * (life[code] or 10)) if life[code] else None
                vu = valid_until.isoformat() if valid_until else "\\N"
                yield (
                    f"{instrument}\t{code}\tSN{instrument:010d}\t{rng.choice(MAKERS)}\tM{n + 1}\t{op}\t\\N"
                    f"\t{status}\t1\t{verified.isoformat()}\t{_b(passed)}\t{vu}\t{verified.isoformat()} 09:00:00+00\n"
                )
        self.first_instrument.append(instrument + 1)

    def verifications(self) -> Iterator[str]:
        """One verification record per verified instrument: the one its ``last_*`` fields mirror."""
        with _connect(self.db) as conn, conn.cursor(name="instruments") as cur:
            cur.itersize = 50_000
            cur.execute(
                "SELECT id, last_verified_on, last_passed, valid_until FROM instrument "
                "WHERE last_verified_on IS NOT NULL ORDER BY id"
            )
            for number, (instrument, verified, passed, valid_until) in enumerate(cur, start=1):
                vu = valid_until.isoformat() if valid_until else "\\N"
                yield (
                    f"{number}\t{instrument}\t{verified.isoformat()}\t{_b(passed)}\tJD{verified.year}{number:09d}"
                    f"\t浙江省计量科学研究院\t{vu}\t\\N\t{verified.isoformat()} 17:00:00+00\n"
                )

    def records(self) -> Iterator[str]:
        rng = random.Random(SEED + 2)
        kinds = expand(KIND_WEIGHTS)
        states = expand(STATE_WEIGHTS)
        as_of = self.plan.as_of
        record = 0
        for op in range(1, self.plan.operators + 1):
            # Skewed: most operators have a few records, some many, a third none (mean RECORDS_PER_OPERATOR).
            count = (
                int(rng.expovariate(1 / (RECORDS_PER_OPERATOR * 1.5 + 0.5))) if rng.random() < 2 / 3 else 0
            )
            lo, hi = self.first_instrument[op - 1], self.first_instrument[op] - 1
            for _ in range(count):
                record += 1
                kind = rng.choice(kinds)
                state = rng.choice(states)
                fact = as_of - timedelta(days=int(rng.random() * 2557))
                instrument = str(rng.randint(lo, hi)) if kind in INSTRUMENT_KINDS and hi >= lo else "\\N"
                in_use = _b(rng.random() < 0.3) if kind in INSTRUMENT_KINDS else "\\N"
                social = _b(rng.random() < 0.4) if kind == "metrology_accident" else "\\N"
                at = f"{(fact + timedelta(days=rng.randint(0, 20))).isoformat()} 10:00:00+00"
                yield (
                    f"{record}\t{op}\t{kind}\t{fact.isoformat()}\t{KIND_SOURCE[kind]}\t\\N\t\t[]\t{instrument}"
                    f"\t{state}\t{in_use}\t{social}\tf\t\\N\t1\t{at}\t{at}\n"
                )

    def complaints_and_cases(
        self, filers: list[int], assignees: dict[str, int]
    ) -> tuple[Callable[[], Iterator[str]], Callable[[], Iterator[str]]]:
        """The two generators (complaints, then their cases) from the same draws."""
        plan = self.plan
        rng = random.Random(SEED + 3)
        now = datetime.combine(plan.as_of, datetime.min.time(), UTC) + timedelta(hours=9)
        draws = []
        for n in range(1, plan.cases + 1):
            op = rng.randint(1, plan.operators)
            # Three years of cases, newest the densest: age in days with a long tail.
            age = min(3 * 365.0, rng.expovariate(1 / 200))
            draws.append((n, op, age, rng.random(), rng.random(), rng.choice(CATEGORIES)))
        counties = plan.counties

        def complaints() -> Iterator[str]:
            for n, op, age, r1, _r2, category in draws:
                code = counties[self.county_of[op - 1]][0]
                at = _ts(now - timedelta(days=age))
                status = _complaint_status(age, r1)
                yield (
                    f"{n}\t{filers[n % len(filers)]}\tconsumer\tconsumer\t{category}\t\\N\t顾客反映计量问题，编号{n}"
                    f"\t{op}\t\\N\t\\N\t{_b(r1 < 0.6)}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N"
                    f"\t\\N\t\\N\t\\N\t{status}\trouted\t{code}\t1\toperator_jurisdiction\t{ROUTED_ZH}\t{ROUTED_EN}"
                    f"\t\\N\tf\tf\t\\N\t{at}\t{at}\t{at}\n"
                )

        def cases() -> Iterator[str]:
            for n, op, age, r1, r2, _category in draws:
                code, _, prefecture = counties[self.county_of[op - 1]]
                received = now - timedelta(days=age)
                state = _case_state(age, r1)
                outcome = rejection = "\\N"
                accepted = decided = closed = "\\N"
                due = "\\N"
                overdue = escalated = False
                if state in ("accepted", "investigating", "closed"):
                    accepted = _ts(received + timedelta(days=3))
                if state == "closed":
                    outcome = OUTCOMES[int(r2 * len(OUTCOMES))]
                    decided = closed = _ts(received + timedelta(days=min(age, 20 + 40 * r2)))
                elif state == "not_accepted":
                    outcome, rejection = (
                        "not_accepted",
                        ["not_metrology", "duplicate", "out_of_time"][int(r2 * 3)],
                    )
                    decided = closed = _ts(received + timedelta(days=min(age, 5)))
                else:
                    # Open: the statutory deadline (7 working days to accept, 60 days to decide) counts on.
                    due_day = (received + timedelta(days=9 if state == "routed" else 60)).date()
                    due = due_day.isoformat()
                    overdue = due_day < plan.as_of
                    escalated = overdue and r2 < 0.3
                assignee = "\\N" if state == "routed" else str(assignees.get(code, assignees[""]))
                at = _ts(received)
                yield (
                    f"{n}\tTS{received.year}{n:010d}\t{n}\tcomplaint\t{state}\t{code}\t{PROVINCE}\t{prefecture}"
                    f"\t{code}\tf\t{op}\t{assignee}\t{at}\t{accepted}\t{decided}\t{closed}\t{outcome}\t{rejection}"
                    f"\t\\N\t\\N\t\t[]\t{due}\t{_b(overdue)}\t{_b(escalated)}\t{prefecture if escalated else chr(92) + 'N'}"
                    f"\t{at if escalated else chr(92) + 'N'}\t1\t{at}\t{closed if closed != chr(92) + 'N' else at}\n"
                )

        return complaints, cases


def _case_state(age: float, r: float) -> str:
    if age > 60:
        return "not_accepted" if r < 0.05 else "closed"
    if age < 7:
        return "routed" if r < 0.5 else "accepted"
    return "investigating" if r < 0.6 else ("closed" if r < 0.95 else "not_accepted")


def _complaint_status(age: float, r: float) -> str:
    state = _case_state(age, r)
    return "rejected" if state == "not_accepted" else state


# --- import ---------------------------------------------------------------------------------------------------


def _copy(db: str, table_name: str, lines: Iterator[str], steps: Steps, actor: Any) -> int:
    """COPY ``lines`` into ``table_name`` in committed chunks, each with its archive.import audit entry."""
    from backend.audit.service import AuditItem, record_many
    from backend.db import make_engine, session_scope

    columns = _columns(table_name)
    names = ", ".join(f'"{c}"' for c in columns)
    engine = make_engine(_url(db))
    total = 0
    done = False
    try:
        while not done:
            buffer = io.StringIO()
            first = None
            count = 0
            for line in lines:
                if first is None:
                    first = line.split("\t", 1)[0]
                buffer.write(line)
                count += 1
                if count == CHUNK:
                    break
            else:
                done = True
            if not count:
                break
            if total == 0:
                fields = buffer.getvalue().split("\n", 1)[0].count("\t") + 1
                assert fields == len(columns), f"{table_name}: {fields} fields for {len(columns)} columns"
            # The first column of each generated line is the row's id.
            last = line.split("\t", 1)[0]
            data = buffer.getvalue().encode()
            digest = hashlib.sha256(data).hexdigest()
            with session_scope(engine) as session:
                raw = session.connection().connection.driver_connection
                assert raw is not None
                raw.execute("SET LOCAL synchronous_commit = off")
                with raw.cursor().copy(f"COPY {table_name} ({names}) FROM STDIN") as copy:
                    for start in range(0, len(data), 1 << 20):
                        copy.write(data[start : start + (1 << 20)])
                record_many(
                    session,
                    actor=actor,
                    items=[
                        AuditItem(
                            "archive.import",
                            table_name,
                            f"{first}-{last}",
                            after={"rows": count, "sha256": digest, "source": "provincial archive migration"},
                        )
                    ],
                )
            total += count
    finally:
        engine.dispose()
    steps.rows[table_name] = total
    return total


def _drop_for_load(db: str) -> list[str]:
    """Drop the loaded tables' secondary indexes, unique and foreign-key constraints; the DDL to restore them."""
    restore: list[str] = []
    with _connect(db) as conn:
        cons = conn.execute(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype "
            "FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY(%s) AND c.contype IN ('u', 'f')",
            (list(LOADED),),
        ).fetchall()
        # Foreign keys from other tables into the loaded ones keep referencing their primary keys: untouched.
        for rel, name, _definition, _ in sorted(cons, key=lambda c: c[3] == "u"):
            conn.execute(f'ALTER TABLE "{rel}" DROP CONSTRAINT "{name}"')
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = ANY(%s) AND indexname NOT LIKE 'pk_%%'",
            (list(LOADED),),
        ).fetchall()
        for _, name, definition in indexes:
            conn.execute(f'DROP INDEX "{name}"')
            restore.append(definition)
        # Uniques first (the foreign keys of the loaded tables reference primary keys only), then foreign keys.
        restore += [f'ALTER TABLE "{r}" ADD CONSTRAINT "{n}" {d}' for r, n, d, t in cons if t == "u"]
        restore += [f'ALTER TABLE "{r}" ADD CONSTRAINT "{n}" {d}' for r, n, d, t in cons if t == "f"]
    return restore


def _create_accounts(db: str, plan: Plan) -> tuple[list[int], dict[str, int]]:
    """Filers, each county's staff (the case assignees), province staff and an admin, through the product."""
    os.environ["GONGPING_DATABASE_URL"] = _url(db)
    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Role
    from backend.db import make_engine, session_scope

    engine = make_engine(_url(db))
    filers: list[int] = []
    staff: dict[str, int] = {}
    with session_scope(engine) as session:
        for i in range(20):
            filers.append(
                auth_service.create_account(
                    session,
                    actor=SYSTEM,
                    username=f"archive_filer_{i}",
                    password=PASSWORD,
                    role=Role.consumer,
                ).id
                or 0
            )
        for code, _, _ in plan.counties:
            staff[code] = (
                auth_service.create_account(
                    session,
                    actor=SYSTEM,
                    username=f"archive_staff_{code}",
                    password=PASSWORD,
                    role=Role.staff,
                    jurisdiction_code=code,
                ).id
                or 0
            )
        staff[""] = (
            auth_service.create_account(
                session,
                actor=SYSTEM,
                username="archive_province",
                password=PASSWORD,
                role=Role.staff,
                jurisdiction_code=PROVINCE,
            ).id
            or 0
        )
        auth_service.create_account(
            session, actor=SYSTEM, username="archive_admin", password=PASSWORD, role=Role.admin
        )
    engine.dispose()
    return filers, staff


def _plan_counties(db: str, plan: Plan) -> None:
    with _connect(db) as conn:
        rows = conn.execute(
            "SELECT c.code, c.name, c.parent_code FROM jurisdiction c WHERE c.level = 'county' "
            "AND c.code LIKE %s ORDER BY c.code",
            (PROVINCE[:2] + "%",),
        ).fetchall()
    rng = random.Random(SEED)
    plan.counties = [(c, n, p) for c, n, p in rows]
    # Counties differ a lot in size: urban districts and big counties hold most operators.
    plan.county_weights = [rng.lognormvariate(0, 0.8) for _ in rows]


def build(db: str, plan: Plan, steps: Steps) -> None:
    """Create, migrate and fill the archive; every step timed."""
    import psycopg

    from backend.audit.service import SYSTEM

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    with steps.step("migrate"):
        from backend.migrate import upgrade

        upgrade(_url(db))
    _plan_counties(db, plan)
    with steps.step("accounts"):
        filers, staff = _create_accounts(db, plan)
    restore = _drop_for_load(db)
    actor = SYSTEM
    archive = Archive(plan)
    archive.db = db
    for name, lines in (
        ("operator", archive.operators()),
        ("instrument", archive.instruments()),
        ("verification_record", archive.verifications()),
        ("integrity_record", archive.records()),
    ):
        with steps.step(name):
            _copy(db, name, lines, steps, actor)
    complaints, cases = archive.complaints_and_cases(filers, staff)
    with steps.step("complaint"):
        _copy(db, "complaint", complaints(), steps, actor)
    with steps.step("case_file"):
        _copy(db, "case_file", cases(), steps, actor)
    with _connect(db, autocommit=True) as conn:
        for name in LOADED:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"
            )
    with steps.step("indexes and constraints"), _connect(db, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        for ddl in restore:
            t = time.perf_counter()
            conn.execute(ddl)
            print(f"    {time.perf_counter() - t:6.1f} s  {ddl[:110]}", file=sys.stderr, flush=True)
    with steps.step("vacuum analyze"), _connect(db, autocommit=True) as conn:
        for name in LOADED:
            conn.execute(f"VACUUM ANALYZE {name}")
    _set_meta(
        db,
        scale=plan.scale,
        as_of=plan.as_of.isoformat(),
        imported=True,
        counts=steps.rows,
        build_steps=steps.seconds,
    )
    first_rating(db, plan.as_of, steps)


def first_rating(db: str, as_of: date, steps: Steps) -> None:
    """The product's first rating of the imported archive, then statistics for what it wrote."""
    with steps.step("first rating"):
        report = _rerate(db, as_of)
    print(f"    first rating: {report}", file=sys.stderr, flush=True)
    with _connect(db, autocommit=True) as conn:
        for name in ("operator_rating", "rating_change", "audit_entry", "outbox_event"):
            conn.execute(f"VACUUM ANALYZE {name}")
    built = _meta(db).get("build_steps", {}) | steps.seconds
    _set_meta(db, rated_on=as_of.isoformat(), first_rating=report, build_steps=built)


def _rerate(db: str, day: date) -> dict[str, int]:
    os.environ["GONGPING_DATABASE_URL"] = _url(db)
    from backend.db import session_scope
    from backend.records import rating
    from workers.records_tasks import RANGE_SIZE

    return asdict(rating.rerate_all(as_of=day, batch=RANGE_SIZE, unit_of_work=session_scope))


# --- latencies through uvicorn ----------------------------------------------------------------------------------


def _timed(client: Any, paths: Callable[[int], str], requests: int) -> dict[str, float]:
    for i in range(20):  # warm plans and caches
        client.get(paths(-1 - i))
    samples = []
    for i in range(requests):
        path = paths(i)
        t = time.perf_counter()
        resp = client.get(path)
        samples.append(time.perf_counter() - t)
        assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text[:200]}"
    return {"p50_ms": _pct(samples, 0.5), "p99_ms": _pct(samples, 0.99), "requests": requests}


def latencies(db: str, args: argparse.Namespace, operators: int, county: str) -> dict[str, Any]:
    import re

    import httpx

    env = {**os.environ, "GONGPING_DATABASE_URL": _url(db)}
    port = port_in(args.port, args.port + 99)
    proc = start_app(env, port)
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(SEED + 4)
    ids = [rng.randint(1, operators) for _ in range(args.requests)]
    results: dict[str, Any] = {}
    try:

        def api(username: str) -> httpx.Client:
            client = httpx.Client(base_url=base, timeout=60)
            token = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
            assert token.status_code == 200, token.text
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            return client

        province, admin, staff = api("archive_province"), api("archive_admin"), api(f"archive_staff_{county}")
        results["operator"] = _timed(province, lambda i: f"/api/v1/operators/{ids[i]}", args.requests)
        queue = max(100, args.requests // 4)
        results["cases county"] = _timed(staff, lambda i: "/api/v1/cases", queue)
        results["cases county"]["total"] = staff.get("/api/v1/cases").json()["total"]
        results["cases admin"] = _timed(admin, lambda i: "/api/v1/cases", queue)
        results["cases admin"]["total"] = admin.get("/api/v1/cases").json()["total"]
        wb = httpx.Client(base_url=base, timeout=60)
        form = wb.get("/workbench/login")
        token = re.search(r'name="(?:login_token|csrf)" value="([^"]+)"', form.text)
        assert token is not None
        signed = wb.post(
            "/workbench/login",
            data={"username": f"archive_staff_{county}", "password": PASSWORD, "login_token": token.group(1)},
        )
        assert signed.status_code in (200, 303), signed.text[:300]
        results["workbench county"] = _timed(wb, lambda i: "/workbench/", queue)
    finally:
        stop_process(proc, timeout=30)
    return results


# --- disk -------------------------------------------------------------------------------------------------------


def disk(db: str) -> dict[str, Any]:
    with _connect(db) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = conn.execute(
            "SELECT relname, pg_total_relation_size(oid), pg_relation_size(oid), pg_indexes_size(oid), "
            "reltuples::bigint FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace "
            "ORDER BY 2 DESC LIMIT 12"
        ).fetchall()
        indexes = conn.execute(
            "SELECT c.relname, t.relname, pg_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE c.relnamespace = 'public'::regnamespace ORDER BY 3 DESC LIMIT 12"
        ).fetchall()
    return {
        "database_bytes": size[0] if size else 0,
        "tables": [{"table": t, "total": a, "heap": h, "indexes": i, "rows": r} for t, a, h, i, r in tables],
        "indexes": [{"index": n, "table": t, "bytes": b} for n, t, b in indexes],
    }


def _gb(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# --- main -------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="省级档案基准 / provincial archive bench")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count (0.01 to develop)")
    parser.add_argument("--db", default="gp_archive")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--reuse", action="store_true", help="skip the import: time the kept archive")
    mode.add_argument("--rebuild", action="store_true", help="drop the archive and import it again")
    parser.add_argument("--requests", type=int, default=2000, help="operator reads; the queue gets a quarter")
    parser.add_argument("--port", type=int, default=19500, help="first port tried for uvicorn")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    os.environ.update(
        {
            "GONGPING_ARGON2_MEMORY_KIB": "8192",
            "GONGPING_ENVIRONMENT": "test",
            "GONGPING_SECRET_KEY": "bench-archive-secret-key-that-is-long-enough-0123",
        }
    )
    os.environ["GONGPING_DATABASE_URL"] = _url(args.db)
    load_samples: list[tuple[str, tuple[float, float, float]]] = [("start", os.getloadavg())]
    meta = _meta(args.db) if _exists(args.db) else {}
    complete = bool(meta.get("rated_on"))
    if args.reuse and not complete:
        raise SystemExit(f"{args.db} holds no complete archive: run without --reuse first")
    steps = Steps()
    if meta.get("imported") and not complete and not args.rebuild:
        # The import finished but its first rating did not (interrupted): rate, keep the import's times.
        first_rating(args.db, date.fromisoformat(meta["as_of"]), steps)
        meta, complete = _meta(args.db), True
    if args.rebuild or not complete:
        plan = Plan.of(args.scale, datetime.now(UTC).date())
        print(f"building {args.db}: {plan.operators:,} operators, {plan.cases:,} cases", file=sys.stderr)
        build(args.db, plan, steps)
        load_samples.append(("after import", os.getloadavg()))
        meta = _meta(args.db)
    elif abs(float(meta["scale"]) - args.scale) > 1e-9 and not args.reuse:
        raise SystemExit(f"{args.db} was built at --scale {meta['scale']}: pass --reuse or --rebuild")
    counts = meta["counts"]
    day = date.fromisoformat(meta["rated_on"])
    timed = Steps()
    # Steady: the nightly run on the day the archive was last rated (nothing expires); next day: windows move.
    with timed.step("nightly steady"):
        steady = _rerate(args.db, day)
    with timed.step("nightly next day"):
        next_day = _rerate(args.db, day + timedelta(days=1))
    _set_meta(args.db, rated_on=(day + timedelta(days=1)).isoformat())
    load_samples.append(("after re-rating", os.getloadavg()))
    with _connect(args.db) as conn:
        county = conn.execute(
            "SELECT county_code FROM case_file GROUP BY county_code ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    assert county is not None
    lat = latencies(args.db, args, int(counts["operator"]), county[0])
    load_samples.append(("after latencies", os.getloadavg()))
    used = disk(args.db)

    size = (
        f"{counts['operator']:,} operators, {counts['instrument']:,} instruments, "
        f"{counts['integrity_record']:,} records"
    )
    figures = [
        Figure(
            f"nightly re-rating, steady state ({size})",
            timed.seconds["nightly steady"],
            "s",
            300,
            "≤ 5 min",
            "lower",
        ),
        Figure(
            f"nightly re-rating, next day, windows expire ({size})",
            timed.seconds["nightly next day"],
            "s",
            300,
            "≤ 5 min",
            "lower",
        ),
        Figure(
            f"GET /api/v1/operators/{{id}} p99 through uvicorn, random of {counts['operator']:,}",
            lat["operator"]["p99_ms"],
            "ms",
            10,
            "≤ 10 ms",
            "lower",
        ),
        Figure(
            f"GET /api/v1/cases first page p99, county staff ({lat['cases county']['total']:,} in scope)",
            lat["cases county"]["p99_ms"],
            "ms",
            100,
            "≤ 100 ms (ours)",
            "lower",
        ),
        Figure(
            f"GET /api/v1/cases first page p99, admin ({lat['cases admin']['total']:,} cases)",
            lat["cases admin"]["p99_ms"],
            "ms",
            100,
            "≤ 100 ms (ours)",
            "lower",
        ),
        Figure(
            "workbench queue /workbench/ first page p99, county staff",
            lat["workbench county"]["p99_ms"],
            "ms",
            150,
            "≤ 150 ms",
            "lower",
        ),
    ]
    build_steps: dict[str, float] = meta.get("build_steps", {})
    built_now = bool(steps.seconds)
    notes = [
        f"#### Provincial archive (bench_archive, --scale {meta['scale']}, database `{args.db}`)",
        "",
        f"Import steps ({'this run' if built_now else 'when the archive was built'}):",
        "",
        "| step | rows | wall |",
        "|---|---|---|",
    ]
    for name, seconds in build_steps.items():
        rows = counts.get(name)
        notes.append(f"| {name} | {f'{rows:,}' if rows else ''} | {seconds:,.1f} s |")
    notes += [
        f"| total | | {sum(build_steps.values()):,.1f} s |",
        "",
        f"First rating: {meta.get('first_rating')}",
        f"Nightly steady: {steady}",
        f"Nightly next day: {next_day}",
        "",
        f"Disk: database {_gb(used['database_bytes'])}",
        "",
        "| table | total | heap | indexes | rows |",
        "|---|---|---|---|---|",
    ]
    notes += [
        f"| {t['table']} | {_gb(t['total'])} | {_gb(t['heap'])} | {_gb(t['indexes'])} | {t['rows']:,} |"
        for t in used["tables"]
    ]
    notes += ["", "| index | table | size |", "|---|---|---|"]
    notes += [f"| {i['index']} | {i['table']} | {_gb(i['bytes'])} |" for i in used["indexes"]]
    notes += [
        "",
        "Latencies (p50 / p99 ms): "
        + "; ".join(f"{k} {v['p50_ms']:.1f} / {v['p99_ms']:.1f}" for k, v in lat.items()),
    ]
    notes += [
        "",
        "Load average (1/5/15 min): "
        + "; ".join(f"{label} {a:.1f}/{b:.1f}/{c:.1f}" for label, (a, b, c) in load_samples),
    ]
    print(machine())
    print(table(f"Provincial archive on PostgreSQL ({size})", figures))
    print("\n".join(notes))
    if not args.no_save:
        save(
            "archive",
            figures,
            {
                "report_md": notes,
                "build_steps": build_steps,
                "nightly": {"steady": steady, "next_day": next_day, "seconds": timed.seconds},
                "latencies": lat,
                "disk": used,
                "load": load_samples,
                "meta": meta,
            },
        )


if __name__ == "__main__":
    main()
