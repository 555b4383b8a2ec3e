"""Issue 4/5 figures on PostgreSQL: the routing task's in-process cost per complaint, and the staff work list
``GET /api/v1/cases`` with 100,000 cases in scope.

Routing: 1,000 complaints filed through the complaints service (no photos) — 20 % about a known operator
(rule 1, geodesic mismatch check), the rest geotagged at random in 杭州/绍兴/湖州 with phone-like accuracy
(10-60 m; every twentieth a 3 km fix, rule 6) — each routed by the task's own function
(``workers.cases_tasks.route_event``: reload the event, decide, write the case, deadlines, history, timeline,
audit entry and ``case.assigned``, commit). The geo part alone (``locator.locate`` on the same points) is
timed separately so the share of the task it takes is visible.

Work list: 100,000 cases spread over the 13 districts and counties of 杭州市 (the scope of a city-level
staff member) and 100,000 more in 北京市 (outside it), made with ``generate_series``; each listing is an
in-process ASGI request (token, scope, query, count, serialisation), 300 per variant after a warm-up.

Run: .venv/bin/python -m bench.bench_cases [--complaints N] [--cases N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from typing import Any

from bench.common import Figure, fresh_postgres, machine, save, table

PASSWORD = "Bench-cases-2026"


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def route_bench(complaints: int) -> dict[str, Any]:
    """File ``complaints`` complaints, then route each by the task's function; per-complaint timings."""
    from sqlmodel import col, select

    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Account, Role
    from backend.auth.scope import Scope
    from backend.common.schemas import LonLat
    from backend.complaints import service as complaints_service
    from backend.complaints.schemas import ComplaintSubmission
    from backend.db import session_scope
    from backend.jurisdictions import locator
    from backend.jurisdictions.models import Jurisdiction
    from backend.media.factory import media_storage
    from backend.operators import service as operator_service
    from backend.operators.schemas import OperatorCreate
    from backend.operators.uscc import random_usccs
    from backend.outbox.models import OutboxEvent
    from workers.cases_tasks import route_event

    rng = random.Random(20260415)
    with session_scope() as session:
        filer = auth_service.create_account(
            session, actor=SYSTEM, username="bench_filer", password=PASSWORD, role=Role.consumer_device
        )
        staff = auth_service.create_account(
            session,
            actor=SYSTEM,
            username="bench_county",
            password=PASSWORD,
            role=Role.staff,
            jurisdiction_code="330106",
        )
        county = session.get(Jurisdiction, "330106")
        assert county is not None
        scope = Scope(staff, county.path)
        operators = [
            operator_service.create(
                session,
                data=OperatorCreate(
                    uscc=uscc,
                    name=f"基准经营者{i}",
                    sector="market",
                    address="基准路 1 号",
                    legal_representative="基准",
                    jurisdiction_code="330106",
                    location=LonLat(lon=120.10 + i * 0.001, lat=30.28),
                ),
                scope=scope,
            )
            for i, uscc in enumerate(random_usccs("330106", 20, seed=3))
        ]
        filer_id = filer.id
        operator_ids = [o.id for o in operators]
    started = time.perf_counter()
    locator.boundaries()
    load_s = time.perf_counter() - started
    points: list[tuple[float, float, float]] = []
    with session_scope() as session:
        account = session.get(Account, filer_id)
        assert account is not None
        for i in range(complaints):
            lon, lat = rng.uniform(119.6, 120.9), rng.uniform(29.7, 30.6)
            accuracy = 3_000.0 if i % 20 == 0 else rng.uniform(10, 60)
            points.append((lon, lat, accuracy))
            body: dict[str, Any] = {
                "category": "short_weight",
                "location": {"lon": lon, "lat": lat, "accuracy_m": accuracy, "coord_system": "wgs84"},
            }
            if i % 5 == 0:
                body["operator_id"] = operator_ids[i % len(operator_ids)]
            submission = complaints_service.Submission(
                data=ComplaintSubmission.model_validate(body), photos=(), request_hash=f"{i:064d}"
            )
            complaints_service.create(
                session, account=account, submission=submission, storage=media_storage()
            )
        event_ids = list(
            session.execute(
                select(col(OutboxEvent.id))
                .where(col(OutboxEvent.topic) == "complaint.created")
                .order_by(col(OutboxEvent.id))
            ).scalars()
        )
    # Geo alone, on the same points (rule 1 complaints do not locate, so this is an upper bound of its share).
    geo_samples = []
    for lon, lat, accuracy in points:
        t = time.perf_counter()
        locator.locate(lon, lat, "wgs84", accuracy)
        geo_samples.append(time.perf_counter() - t)
    task_samples = []
    for event_id in event_ids:
        t = time.perf_counter()
        assert route_event(int(event_id)) is not None
        task_samples.append(time.perf_counter() - t)
    return {
        "boundaries_load_s": load_s,
        "complaints": len(event_ids),
        "task_p50_ms": _pct(task_samples, 0.50),
        "task_p99_ms": _pct(task_samples, 0.99),
        "task_mean_ms": statistics.fmean(task_samples) * 1000,
        "geo_p50_ms": _pct(geo_samples, 0.50),
        "geo_p99_ms": _pct(geo_samples, 0.99),
        "geo_mean_ms": statistics.fmean(geo_samples) * 1000,
        "throughput_per_s": len(task_samples) / sum(task_samples),
    }


