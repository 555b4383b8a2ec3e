"""Issue 18 bench: the multi-node set-up under the load mix, beside one process of each role, in the same run.

Two set-ups run one after the other on the same seeded PostgreSQL database (bench_load_mix's seed: 10,000
operators with their stall codes, one county's staff member, 8 device accounts, 300 routed complaints), the same
Redis (the Celery broker and the shared rate-limit counters, each a database of its own, emptied first) and the
same S3 stand-in (moto's server, tests/support/s3_standin.py; a fresh bucket per set-up):

* anchor: one API process (``gongping serve``), one worker (``gongping worker --concurrency 1``), one relay and
  one beat;
* multi-node: two of each, as in tests/faults/test_multinode.py (the same process helpers,
  tests/support/processes.py): each process with its own port and its own var/ directory.

Against each, bench_load_mix's generator (80 % QR scans, 10 % complaints with a 1024×768 photo, 10 % staff case
views; closed loop, 16 keep-alive connections), its connections spread round robin over the set-up's APIs: a
5 s warm-up, a wait until the workers have caught up, then the timed window (60 s by default). Unlike
bench_load_mix, the workers, relays and beats run: every complaint's photo is processed and every outbox event
handled, and their CPU is part of what a request costs.

CPU per request, for each role: user + system seconds of the role's processes (with their pool processes,
psutil) from the start of the timed window until the workers have caught up with it, divided by the requests
of the window. PostgreSQL: the backends serving the bench's database (psutil over processes named postgres,
sampled each second so a backend that exits is not lost; the server's own background processes are shared
with other databases and left out). The object store stand-in (moto) and the load generator (its thread's CPU)
are reported beside them. Redis is the machine's shared server and is not measured.

Afterwards, per set-up: every complaint answered 201 exists once (and no other was created), its photo was
processed and its original and renditions are in the object store, and no outbox event is left unhandled.

On two cores shared by the database, the object store, the load generator and every role, the throughput ratio
says whether a second process of each role costs more than it brings here; CPU per request is the figure a
real cluster scales by.

Run: GONGPING_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
     .venv/bin/python -m bench.bench_multinode [--seconds 60] [--connections 16] [--store-url redis://…/9]
        [--broker-url redis://…/8] [--limits-url redis://…/9] [--first-port 19400 --last-port 19499]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bench.bench_load_mix import (
    DEVICES,
    MIX,
    PASSWORD,
    TARGET_P99_MS,
    Results,
    Workload,
    _pct,
    _postgres_answers,
    _progress,
    run_load,
    seed_people_apart,
)
from bench.bench_public import _empty_store, _environment, _load, seed
from bench.common import Figure, fresh_postgres, machine, save, table
from tests.support.processes import ROLES, Cluster, port_in, wait_for
from tests.support.s3_standin import MotoServer

ROOT = Path(__file__).resolve().parent.parent
SETUPS = (("one", 1), ("multi", 2))
LABEL = {"one": "one of each role", "multi": "two of each role"}
#: The load mix's own target for all requests together.
TARGET_ALL_P99_MS = 1000.0


# ---- CPU accounting -----------------------------------------------------------------------------------------


def _tree_cpu(pid: int) -> float:
    """User + system seconds of ``pid``, its live descendants and the children it has reaped."""
    try:
        root = psutil.Process(pid)
        t = root.cpu_times()
        total = float(t.user + t.system + t.children_user + t.children_system)
        for child in root.children(recursive=True):
            try:
                c = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += c.user + c.system
    except psutil.NoSuchProcess:
        return float("nan")
    return total


class PostgresWatch:
    """CPU of the PostgreSQL backends connected to one database, sampled each second in a thread.

    A backend is known by (pid, start time); its last sampled CPU stays counted after it exits, so a
    connection a pool closed mid-window is not lost (only its last second may be).
    """

    def __init__(self, database: str, every: float = 1.0) -> None:
        self.database = database
        self.every = every
        self.seen: dict[tuple[int, float], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="postgres-watch", daemon=True)

    def _sample(self) -> None:
        found: dict[tuple[int, float], float] = {}
        for proc in psutil.process_iter(["name", "cmdline", "create_time", "cpu_times"]):
            info = proc.info
            if info["name"] != "postgres" or not info["cmdline"] or info["cpu_times"] is None:
                continue
            # A backend's title: "postgres: [<cluster>:] <user> <database> <client> <state>".
            words = " ".join(info["cmdline"]).split()
            if words and words[0] == "postgres:" and self.database in words[1:4]:
                found[(proc.pid, info["create_time"])] = info["cpu_times"].user + info["cpu_times"].system
        with self._lock:
            self.seen.update(found)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def mark(self) -> dict[tuple[int, float], float]:
        """A fresh sample; the CPU of every backend seen so far."""
        self._sample()
        with self._lock:
            return dict(self.seen)

    def backends(self) -> int:
        with self._lock:
            return len(self.seen)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Mark:
    """CPU seconds at one instant: per role (summed over its processes), PostgreSQL's backends, moto."""

    roles: dict[str, float]
    postgres: dict[tuple[int, float], float]
    moto: float

    @staticmethod
    def take(cluster: Cluster, watch: PostgresWatch, moto: MotoServer) -> Mark:
        roles = {role: sum(_tree_cpu(n.proc.process.pid) for n in cluster.of_role(role)) for role in ROLES}
        assert moto.proc is not None
        return Mark(roles, watch.mark(), _tree_cpu(moto.proc.pid))

    def spent_since(self, before: Mark) -> dict[str, float]:
        """CPU seconds from ``before`` to this mark, per role and for postgres and moto."""
        spent = {role: self.roles[role] - before.roles[role] for role in ROLES}
        spent["postgres"] = sum(v - before.postgres.get(k, 0.0) for k, v in self.postgres.items())
        spent["moto"] = self.moto - before.moto
        return spent


