"""Issue 7 bench: the public read path beside a bare FastAPI "hello", side by side on one server setup.

A fresh PostgreSQL database is migrated and seeded with 10,000 operators (one stall and two instruments each,
some with a stored class or a self-commitment) and analysed. The app (with its shared page store on the
machine's Redis, a database of its own, emptied first) and a minimal FastAPI app are each served by uvicorn
with 2 workers on 127.0.0.1. Measured, for hello and for the QR page (``/q/{token}``) and the public profile
API (``/api/v1/public/operators/{id}``) in three shapes of traffic:

* hot: a rotation over 100 popular codes or operators, which the per-process micro-cache answers after the
  first read (what a busy market's morning looks like, and what a CDN in front would do);
* stored: a rotation over all 10,000, each rendered once before (a scan of any code someone scanned since its
  operator last changed, or that the worker rendered again after the change): too many for the micro-cache
  (a rotation larger than it defeats its LRU), so each request is a read from the shared store;
* rendered: a rotation over all 10,000 with the store emptied first, so each request reads the database and
  renders (a code's first scan after a change nobody had read before; the worker renders again only what was
  being read);

the throughput with ``wrk`` (closed loop, 2 threads, 32 connections, 10 s; target ≥ 50% of hello's) and the
latency at a fixed 200 requests/s for 30 s from an open-loop generator that sends on schedule whatever the
answers do and times each request from when it was due (no coordinated omission; target p99 ≤ 25 ms).

The machine is shared: the load average before and after is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from bench.common import Figure, fresh_postgres, machine, save, table
from tests.support.processes import pick_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
OPERATORS = 10_000
RATE = 200
RATE_SECONDS = 30
WRK_SECONDS = 10
WRK_CONNECTIONS = 32
WORKERS = 2
#: A lower rate for the rendered paths, for comparison: what they sustain with headroom.
LOW_RATE = 100

#: The bare comparison: FastAPI with one JSON endpoint and nothing else, served the same way.
hello_app = FastAPI()


@hello_app.get("/hello")
async def hello() -> dict[str, str]:
    """The smallest useful answer."""
    return {"hello": "world"}


def _environment(url: str, secret: str, store_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "GONGPING_PUBLIC_STORE_URL": store_url,
        "GONGPING_ENVIRONMENT": "staging",
        "GONGPING_SECRET_KEY": secret,
        "GONGPING_DATABASE_URL": url,
        "GONGPING_MEDIA_DIR": str(Path(tempfile.gettempdir()) / "gongping-bench-public-media"),
        "GONGPING_PUBLIC_BASE_URL": "http://127.0.0.1",
    }


def seed(url: str, secret: str) -> tuple[list[str], list[int]]:
    """Migrate and seed in a subprocess (settings are per process); returns stall tokens and operator ids."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_public", "--seed", url],
        cwd=ROOT,
        env=_environment(url, secret, ""),
        capture_output=True,
        text=True,
        check=True,
    )
    tokens_file, ids_file = out.stdout.strip().splitlines()[-1].split()
    return Path(tokens_file).read_text().split(), [int(i) for i in Path(ids_file).read_text().split()]


