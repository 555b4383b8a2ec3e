"""Issue 16 bench (b): the app's cold start through uvicorn on PostgreSQL with 100,000 complaints.

The four calls the app makes when it opens (``GET /api/v1/app/config``, ``/api/v1/me``, the first inbox page,
the first page of my complaints), sequentially over one keep-alive connection as a phone would, timed at the
client: p99 per call (target ≤ 30 ms). Then the same four with ``If-None-Match`` from the first answers, the
app's poll when nothing changed (target p99 ≤ 10 ms: a 304 that skips building the body).

Seed: 100,000 complaints from 2,000 device accounts (Core bulk insert), the measured account holding 200 of
them and 60 inbox entries in both languages and a registered device. ``/healthz`` is timed in the same rounds
as a same-run anchor: the machine is shared with other engineers' work, so absolute figures are noisy; the
load average is saved beside them.

Run: .venv/bin/python -m bench.bench_app_start [--rounds 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.bench_app_flaky import serve
from bench.common import Figure, fresh_postgres, machine, save, table

ROOT = Path(__file__).resolve().parent.parent
COMPLAINTS = 100_000
ACCOUNTS = 2_000
MINE = 200
INBOX = 60
PASSWORD = "Bench-start-2026"
CALLS = {
    "config": "/api/v1/app/config",
    "me": "/api/v1/me",
    "inbox page": "/api/v1/me/notifications?limit=20",
    "my complaints page": "/api/v1/me/complaints?limit=20",
}


def seed_child(url: str) -> None:
    """Runs in a subprocess: migrate, then bulk-insert accounts, complaints, inbox entries and a device."""
    import random
    from datetime import timedelta

    from sqlalchemy import text

    from backend.audit.service import SYSTEM
    from backend.auth import service as auth_service
    from backend.auth.models import Account, Role
    from backend.complaints.models import Complaint, ComplaintEvent
    from backend.db import bulk_insert, session_scope, table_of, utcnow
    from backend.migrate import upgrade
    from backend.notices.models import Device, InboxNotification

    upgrade(url)
    rng = random.Random(16)
    now = utcnow()
    with session_scope() as session:
        me = auth_service.create_account(
            session, actor=SYSTEM, username="start_device", password=PASSWORD, role=Role.consumer_device
        )
        password_hash = me.password_hash
        me_id = me.id or 0
    with session_scope() as session:
        bulk_insert(
            session,
            table_of(Account),
            [
                {
                    "username": f"start_other_{i}",
                    "password_hash": password_hash,
                    "role": Role.consumer_device.value,
                    "display_name": "",
                    "locale": "zh-CN",
                    "timezone": "Asia/Shanghai",
                    "is_active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(ACCOUNTS - 1)
            ],
        )
        others = [
            int(i)
            for i in session.execute(text("SELECT id FROM account WHERE id <> :me"), {"me": me_id}).scalars()
        ]
    rows = []
    for n in range(COMPLAINTS):
        owner = me_id if n % (COMPLAINTS // MINE) == 0 else rng.choice(others)
        at = now - timedelta(minutes=COMPLAINTS - n)
        rows.append(
            {
                "account_id": owner,
                "filer_role": Role.consumer_device.value,
                "source": "consumer",
                "category": rng.choice(["short_weight", "instrument_cheating", "other"]),
                "description": "复称短秤",
                "via_qr": False,
                "lon": 120.1 + rng.random() / 10,
                "lat": 30.2 + rng.random() / 10,
                "coord_system": "wgs84",
                "status": "routed",
                "routing_status": "routed",
                "created_at": at,
                "updated_at": at,
            }
        )
    with session_scope() as session:
        bulk_insert(session, table_of(Complaint), rows, assign_ids=True)
        bulk_insert(
            session,
            table_of(ComplaintEvent),
            [
                {
                    "complaint_id": r["id"],
                    "at": r["created_at"],
                    "status": "received",
                    "note_zh": "投诉已收到",
                    "note_en": "Complaint received",
                }
                for r in rows
                if r["account_id"] == me_id
            ],
        )
        texts = {
            "zh-CN": {"title": "投诉进展", "body": "您的投诉已转交属地市场监管部门"},
            "en": {"title": "Complaint progress", "body": "Your complaint was routed to the local bureau"},
        }
        bulk_insert(
            session,
            table_of(InboxNotification),
            [
                {
                    "recipient_id": me_id,
                    "kind": "complaint_received",
                    "category": "complaint",
                    "locale": "zh-CN",
                    "title": texts["zh-CN"]["title"],
                    "body": texts["zh-CN"]["body"],
                    "texts": texts,
                    "deep_link": f"gongping://complaints/{n}",
                    "data": {"kind": "complaint_received", "category": "complaint"},
                    "dedupe_key": f"start-{n}",
                    "created_at": now - timedelta(hours=INBOX - n),
                    "read_at": now if n % 3 else None,
                }
                for n in range(INBOX)
            ],
        )
        session.add(
            Device(
                account_id=me_id,
                token="start_" + "t" * 150,
                token_hash="0" * 64,
                platform="android",
                locale="en",
            )
        )
    with session_scope() as session:
        session.execute(text("ANALYZE"))


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(base: str, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, int]]:
    """Per call: plain latencies (ms), conditional latencies (ms), and the conditional answers' status."""
    app = {"X-App-Version": "android/2.0.0"}
    with httpx.Client(base_url=base, timeout=30, headers=app) as client:
        token = client.post("/api/v1/auth/token", data={"username": "start_device", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        plain: dict[str, list[float]] = {name: [] for name in [*CALLS, "healthz (anchor)"]}
        conditional: dict[str, list[float]] = {name: [] for name in CALLS}
        etags: dict[str, str] = {}
        statuses: dict[str, int] = {}
        for warm in range(30):
            for name, path in CALLS.items():
                answer = client.get(path, headers=headers)
                assert answer.status_code == 200, answer.text
                if warm == 0:
                    etags[name] = answer.headers["etag"]
        for _ in range(rounds):
            for name, path in CALLS.items():
                started = time.perf_counter()
                answer = client.get(path, headers=headers)
                plain[name].append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200
            started = time.perf_counter()
            client.get("/healthz")
            plain["healthz (anchor)"].append((time.perf_counter() - started) * 1000)
            for name, path in CALLS.items():
                started = time.perf_counter()
                answer = client.get(path, headers={**headers, "If-None-Match": etags[name]})
                conditional[name].append((time.perf_counter() - started) * 1000)
                statuses[name] = answer.status_code
    return plain, conditional, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed-db", metavar="DATABASE_URL")
    args = parser.parse_args()
    if args.seed_db:
        seed_child(args.seed_db)
        return
    with fresh_postgres() as url:
        env = {
            **os.environ,
            "GONGPING_DATABASE_URL": url,
            "GONGPING_ARGON2_MEMORY_KIB": "8192",
            "GONGPING_APP_MIN_VERSIONS": '{"android": "1.0.0"}',
        }
        print(f"seeding {COMPLAINTS:,} complaints", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bench.bench_app_start", "--seed-db", url], cwd=ROOT, env=env, check=True
        )
        print(f"  seeded in {time.perf_counter() - started:.0f} s", flush=True)
        load_before = os.getloadavg()
        with serve(env) as port:
            plain, conditional, statuses = measure(f"http://127.0.0.1:{port}", args.rounds)
        load_after = os.getloadavg()
    figures = [
        Figure(f"{name}: p99", _p(v, 0.99), "ms", 30, "≤ 30 ms", "lower")
        for name, v in plain.items()
        if name in CALLS
    ]
    figures += [
        Figure(
            f"{name} with If-None-Match ({statuses[name]}): p99", _p(v, 0.99), "ms", 10, "≤ 10 ms", "lower"
        )
        for name, v in conditional.items()
    ]
    anchor = plain["healthz (anchor)"]
    figures.append(
        Figure("healthz (same-run anchor): p99", _p(anchor, 0.99), "ms", _p(anchor, 0.99), "anchor", "lower")
    )
    print(
        table(
            f"App cold start, uvicorn ×1 on PostgreSQL, {COMPLAINTS:,} complaints, {args.rounds} rounds",
            figures,
        )
    )
    medians = {
        name: statistics.median(v)
        for name, v in {**plain, **{f"{k} (304)": v for k, v in conditional.items()}}.items()
    }
    print("medians (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    print(f"load average before/after: {load_before} / {load_after}")
    save(
        "bench_app_start",
        figures,
        {
            "rounds": args.rounds,
            "medians_ms": medians,
            "load_before": load_before,
            "load_after": load_after,
            "machine_line": machine(),
        },
    )


if __name__ == "__main__":
    main()