def generate_cases(url: str, cases: int) -> float:
    """``cases`` cases in 杭州市's districts and as many in 北京市, straight into the tables; seconds taken."""
    from sqlalchemy import text

    from backend.db import make_engine

    engine = make_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        account_id = conn.execute(text("SELECT id FROM account WHERE username = 'bench_filer'")).scalar_one()
        hangzhou = [
            r[0] for r in conn.execute(text("SELECT code FROM jurisdiction WHERE parent_code = '330100'"))
        ]
        beijing = [
            r[0]
            for r in conn.execute(
                text("SELECT code FROM jurisdiction WHERE level = 'county' AND code LIKE '11%'")
            )
        ]
        first = conn.execute(text("SELECT coalesce(max(id), 0) FROM complaint")).scalar_one()
        # Hangzhou's districts sit under the prefecture 330100; Beijing's directly under the province.
        for codes, offset, province, prefecture in (
            (hangzhou, 0, "330000", "330100"),
            (beijing, cases, "110000", None),
        ):
            params = {
                "n": cases,
                "codes": codes,
                "acc": account_id,
                "base": first + offset,
                "province": province,
                "prefecture": prefecture,
            }
            conn.execute(
                text(
                    """
                    INSERT INTO complaint (id, account_id, filer_role, source, category, description, via_qr,
                        status, routing_status, jurisdiction_code, routing_rule, routing_low_confidence,
                        created_at, updated_at)
                    SELECT :base + i, :acc, 'consumer_device', 'consumer', 'short_weight', '', false, 'routed',
                        'routed', (CAST(:codes AS text[]))[1 + i % cardinality(CAST(:codes AS text[]))], 2, false,
                        now() - (i || ' minutes')::interval, now()
                    FROM generate_series(1, :n) AS i
                    """
                ),
                params,
            )
            conn.execute(
                text(
                    """
                    INSERT INTO case_file (case_no, complaint_id, kind, state, jurisdiction_code, province_code,
                        prefecture_code, county_code, triage,
                        received_at, findings, record_ids, due_on, overdue, escalated, escalated_to, version,
                        created_at, updated_at)
                    SELECT 'TS2026' || lpad((:base + i)::text, 8, '0'), :base + i, 'complaint',
                        (ARRAY['routed','accepted','investigating','closed','closed'])[1 + i % 5],
                        (CAST(:codes AS text[]))[1 + i % cardinality(CAST(:codes AS text[]))], :province,
                        CAST(:prefecture AS varchar),
                        (CAST(:codes AS text[]))[1 + i % cardinality(CAST(:codes AS text[]))], false,
                        now() - (i || ' minutes')::interval, '',
                        '[]', current_date + (i % 60) - 10, i % 33 = 0, i % 50 = 0,
                        CASE WHEN i % 50 = 0 THEN (CAST(:codes AS text[]))[1] END, 1, now(), now()
                    FROM generate_series(1, :n) AS i
                    """
                ),
                params,
            )
        conn.execute(text("SELECT setval('complaint_id_seq', (SELECT max(id) FROM complaint))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE complaint"))
        conn.execute(text("VACUUM ANALYZE case_file"))
    engine.dispose()
    return time.perf_counter() - started


def create_city_staff(session: Any) -> None:
    """``bench_city``, staff of 杭州市 (330100): the city-level member whose work list the benches time."""
    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Role

    auth_service.create_account(
        session,
        actor=SYSTEM,
        username="bench_city",
        password=PASSWORD,
        role=Role.staff,
        jurisdiction_code="330100",
    )