def seed_child(url: str) -> None:
    """Runs in the subprocess: migrate, bulk-insert the operators, print where the tokens were written."""
    from sqlalchemy import insert

    from backend.dates import bureau_date
    from backend.db import bulk_insert, session_scope, table_of, utcnow
    from backend.migrate import upgrade
    from backend.operators.models import ManagementAssessment, Operator, Sector, SelfCommitment, Stall
    from backend.operators.uscc import random_usccs
    from backend.qr import service as qr_service
    from backend.qr.schemas import QRKind
    from backend.records.models import OperatorRating
    from backend.records.rules import IntegrityClass

    upgrade(url)
    rng = random.Random(7)
    now = utcnow()
    sectors = list(Sector)
    codes = random_usccs("330106", OPERATORS, seed=11)
    operators = [
        {
            "uscc": code,
            "name": f"西湖区第{i}号{rng.choice(['农贸市场', '加油站', '生活超市', '眼镜店', '餐馆'])}",
            "sector": (Sector.market if i % 3 == 0 else rng.choice(sectors)).value,
            "address": f"杭州市西湖区文三路 {i} 号",
            "legal_representative": "测试人",
            "jurisdiction_code": "330106",
            "lon": 120.1 + rng.random() / 20,
            "lat": 30.27 + rng.random() / 20,
            "management_assessment": rng.choice(list(ManagementAssessment)).value,
            "metrology_assurance": "",
            "is_demonstration_unit": i % 50 == 0,
            "qr_serial": 1,
            "is_active": True,
            "created_at": now,
            "updated_at": now,
        }
        for i, code in enumerate(codes)
    ]
    with session_scope() as session:
        bulk_insert(session, table_of(Operator), operators, assign_ids=True)
        stalls = [
            {
                "market_id": o["id"],
                "number": f"A{o['id']}",
                "name": f"摊位{o['id']}",
                "holder_name": "张三丰",
                "holder_phone": "13800138000",
                "qr_serial": 1,
                "is_active": True,
                "created_at": now,
            }
            for o in operators
        ]
        bulk_insert(session, table_of(Stall), stalls, assign_ids=True)
        verified = bureau_date() - timedelta(days=90)
        instruments = []
        for stall in stalls:
            for n in range(2):
                instruments.append(
                    {
                        "type_code": "price_scale",
                        "serial": f"SN{stall['id']}-{n}",
                        "maker": "上海衡器",
                        "model": "ACS-30",
                        "operator_id": stall["market_id"],
                        "stall_id": stall["id"] if n == 0 else None,
                        "status": "in_use",
                        "qr_serial": 1,
                        "last_verified_on": verified,
                        "last_passed": True,
                        "valid_until": verified + timedelta(days=365),
                        "created_at": now,
                    }
                )
        from backend.instruments.models import Instrument

        bulk_insert(session, table_of(Instrument), instruments)
        commitments = [
            {"operator_id": o["id"], "text_version": "2017-1", "signer": "店主", "signed_at": now}
            for o in operators[::4]
        ]
        bulk_insert(session, table_of(SelfCommitment), commitments)
        session.execute(
            insert(table_of(OperatorRating)),
            [
                {
                    "operator_id": o["id"],
                    "cls": IntegrityClass.TRUSTWORTHY.value,
                    "as_of": bureau_date(),
                    "reasons": [],
                    "rules_version": "bench",
                    "signature": "bench",
                    "revision": 1,
                    "updated_at": now,
                }
                for o in operators[::10]
            ],
        )
    # Statistics for the planner, as autovacuum would have them in a running deployment after a bulk load.
    from backend.db import get_engine

    with get_engine().connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    tokens = [qr_service.code_for(QRKind.stall, s["id"], 1).token for s in stalls]
    ids = [o["id"] for o in operators]
    folder = Path(tempfile.mkdtemp(prefix="gongping-bench-public-"))
    (folder / "tokens").write_text("\n".join(tokens))
    (folder / "ids").write_text("\n".join(map(str, ids)))
    print(folder / "tokens", folder / "ids")


@contextmanager
def serve(app: str, env: dict[str, str]) -> Any:
    """uvicorn with WORKERS workers on 127.0.0.1; yields its base URL and stops it afterwards."""
    port = pick_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/openapi.json" if "hello" in app else f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        stop_process(process)


_WRK_LUA = """
local paths = {}
for line in io.lines(os.getenv("GONGPING_BENCH_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


@dataclass
class Throughput:
    """What wrk measured."""

    rps: float
    non_2xx: int
    errors: int
    p99_ms: float | None


def wrk(base: str, paths: list[str], *, gzip: bool = True) -> Throughput:
    """Closed-loop throughput over ``paths`` (rotating) with wrk; ``gzip``: send ``Accept-Encoding: gzip`` as
    every phone browser and HTTP library does."""
    folder = Path(tempfile.mkdtemp(prefix="gongping-wrk-"))
    (folder / "paths").write_text("\n".join(paths) + "\n")
    (folder / "rotate.lua").write_text(_WRK_LUA)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{WRK_CONNECTIONS}",
            f"-d{WRK_SECONDS}s",
            "--latency",
            *(["-H", "Accept-Encoding: gzip"] if gzip else []),
            "-s",
            str(folder / "rotate.lua"),
            base,
        ],
        env={**os.environ, "GONGPING_BENCH_PATHS": str(folder / "paths")},
        capture_output=True,
        text=True,
        check=True,
        timeout=WRK_SECONDS + 60,
    ).stdout
    shutil.rmtree(folder, ignore_errors=True)
    return parse_wrk(out)


def parse_wrk(out: str) -> Throughput:
    """wrk's summary as a Throughput; ``rps`` counts only 2xx/3xx answers (wrk's Requests/sec counts all)."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = None
    if p99:
        p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    failed = int(non_2xx.group(1)) if non_2xx else 0
    total = int(requests.group(1)) if requests else 0
    if failed:
        rps = rps * (total - failed) / total if total else 0.0
    return Throughput(
        rps=rps,
        non_2xx=failed,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        p99_ms=p99_ms,
    )