# ---- one set-up ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one set-up did: the timed window's results and the CPU it cost."""

    name: str
    each: int
    results: Results
    warm_complaints: list[int]
    cpu: dict[str, float]  # seconds, from the window's start until the workers caught up
    cpu_window: dict[str, float]  # seconds, the timed window alone
    loadgen_cpu: float
    drain_seconds: float
    checks: dict[str, Any] = field(default_factory=dict)

    def requests(self) -> int:
        """Requests sent in the window (answered or not)."""
        return self.results.successes() + self.results.error_count()

    def per_request_ms(self, what: str) -> float:
        seconds = self.loadgen_cpu if what == "load generator" else self.cpu[what]
        return seconds / self.requests() * 1000 if self.requests() else float("nan")


def _backlog(engine: Engine) -> tuple[int, int]:
    """(photos still pending, outbox events not yet handled)."""
    with engine.connect() as conn:
        photos = conn.execute(text("SELECT count(*) FROM complaint_photo WHERE status = 'pending'")).scalar()
        events = conn.execute(text("SELECT count(*) FROM outbox_event WHERE handled_at IS NULL")).scalar()
    return int(photos or 0), int(events or 0)


def _drain(engine: Engine, cluster: Cluster, timeout: float) -> float:
    """Wait until every photo is processed and every outbox event handled; returns the seconds it took."""
    started = time.monotonic()

    def caught_up() -> bool:
        for node in cluster.nodes.values():
            assert not node.proc.exited(), f"{node.name} exited:\n{node.proc.output()[-3000:]}"
        return _backlog(engine) == (0, 0)

    wait_for(caught_up, "the workers to catch up", timeout=timeout, every=0.5)
    return time.monotonic() - started


def _workload(base: str, tokens: list[str], case_ids: list[int], photo: bytes) -> Workload:
    """Tokens for the staff member and the devices, from ``base`` (any API: they share the secret)."""
    with httpx.Client(base_url=base, timeout=60) as client:

        def auth(username: str) -> str:
            resp = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
            resp.raise_for_status()
            return f"Bearer {resp.json()['access_token']}"

        return Workload(
            host=base.removeprefix("http://"),
            qr_paths=[f"/q/{t}" for t in tokens],
            case_ids=case_ids,
            staff_auth=auth("bench_staff"),
            device_auths=[auth(f"bench_device_{i}") for i in range(DEVICES)],
            photo=photo,
        )