def list_bench(requests: int) -> dict[str, dict[str, float]]:
    """Time the work list for a city-level staff member, per variant, in-process over ASGI."""
    import httpx

    from backend.db import session_scope
    from backend.main import create_app

    with session_scope() as session:
        create_city_staff(session)
    variants = {
        "newest page": {},
        "status=routed": {"status": "routed"},
        "overdue=true": {"overdue": "true"},
        "escalated=true": {"escalated": "true"},
        "jurisdiction=330106": {"jurisdiction": "330106"},
        "page 100 (offset 5,000)": {"offset": "5000"},
    }

    async def run() -> dict[str, dict[str, float]]:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
            token = await client.post(
                "/api/v1/auth/token", data={"username": "bench_city", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            results: dict[str, dict[str, float]] = {}
            for label, params in variants.items():
                for _ in range(20):  # warm the plan and buffer caches
                    await client.get("/api/v1/cases", params=params, headers=headers)
                samples = []
                total = 0
                for _ in range(requests):
                    t = time.perf_counter()
                    resp = await client.get("/api/v1/cases", params=params, headers=headers)
                    samples.append(time.perf_counter() - t)
                    assert resp.status_code == 200, resp.text
                    total = resp.json()["total"]
                results[label] = {"p50_ms": _pct(samples, 0.5), "p99_ms": _pct(samples, 0.99), "total": total}
            t = time.perf_counter()
            samples = []
            for _ in range(requests):
                t = time.perf_counter()
                resp = await client.get("/api/v1/cases/overdue", headers=headers)
                samples.append(time.perf_counter() - t)
            results["/cases/overdue"] = {
                "p50_ms": _pct(samples, 0.5),
                "p99_ms": _pct(samples, 0.99),
                "total": resp.json()["total"],
            }
            return results

    return asyncio.run(run())


def main() -> None:
    """Run both parts on a fresh PostgreSQL database and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--complaints", type=int, default=1_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with fresh_postgres() as url:
        os.environ.update(
            {
                "GONGPING_DATABASE_URL": url,
                "GONGPING_ARGON2_MEMORY_KIB": "8192",
                "GONGPING_ENVIRONMENT": "test",
                "GONGPING_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
            }
        )
        from backend.migrate import upgrade

        upgrade(url)
        routing = route_bench(args.complaints)
        generate_s = generate_cases(url, args.cases)
        listing = list_bench(args.requests)
        from backend.db import get_engine

        get_engine().dispose()
    figures = [
        Figure(
            f"routing task p50, {routing['complaints']:,} complaints",
            routing["task_p50_ms"],
            "ms",
            20.0,
            "≤ 20 ms (ours)",
            "lower",
        ),
        Figure(
            f"routing task p99, {routing['complaints']:,} complaints",
            routing["task_p99_ms"],
            "ms",
            50.0,
            "≤ 50 ms (ours)",
            "lower",
        ),
    ]
    for label, r in listing.items():
        figures.append(
            Figure(
                f"GET /api/v1/cases {label} p99 ({r['total']:,.0f} matching)"
                if label != "/cases/overdue"
                else f"GET /api/v1/cases/overdue p99 ({r['total']:,.0f} matching)",
                r["p99_ms"],
                "ms",
                100.0,
                "≤ 100 ms (ours)",
                "lower",
            )
        )
    # Other work on the machine shows up in every latency here: say how busy it was.
    load = os.getloadavg()
    print(f"{machine()} · load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(
        table(
            f"Cases on PostgreSQL: routing task, and the work list with {args.cases:,} cases in scope",
            figures,
        )
    )
    print(
        f"\nrouting: mean {routing['task_mean_ms']:.2f} ms/complaint ({routing['throughput_per_s']:.0f}/s in one "
        f"process); geo alone p50 {routing['geo_p50_ms']:.3f} ms, p99 {routing['geo_p99_ms']:.3f} ms, mean "
        f"{routing['geo_mean_ms']:.3f} ms; boundaries loaded in {routing['boundaries_load_s'] * 1000:.0f} ms; "
        f"{args.cases * 2:,} cases generated in {generate_s:.1f} s"
    )
    for label, r in listing.items():
        print(f"  {label}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, total {r['total']:,.0f}")
    save("cases", figures, {"routing": routing, "listing": listing, "generate_s": generate_s, "load": load})
    print(json.dumps({"routing": routing}, indent=2))


if __name__ == "__main__":
    main()