@dataclass
class FixedRate:
    """Latencies at a fixed arrival rate."""

    sent: int
    ok: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    achieved_rps: float
    cache_hits: int
    unfinished: int


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str, gzip: bool = True
) -> tuple[int, bool]:
    """One keep-alive HTTP/1.1 GET; returns the status and whether a cache answered (``Age``)."""
    encoding = "Accept-Encoding: gzip\r\n" if gzip else ""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Language: zh-CN\r\n{encoding}\r\n".encode("ascii")
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if length is None:
        raise ConnectionError("no Content-Length")
    await reader.readexactly(int(length.group(1)))
    return int(head[9:12]), b"\r\nage:" in head.lower()


def fixed_rate(
    base: str, paths: list[str], rate: int = RATE, seconds: int = RATE_SECONDS, *, gzip: bool = True
) -> FixedRate:
    """Open loop: request i is due at start + i/rate whatever happened before; its latency counts from then.

    A dispatcher hands due requests to a fixed pool of keep-alive connections; a request waiting for a free
    connection is still timed from the moment it was due, so a slow server cannot hide behind the generator
    (no coordinated omission). The requests are plain HTTP/1.1 on asyncio streams: httpx was measured at
    3.4 ms of CPU per request on this machine, so at 200 req/s the generator itself would be the bottleneck.
    """
    assert base.startswith("http://127.0.0.1:"), "loopback only"
    host_port = base.removeprefix("http://")
    host, port = host_port.split(":")
    total = rate * seconds
    connections = 32

    async def run() -> tuple[list[float], int, int, float]:
        queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
        latencies: list[float] = []
        ok = hits = 0

        async def worker() -> None:
            nonlocal ok, hits
            reader, writer = await asyncio.open_connection(host, int(port))
            while (item := await queue.get()) is not None:
                i, due = item
                try:
                    status, cached = await asyncio.wait_for(
                        _get(reader, writer, host_port, paths[i % len(paths)], gzip), 5
                    )
                    ok += status == 200
                    hits += cached
                except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                latencies.append(time.perf_counter() - due)
            writer.close()

        workers = [asyncio.create_task(worker()) for _ in range(connections)]
        start = time.perf_counter() + 0.2
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((i, due))
        for _ in workers:
            queue.put_nowait(None)
        # Bounded in time whatever the server does: a server that cannot keep up leaves requests unanswered,
        # and those count as slower than anything measured.
        _done, pending = await asyncio.wait(workers, timeout=30)
        for task in pending:
            task.cancel()
        return latencies, ok, hits, time.perf_counter() - start

    try:
        import uvloop

        latencies, ok, hits, elapsed = uvloop.run(run())
    except ImportError:
        latencies, ok, hits, elapsed = asyncio.run(run())
    unfinished = total - len(latencies)
    latencies = sorted(latencies) + [float("inf")] * unfinished
    return FixedRate(
        sent=total,
        ok=ok,
        cache_hits=hits,
        unfinished=unfinished,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        max_ms=latencies[-1] * 1000,
        achieved_rps=total / elapsed,
    )


def fill(base: str, paths: list[str], connections: int = 8) -> int:
    """Request each path once (closed loop, as fast as the server renders); returns how many answered 200."""
    host_port = base.removeprefix("http://")
    host, port = host_port.split(":")

    async def run() -> int:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for path in paths:
            queue.put_nowait(path)
        ok = 0

        async def worker() -> None:
            nonlocal ok
            reader, writer = await asyncio.open_connection(host, int(port))
            while not queue.empty():
                status, _cached = await _get(reader, writer, host_port, queue.get_nowait())
                ok += status == 200
            writer.close()

        await asyncio.gather(*(worker() for _ in range(connections)))
        return ok

    return asyncio.run(run())


