"""Issue 17 figures on PostgreSQL, through uvicorn: the workbench's case queue (first page and each filter), the
case page and the map's data, each beside the same data through the JSON API in the same run, and the queue
page's largest contentful paint in Chromium.

The cases: ``bench_cases.generate_cases`` (N cases over 杭州市's 13 districts, as many in 北京市 outside the scope);
10,000 of the 杭州 complaints get a geotag, so the map draws 10,000 points. A city-level staff member signs in
to the workbench through its form (session cookie) and to the API (bearer token); every request goes over HTTP
to one uvicorn process, after a warm-up, ``--requests`` per variant.

Run: .venv/bin/python -m bench.bench_workbench [--cases N] [--requests N]   (Chromium: Debian's /usr/bin/chromium)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from bench.bench_cases import PASSWORD, _pct, create_city_staff, generate_cases
from bench.common import Figure, fresh_postgres, machine, save, start_app, table
from tests.support.processes import pick_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
MAP_POINTS = 10_000
_TOKEN = re.compile(r'name="(?:login_token|csrf)" value="([^"]+)"')


def _seed(url: str, cases: int) -> int:
    """Accounts, the cases, 10,000 geotags in 杭州; the id of one case in scope (for the case page)."""
    from sqlalchemy import text

    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Role
    from backend.db import make_engine, session_scope

    with session_scope() as session:
        auth_service.create_account(
            session, actor=SYSTEM, username="bench_filer", password=PASSWORD, role=Role.consumer_device
        )
        create_city_staff(session)
    generate_cases(url, cases)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                UPDATE complaint SET lon = 120.0 + random() * 0.4, lat = 30.1 + random() * 0.3
                WHERE id IN (SELECT complaint_id FROM case_file WHERE prefecture_code = '330100'
                             ORDER BY id LIMIT :n)
                """
            ),
            {"n": MAP_POINTS},
        )
        case_id = conn.execute(
            text("SELECT id FROM case_file WHERE prefecture_code = '330100' ORDER BY id LIMIT 1")
        ).scalar_one()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE complaint"))
    engine.dispose()
    return int(case_id)


def _time(client: Any, path: str, requests: int, **kwargs: Any) -> dict[str, float]:
    for _ in range(10):  # warm the plan and buffer caches
        client.get(path, **kwargs)
    samples = []
    size = 0
    for _ in range(requests):
        t = time.perf_counter()
        resp = client.get(path, **kwargs)
        samples.append(time.perf_counter() - t)
        assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text[:200]}"
        size = len(resp.content)
    return {"p50_ms": _pct(samples, 0.5), "p99_ms": _pct(samples, 0.99), "bytes": size}