def _check(
    engine: Engine, store: MotoServer, bucket: str, created: list[int], first_id: int
) -> dict[str, Any]:
    """Every complaint answered 201 exists once, nothing else was created, each photo processed and stored."""
    prefix = "media"
    with engine.connect() as conn:
        filed = int(
            conn.execute(text("SELECT count(*) FROM complaint WHERE id > :f"), {"f": first_id}).scalar_one()
        )
        found = int(
            conn.execute(
                text("SELECT count(*) FROM complaint WHERE id = ANY(:ids)"), {"ids": created}
            ).scalar_one()
        )
        photos = conn.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE status = 'processed' AND display_key IS NOT NULL "
                "AND thumbnail_key IS NOT NULL) FROM complaint_photo WHERE complaint_id = ANY(:ids)"
            ),
            {"ids": created},
        ).one()
        renditions = {
            str(k)
            for row in conn.execute(
                text("SELECT display_key, thumbnail_key FROM complaint_photo WHERE complaint_id = ANY(:ids)"),
                {"ids": created},
            )
            for k in row
            if k is not None
        }
        unhandled = int(
            conn.execute(text("SELECT count(*) FROM outbox_event WHERE handled_at IS NULL")).scalar_one()
        )
    pages = store.client().get_paginator("list_objects_v2")
    stored = {
        item["Key"].removeprefix(f"{prefix}/")
        for page in pages.paginate(Bucket=bucket, Prefix=f"{prefix}/")
        for item in page.get("Contents", [])
    }
    originals = sum(1 for k in stored if k.startswith("complaint-originals/"))
    checks = {
        "answered_201": len(created),
        "distinct_ids": len(set(created)),
        "complaints_found": found,
        "complaints_created": filed,
        "photos": int(photos[0]),
        "photos_processed": int(photos[1]),
        "originals_stored": originals,
        "renditions_missing": len(renditions - stored),
        "events_unhandled": unhandled,
    }
    n = len(created)
    checks["ok"] = (
        checks["distinct_ids"] == checks["complaints_found"] == checks["complaints_created"] == n
        and checks["photos"] == checks["photos_processed"] == checks["originals_stored"] == n
        and checks["renditions_missing"] == 0
        and unhandled == 0
    )
    return checks


def run_setup(
    name: str,
    each: int,
    *,
    args: argparse.Namespace,
    env: dict[str, str],
    engine: Engine,
    watch: PostgresWatch,
    moto: MotoServer,
    folder: Path,
    ports: set[int],
    tokens: list[str],
    case_ids: list[int],
    photo: bytes,
) -> Outcome:
    """Start ``each`` processes of every role, warm up, catch up, measure, catch up, check, stop."""
    bucket = moto.create_bucket()
    if args.store_url:
        _empty_store(args.store_url)  # each set-up starts with the shared page store cold
    cluster = Cluster(
        folder / name,
        {**env, **moto.media_env(bucket, prefix="media")},
        port=lambda: port_in(args.first_port, args.last_port, ports),
    )
    try:
        _progress(f"{name}: starting {each} of each role")
        cluster.start_roles(each)
        cluster.wait_ready()
        _drain(engine, cluster, args.drain_timeout)
        bases = [n.base_url for n in cluster.of_role("api")]
        work = _workload(bases[0], tokens, case_ids, photo)
        with engine.connect() as conn:
            first_id = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM complaint")).scalar_one())
        _progress(f"{name}: warm-up, 5 s")
        warm = run_load(bases, work, 5, args.connections, seed_value=1)
        if warm.error_count():
            raise SystemExit(
                f"{name}: errors during warm-up: { {k: dict(v) for k, v in warm.errors.items()} }"
            )
        _drain(engine, cluster, args.drain_timeout)
        _progress(
            f"{name}: measuring, {args.seconds:.0f} s with {args.connections} connections over {len(bases)} API"
        )
        before = Mark.take(cluster, watch, moto)
        thread_before = time.thread_time()
        results = run_load(bases, work, args.seconds, args.connections)
        loadgen = time.thread_time() - thread_before
        window_end = Mark.take(cluster, watch, moto)
        drain = _drain(engine, cluster, args.drain_timeout)
        after = Mark.take(cluster, watch, moto)
        _progress(f"{name}: caught up {drain:.1f} s after the window; checking")
        outcome = Outcome(
            name,
            each,
            results,
            warm.created,
            after.spent_since(before),
            window_end.spent_since(before),
            loadgen,
            drain,
        )
        outcome.checks = _check(engine, moto, bucket, warm.created + results.created, first_id)
        return outcome
    finally:
        cluster.stop()


# ---- the report ---------------------------------------------------------------------------------------------