def check_answers(base: str, paths: list[str]) -> None:
    """Before timing: the paths answer 200 with the expected type (httpx, the same client the tests use)."""
    import httpx

    with httpx.Client(base_url=base, timeout=10) as client:
        for path in paths:
            resp = client.get(path)
            assert resp.status_code == 200, (path, resp.status_code, resp.text[:200])


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min, {os.cpu_count()} cores)"


@dataclass(frozen=True)
class Scenario:
    """One shape of traffic: which paths, what the store holds first, the micro-cache, the client's encoding."""

    key: str
    label: str
    paths: str
    store: str  # "as left", "all" (each path rendered once first) or "empty"
    micro_cache: bool = True
    gzip: bool = True


SCENARIOS = (
    Scenario("page_hot", "QR page, 100 popular codes", "page_hot", "as left"),
    Scenario("api_hot", "profile API, 100 popular operators", "api_hot", "as left"),
    Scenario("page_stored", "QR page, all 10,000 codes, from the store", "page_all", "all", False),
    Scenario(
        "page_stored_plain",
        "QR page, all 10,000 codes, from the store, client without gzip",
        "page_all",
        "as left",
        False,
        False,
    ),
    Scenario("api_stored", "profile API, all 10,000 operators, from the store", "api_all", "all", False),
    Scenario("page_rendered", "QR page, all 10,000 codes, rendered", "page_all", "empty", False),
    Scenario("api_rendered", "profile API, all 10,000 operators, rendered", "api_all", "empty", False),
)


def _store_size(store_url: str, path_prefix: str) -> int:
    """How many answers under ``path_prefix`` the store holds."""
    import redis

    client = redis.Redis.from_url(store_url)
    try:
        return sum(1 for _ in client.scan_iter(f"gp:pub:p:*:{path_prefix}*", count=1000))
    finally:
        client.close()


def _empty_store(store_url: str) -> None:
    import redis

    client = redis.Redis.from_url(store_url)
    try:
        client.flushdb()
    finally:
        client.close()