def _lcp(base: str, cookies: list[dict[str, Any]]) -> float | None:
    """The queue page's largest contentful paint in Debian's Chromium (milliseconds, median of three); None
    without a Chromium (the server-side figures still stand)."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import chromium_executable

    executable = chromium_executable()
    if executable is None:
        print("Debian's chromium is not installed (apt-get install chromium): no LCP figure", file=sys.stderr)
        return None
    found = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=["--no-sandbox"]
        )
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        context.add_cookies(cookies)
        page = context.new_page()
        for _ in range(4):
            page.goto(f"{base}/workbench/", wait_until="load")
            lcp = page.evaluate(
                """() => new Promise((resolve) => {
                    new PerformanceObserver((list) => {
                        const entries = list.getEntries();
                        resolve(entries[entries.length - 1].startTime);
                    }).observe({type: 'largest-contentful-paint', buffered: true});
                })"""
            )
            found.append(float(lcp))
        browser.close()
    return sorted(found[1:])[1]  # the first load fills the caches


def measure(env: dict[str, str], case_id: int, requests: int) -> dict[str, Any]:
    """Every variant through uvicorn, the workbench's and the API's side by side."""
    import httpx

    port = pick_port()
    proc = start_app(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wb = httpx.Client(base_url=base, timeout=60)
        form = wb.get("/workbench/login")
        token = _TOKEN.search(form.text)
        assert token is not None
        signed = wb.post(
            "/workbench/login",
            data={"username": "bench_city", "password": PASSWORD, "login_token": token.group(1)},
        )
        assert signed.status_code in (200, 303), signed.text[:300]
        api = httpx.Client(base_url=base, timeout=60)
        bearer = api.post("/api/v1/auth/token", data={"username": "bench_city", "password": PASSWORD})
        api.headers["Authorization"] = f"Bearer {bearer.json()['access_token']}"
        # Each queue filter beside the API's nearest listing (the API has no due-within or category filter).
        variants: dict[str, tuple[dict[str, str], dict[str, str]]] = {
            "first page": ({}, {}),
            "status=routed": ({"status": "routed"}, {"status": "routed"}),
            "overdue": ({"overdue": "1"}, {"overdue": "true"}),
            "escalated": ({"escalated": "1"}, {"escalated": "true"}),
            "due within 5 days": ({"due_within": "5"}, {}),
            "category": ({"category": "short_weight"}, {}),
            "county 330106": ({"county": "330106"}, {"jurisdiction": "330106"}),
        }
        results: dict[str, Any] = {}
        for label, (wb_params, api_params) in variants.items():
            results[f"queue {label}"] = {
                "workbench": _time(wb, "/workbench/", requests, params=wb_params),
                "api": _time(api, "/api/v1/cases", requests, params=api_params),
            }
        results["case page"] = {
            "workbench": _time(wb, f"/workbench/cases/{case_id}", requests),
            "api": _time(api, f"/api/v1/cases/{case_id}", requests),
        }
        gz = {"Accept-Encoding": "gzip"}
        # The bytes as sent (httpx would decompress .content): the gzip body, and what it unpacks to.
        with wb.stream("GET", "/workbench/map/points.json", headers=gz) as points:
            assert points.headers.get("content-encoding") == "gzip"
            sent = b"".join(points.iter_raw())
        raw = gzip.decompress(sent)
        results["map"] = {
            "workbench": _time(wb, "/workbench/map/points.json", max(requests // 5, 20), headers=gz),
            "api": _time(api, "/api/v1/cases", max(requests // 5, 20), params={"limit": "200"}, headers=gz),
            "gzip_bytes": len(sent),
            "raw_bytes": len(raw),
            "points": len(json.loads(raw)["points"]),
        }
        cookies = [
            {"name": c.name, "value": c.value or "", "domain": "127.0.0.1", "path": c.path or "/"}
            for c in wb.cookies.jar
        ]
        results["lcp_ms"] = _lcp(base, cookies)
        return results
    finally:
        stop_process(proc, timeout=30)


def main() -> None:
    """Seed a fresh PostgreSQL database, measure through uvicorn, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with fresh_postgres() as url:
        env = {
            "GONGPING_DATABASE_URL": url,
            "GONGPING_ARGON2_MEMORY_KIB": "8192",
            "GONGPING_ENVIRONMENT": "test",
            "GONGPING_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        }
        os.environ.update(env)
        from backend.db import get_engine
        from backend.migrate import upgrade

        upgrade(url)
        case_id = _seed(url, args.cases)
        get_engine().dispose()
        results = measure({**os.environ, **env}, case_id, args.requests)
    figures: list[Figure] = []
    for label, r in results.items():
        if not label.startswith("queue"):
            continue
        w, a = r["workbench"], r["api"]
        figures.append(
            Figure(f"{label} p99 (API {a['p99_ms']:.1f} ms)", w["p99_ms"], "ms", 150.0, "≤ 150 ms", "lower")
        )
    case = results["case page"]
    figures.append(
        Figure(
            f"case page p99 (API {case['api']['p99_ms']:.1f} ms)",
            case["workbench"]["p99_ms"],
            "ms",
            100.0,
            "≤ 100 ms",
            "lower",
        )
    )
    m = results["map"]
    figures.append(
        Figure(
            f"map data, {m['points']:,} points, p99 (API first 200 cases {m['api']['p99_ms']:.1f} ms)",
            m["workbench"]["p99_ms"],
            "ms",
            300.0,
            "≤ 300 ms",
            "lower",
        )
    )
    figures.append(Figure("map data gzip-compressed", m["gzip_bytes"] / 1e6, "MB", 1.0, "≤ 1 MB", "lower"))
    if results["lcp_ms"] is not None:
        figures.append(
            Figure("queue page LCP in Chromium", results["lcp_ms"], "ms", 1000.0, "≤ 1 s", "lower")
        )
    load = os.getloadavg()
    print(f"{machine()} · load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(table(f"Workbench through uvicorn on PostgreSQL, {args.cases:,} cases in scope", figures))
    for label, r in results.items():
        if isinstance(r, dict) and "workbench" in r:
            w, a = r["workbench"], r["api"]
            ratio = w["p99_ms"] / a["p99_ms"] if a["p99_ms"] else float("inf")
            print(
                f"  {label}: workbench p50 {w['p50_ms']:.1f} / p99 {w['p99_ms']:.1f} ms; "
                f"API p50 {a['p50_ms']:.1f} / p99 {a['p99_ms']:.1f} ms; workbench/API p99 {ratio:.2f}×"
            )
    lcp = "not measured (no Chromium)" if results["lcp_ms"] is None else f"{results['lcp_ms']:.0f} ms"
    print(f"  map: {m['raw_bytes']:,} bytes raw, {m['gzip_bytes']:,} gzip; LCP {lcp}")
    save("workbench", figures, {"results": results, "load": load, "cases": args.cases})


if __name__ == "__main__":
    main()