def _latencies(results: Results) -> list[float]:
    return [s for v in results.latencies.values() for s in v]


def figures(one: Outcome, multi: Outcome, seconds: float, connections: int) -> list[Figure]:
    """The multi-node figures beside the one-process anchor (throughput, CPU) or the load mix's targets."""
    out = [
        Figure(
            f"throughput, two of each role ({connections} conns, {seconds:.0f} s)",
            multi.results.throughput(),
            "req/s",
            one.results.throughput(),
            f"≥ one of each: {one.results.throughput():.1f} req/s",
            "higher",
        )
    ]
    for o in (one, multi):
        out.append(Figure(f"errors, {LABEL[o.name]}", o.results.error_count(), "", 0, "= 0", "lower"))
        out.append(
            Figure(
                f"complaints and photos checked, {LABEL[o.name]} (failed checks)",
                0 if o.checks["ok"] else 1,
                "",
                0,
                "= 0",
                "lower",
            )
        )
    for o in (one, multi):
        everything = _latencies(o.results)
        target = f"≤ {TARGET_ALL_P99_MS:.0f} ms"
        out.append(
            Figure(f"p50, {LABEL[o.name]}", _pct(everything, 0.5), "ms", TARGET_ALL_P99_MS, target, "lower")
        )
        out.append(
            Figure(f"p99, {LABEL[o.name]}", _pct(everything, 0.99), "ms", TARGET_ALL_P99_MS, target, "lower")
        )
    for what in (*ROLES, "postgres", "moto", "load generator"):
        anchor = one.per_request_ms(what)
        out.append(
            Figure(
                f"CPU per request: {what}, two of each role",
                multi.per_request_ms(what),
                "ms",
                anchor,
                f"one of each: {anchor:.2f} ms",
                "lower",
            )
        )
    total_one = sum(one.per_request_ms(w) for w in (*ROLES, "postgres", "moto"))
    total_multi = sum(multi.per_request_ms(w) for w in (*ROLES, "postgres", "moto"))
    out.append(
        Figure(
            "CPU per request: every role + PostgreSQL + moto, two of each role",
            total_multi,
            "ms",
            total_one,
            f"one of each: {total_one:.2f} ms",
            "lower",
        )
    )
    return out


def report(
    outcomes: dict[str, Outcome], args: argparse.Namespace, before: str, after: str, backends: int
) -> None:
    one, multi = outcomes["one"], outcomes["multi"]
    figs = figures(one, multi, args.seconds, args.connections)
    print(table("Multi-node set-up under the load mix (PostgreSQL, Redis broker, S3 stand-in)", figs))
    print()
    print(f"machine: {machine()}")
    print(f"load average before: {before}; after: {after}")
    print(
        f"throughput ratio (two of each / one of each): {multi.results.throughput() / one.results.throughput():.2f}"
    )
    for o in outcomes.values():
        r = o.results
        print(
            f"\n{LABEL[o.name]}: {r.throughput():.1f} req/s, {o.requests()} requests, errors {r.error_count()}, "
            f"caught up {o.drain_seconds:.1f} s after the window"
        )
        for kind, _weight in MIX:
            s = r.latencies[kind]
            print(
                f"  {kind:10s} {len(s):6d} ok, errors {dict(r.errors.get(kind, {}))}, p50 {_pct(s, 0.5):.1f} ms, "
                f"p99 {_pct(s, 0.99):.1f} ms (target ≤ {TARGET_P99_MS[kind]:.0f})"
            )
        print(
            "  CPU, window + catch-up (window alone): "
            + ", ".join(
                f"{w} {o.cpu[w]:.1f} s ({o.cpu_window[w]:.1f} s) = {o.per_request_ms(w):.2f} ms/req"
                for w in (*ROLES, "postgres", "moto")
            )
            + f", load generator {o.loadgen_cpu:.1f} s = {o.per_request_ms('load generator'):.2f} ms/req"
        )
        print(f"  checks: {o.checks}")
    print(f"\nPostgreSQL backends seen on the bench database: {backends}")
    save(
        "bench_multinode",
        figs,
        {
            "seconds": args.seconds,
            "connections": args.connections,
            "public_store": bool(args.store_url),
            "load_before": before,
            "load_after": after,
            "setups": {
                o.name: {
                    "processes_per_role": o.each,
                    "throughput": o.results.throughput(),
                    "requests": {k: len(v) for k, v in o.results.latencies.items()},
                    "errors": {k: dict(v) for k, v in o.results.errors.items()},
                    "latency_ms": {
                        kind: {
                            "p50": _pct(o.results.latencies[kind], 0.5),
                            "p99": _pct(o.results.latencies[kind], 0.99),
                        }
                        for kind, _weight in MIX
                    },
                    "cpu_seconds": o.cpu,
                    "cpu_seconds_window": o.cpu_window,
                    "loadgen_cpu_seconds": o.loadgen_cpu,
                    "cpu_ms_per_request": {
                        w: o.per_request_ms(w) for w in (*ROLES, "postgres", "moto", "load generator")
                    },
                    "catch_up_seconds": o.drain_seconds,
                    "checks": o.checks,
                }
                for o in outcomes.values()
            },
        },
    )
    failures = [
        f"{LABEL[o.name]}: {o.results.error_count()} errors { {k: dict(v) for k, v in o.results.errors.items()} }"
        for o in outcomes.values()
        if o.results.error_count()
    ] + [f"{LABEL[o.name]}: checks failed {o.checks}" for o in outcomes.values() if not o.checks["ok"]]
    if failures:
        raise SystemExit("; ".join(failures))