def _run(base: str, scenario: Scenario, paths: list[str], store_url: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if scenario.store == "all":
        # Each path read once before, so each is in the store.
        filled = fill(base, paths)
        _progress(f"{scenario.key}: {filled} paths rendered to fill the store")
    elif scenario.store == "empty":
        _empty_store(store_url)
    if scenario.store != "as left" or not scenario.micro_cache:
        result["stored_before"] = _store_size(store_url, paths[0].rsplit("/", 1)[0] + "/")
    result["wrk"] = wrk(base, paths, gzip=scenario.gzip)
    _progress(f"{scenario.key} wrk {result['wrk']}")
    if scenario.store == "empty":
        _empty_store(store_url)
        # The other end of the rotation: paths wrk did not reach either.
        paths = paths[::-1]
    result["rate"] = fixed_rate(base, paths, gzip=scenario.gzip)
    _progress(f"{scenario.key} fixed rate {result['rate']}")
    if scenario.store == "empty":
        # Where a stream of never-read codes stays fast on this machine (PostgreSQL shares its two cores).
        _empty_store(store_url)
        result["low"] = fixed_rate(base, paths[len(paths) // 2 :], rate=LOW_RATE, gzip=scenario.gzip)
        _progress(f"{scenario.key} at {LOW_RATE} req/s {result['low']}")
    return result


def main(store_url: str) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    load_before = _load()
    secret = secrets.token_urlsafe(48)
    _empty_store(store_url)
    with fresh_postgres() as url:
        started = time.perf_counter()
        _progress("seeding")
        tokens, ids = seed(url, secret)
        seed_s = time.perf_counter() - started
        _progress(f"seeded {len(ids)} operators in {seed_s:.1f} s")
        rng = random.Random(3)
        page_all = [f"/q/{t}" for t in rng.sample(tokens, len(tokens))]
        api_all = [f"/api/v1/public/operators/{i}" for i in rng.sample(ids, len(ids))]
        paths = {
            "page_all": page_all,
            "api_all": api_all,
            "page_hot": page_all[:100],
            "api_hot": api_all[:100],
        }
        env = _environment(url, secret, store_url)
        results: dict[str, dict[str, Any]] = {}
        with serve("bench.bench_public:hello_app", env) as base:
            check_answers(base, ["/hello"])
            fixed_rate(base, ["/hello"], seconds=2)  # warm-up
            results["hello"] = {"wrk": wrk(base, ["/hello"])}
            _progress(f"hello wrk {results['hello']['wrk']}")
            results["hello"]["rate"] = fixed_rate(base, ["/hello"])
            _progress(f"hello fixed rate {results['hello']['rate']}")
        for micro_cache in (True, False):
            # The production set-up (micro-cache on), then without it: each request reaches the store.
            server_env = env if micro_cache else {**env, "GONGPING_PUBLIC_CACHE_SECONDS": "0"}
            with serve("backend.asgi:app", server_env) as base:
                check_answers(base, page_all[-5:] + api_all[-5:])
                # Warm-up on codes no hot scenario uses: connection pools, prepared statements, templates.
                fixed_rate(base, page_all[-400:] + api_all[-400:], seconds=4)
                for scenario in SCENARIOS:
                    if scenario.micro_cache is micro_cache:
                        results[scenario.key] = _run(base, scenario, paths[scenario.paths], store_url)
    load_after = _load()
    hello_rps = results["hello"]["wrk"].rps
    figures = [
        Figure(
            f"{label}: throughput (wrk, {WRK_CONNECTIONS} conns, {WRK_SECONDS} s)",
            results[key]["wrk"].rps,
            "req/s",
            hello_rps * 0.5,
            f"≥ 50% of hello ({hello_rps:,.0f} req/s)",
            "higher",
        )
        for key, label in ((sc.key, sc.label) for sc in SCENARIOS)
    ]
    for key, label in (("hello", "hello"), *((sc.key, sc.label) for sc in SCENARIOS)):
        rate: FixedRate = results[key]["rate"]
        figures.append(
            Figure(
                f"{label}: p99 at {RATE} req/s for {RATE_SECONDS} s",
                rate.p99_ms,
                "ms",
                25,
                "≤ 25 ms",
                "lower",
            )
        )
    for sc in SCENARIOS:
        if "low" in results[sc.key]:
            low: FixedRate = results[sc.key]["low"]
            figures.append(
                Figure(
                    f"{sc.label}: p99 at {LOW_RATE} req/s for {RATE_SECONDS} s (for comparison)",
                    low.p99_ms,
                    "ms",
                    25,
                    "≤ 25 ms",
                    "lower",
                )
            )
    print(
        table(
            "Public read path vs bare FastAPI hello (uvicorn ×2 workers, PostgreSQL, 10,000 operators)",
            figures,
        )
    )
    print()
    print(f"machine: {machine()}")
    print(f"load average before: {load_before}; after: {load_after}; seeding took {seed_s:.1f} s")
    for key in ("hello", *(sc.key for sc in SCENARIOS)):
        w: Throughput = results[key]["wrk"]
        r: FixedRate = results[key]["rate"]
        print(
            f"{key:9s} wrk {w.rps:7.0f} req/s ({w.rps / hello_rps:.0%} of hello; wrk p99 {w.p99_ms} ms, "
            f"non-2xx {w.non_2xx}, socket errors {w.errors}); at {RATE} req/s: {r.ok}/{r.sent} ok, "
            f"{r.cache_hits} from a cache (Age), {r.unfinished} unanswered, p50 {r.p50_ms:.1f} ms, "
            f"p99 {r.p99_ms:.1f} ms, max {r.max_ms:.1f} ms"
            + (
                f"; {results[key]['stored_before']} answers stored before"
                if "stored_before" in results[key]
                else ""
            )
        )
    save(
        "bench_public",
        figures,
        {
            "load_before": load_before,
            "load_after": load_after,
            "ratios_vs_hello": {sc.key: results[sc.key]["wrk"].rps / hello_rps for sc in SCENARIOS},
            "raw": {
                k: {name: vars(value) if hasattr(value, "__dict__") else value for name, value in v.items()}
                for k, v in results.items()
            },
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", metavar="DATABASE_URL")
    parser.add_argument(
        "--store-url",
        default=os.environ.get("GONGPING_BENCH_STORE_URL", "redis://127.0.0.1:6379/13"),
        help="a Redis database for the page store (emptied before and during the run)",
    )
    args = parser.parse_args()
    if args.seed:
        seed_child(args.seed)
    else:
        main(args.store_url)