# ---- main ---------------------------------------------------------------------------------------------------


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="the timed window of each set-up")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("GONGPING_BENCH_BROKER_URL", "redis://127.0.0.1:6379/8"),
        help="the Celery broker's Redis database (emptied first)",
    )
    parser.add_argument(
        "--limits-url",
        default=os.environ.get("GONGPING_BENCH_LIMITS_URL", "redis://127.0.0.1:6379/9"),
        help="the shared rate-limit counters' Redis database (emptied first)",
    )
    parser.add_argument(
        "--store-url",
        default="",
        help="a Redis URL for the shared public page store (off by default, as in bench_load_mix; emptied "
        "before each set-up). It may be the rate-limit database: their keys do not meet.",
    )
    parser.add_argument("--first-port", type=int, default=19400, help="ports for the processes: first")
    parser.add_argument("--last-port", type=int, default=19499, help="ports for the processes: last")
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="seconds to wait for the workers")
    args = parser.parse_args()
    from tests.fixtures.media_images import jpeg, photo_like

    if not _postgres_answers():
        raise SystemExit("the multi-node set-up needs PostgreSQL (GONGPING_BENCH_PG_URL)")
    load_before = _load()
    for url in (args.broker_url, args.limits_url):
        _empty_store(url)
    secret = secrets.token_urlsafe(48)
    folder = Path(tempfile.mkdtemp(prefix="gongping-bench-multinode-"))
    ports: set[int] = set()
    photo = jpeg(photo_like(1024, 768, seed=3), quality=88)
    outcomes: dict[str, Outcome] = {}
    try:
        with fresh_postgres() as url, _engine(url) as engine:
            env = _environment(url, secret, args.store_url) | {
                "GONGPING_BROKER_URL": args.broker_url,
                "GONGPING_RATE_LIMIT_STORAGE_URL": args.limits_url,
                "GONGPING_COMPLAINT_RATE_PER_ACCOUNT": "1000000/hour",
                "GONGPING_COMPLAINT_RATE_PER_ADDRESS": "1000000/hour",
                "PYTHONUNBUFFERED": "1",
            }
            _progress("seeding 10,000 operators on PostgreSQL")
            tokens, _ids = seed(url, secret)
            _progress("seeding staff, devices and routed complaints")
            case_ids = seed_people_apart(url, env)
            watch = PostgresWatch(url.rsplit("/", 1)[1])
            watch.start()
            with MotoServer.spawn(port=port_in(args.first_port, args.last_port, ports)) as moto:
                try:
                    for name, each in SETUPS:
                        outcomes[name] = run_setup(
                            name,
                            each,
                            args=args,
                            env=env,
                            engine=engine,
                            watch=watch,
                            moto=moto,
                            folder=folder,
                            ports=ports,
                            tokens=tokens,
                            case_ids=case_ids,
                            photo=photo,
                        )
                finally:
                    watch.stop()
        report(outcomes, args, load_before, _load(), watch.backends())
    except BaseException:
        _progress(f"the processes' logs are kept in {folder}")
        raise
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
