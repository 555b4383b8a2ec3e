"""End-to-end fan-out of verification-due reminders through the notification dispatch path on PostgreSQL.

What ``bench_push.py`` measures is the push channel alone; this adds everything the workers do per event:
load the outbox event, run its handler, render per recipient and device, write the inbox entry and the
push row with their dedupe keys, claim, send through firebase-admin to the stand-in, record the answers.

Two ways through it are timed, on separate sets of events:

* inline: each event handled and its pushes sent at once — what ``gongping.notifications.dispatch`` does for
  notices a person is waiting for (a complaint acknowledged, a rating changed);
* batched: events handled without sending, then the due rows sent in chunks of 500 — what it does for the
  sweeps' ``instrument.due``/``instrument.overdue`` (the retry sweep sends them; pushes held for quiet hours
  go out the same way at 08:00). Handling is timed both one event per transaction (``dispatch``, as the
  per-event task does) and ``--batch`` events per transaction (``dispatch_many``, as
  ``gongping.notifications.dispatch_batch`` does), each on its own set of events.

Events are split across ``--processes`` forked workers (like Celery prefork children), each with its own
push channel built after the fork. Celery and broker overhead are not included.

Run: .venv/bin/python -m bench.bench_dispatch [--events N] [--processes P] [--batch B]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import Figure, fresh_postgres, insert_operators, machine, save, table

ROOT = Path(__file__).resolve().parent.parent


def daytime_zone() -> str:
    """A fixed-offset zone where it is now daytime, so quiet hours never hold the bench's pushes."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
        if 10 <= now.astimezone(ZoneInfo(name)).hour < 16:
            return name
    raise RuntimeError("no daytime zone")


def generate(url: str, n: int) -> None:
    """``n`` operators, each with one user, one device (¼ iOS) and one instrument due in 7 days."""
    from sqlalchemy import text

    from backend.db import make_engine
    from backend.records.service import bureau_today

    engine = make_engine(url)
    today = bureau_today()
    with engine.begin() as conn:
        insert_operators(conn, n)
        conn.execute(
            text(
                """
                INSERT INTO account (username, password_hash, role, display_name, operator_id, locale, timezone,
                    is_active, created_at, updated_at)
                SELECT 'op' || o.id, 'x', 'operator', '', o.id, CASE WHEN o.id % 10 = 0 THEN 'en' ELSE 'zh-CN' END,
                    'Asia/Shanghai', true, now(), now()
                FROM operator o
                """
            )
        )
        conn.execute(
            text(
                """
                INSERT INTO device (account_id, token, token_hash, platform, locale, timezone, active, last_seen,
                    created_at)
                SELECT a.id, 'bench-' || lpad(a.id::text, 8, '0'),
                    encode(sha256(('bench-' || lpad(a.id::text, 8, '0'))::bytea), 'hex'),
                    CASE WHEN a.id % 4 = 0 THEN 'ios' ELSE 'android' END, a.locale, :zone, true, now(), now()
                FROM account a WHERE a.role = 'operator'
                """
            ),
            {"zone": daytime_zone()},
        )
        conn.execute(
            text(
                """
                INSERT INTO instrument (type_code, serial, maker, model, operator_id, status, qr_serial,
                    last_verified_on, last_passed, valid_until, created_at)
                SELECT 'price_scale', 'SN' || o.id, '', '', o.id, 'in_use', 1, CAST(:today AS date) - 358, true,
                    CAST(:today AS date) + 7, now()
                FROM operator o
                """
            ),
            {"today": today},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in ("operator", "account", "device", "instrument"):
            conn.execute(text(f"VACUUM ANALYZE {name}"))
    engine.dispose()


def _event_ids(url: str) -> list[int]:
    from sqlalchemy import text

    from backend.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        ids = [int(i) for i in conn.execute(text("SELECT id FROM outbox_event ORDER BY id")).scalars()]
    engine.dispose()
    return ids


def _child(
    mode: str, ids: list[int], account: str, endpoint: str, barrier: Any, queue: Any, batch: int = 200
) -> None:
    from backend.db import get_engine
    from backend.notices.delivery import chunks, dispatch, dispatch_many, queue_due, send_pushes
    from notifications.push import build_push_channel

    get_engine.cache_clear()
    channel = build_push_channel(account, endpoint)
    assert channel is not None
    barrier.wait()
    cpu0 = time.process_time()
    sent = retry = 0
    if mode == "inline":
        for event_id in ids:
            _report, due = dispatch(event_id, push_enabled=True)
            report = send_pushes(channel, due)
            sent += report.sent
            retry += len(report.retry)
    elif mode == "dispatch-only":
        for event_id in ids:
            dispatch(event_id, push_enabled=True)
    elif mode == "dispatch-batched":
        for start in range(0, len(ids), batch):
            dispatch_many(ids[start : start + batch], push_enabled=True, skip_broken=True)
    else:
        from backend.db import session_scope

        while True:
            with session_scope() as session:
                due_ids = queue_due(session, datetime.now(UTC) + timedelta(seconds=1), limit=5000)
            if not due_ids:
                break
            for part in chunks(due_ids):
                report = send_pushes(channel, part)
                sent += report.sent
                retry += len(report.retry)
    queue.put({"cpu": time.process_time() - cpu0, "sent": sent, "retry": retry})
    channel.close()


def _phase(
    mode: str, parts: list[list[int]], account: str, endpoint: str, batch: int = 200
) -> dict[str, float]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(len(parts) + 1)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(mode, part, account, endpoint, barrier, queue, batch), daemon=True)
        for part in parts
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    t0 = time.perf_counter()
    reports = [queue.get() for _ in procs]
    wall = time.perf_counter() - t0
    for proc in procs:
        proc.join()
    return {
        "wall_s": wall,
        "sent": sum(r["sent"] for r in reports),
        "retry": sum(r["retry"] for r in reports),
        "cpu_s": sum(r["cpu"] for r in reports),
    }


def run(events: int, processes: int, batch: int = 200) -> dict[str, Any]:
    """Set up a fresh database and the stand-in, then time both paths."""
    from tests.support.fcm_standin import spawn_standin_process, write_service_account

    with fresh_postgres() as url:
        os.environ["GONGPING_DATABASE_URL"] = url
        from backend.db import session_scope
        from backend.migrate import upgrade
        from backend.notices.reminders import sweep_due_instruments
        from backend.records.service import bureau_today

        upgrade(url)
        generate(url, 3 * events)
        t0 = time.perf_counter()
        emitted = sweep_due_instruments(bureau_today(), unit_of_work=session_scope)
        sweep_s = time.perf_counter() - t0
        ids = _event_ids(url)
        inline_ids, batched_ids = ids[:events], ids[events : 2 * events]
        many_ids = ids[2 * events : 3 * events]
        standin = spawn_standin_process()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                account = str(write_service_account(Path(tmp) / "sa.json", standin.token_uri))
                split = [inline_ids[i::processes] for i in range(processes)]
                inline = _phase("inline", split, account, standin.base_url)
                split = [batched_ids[i::processes] for i in range(processes)]
                handled = _phase("dispatch-only", split, account, standin.base_url)
                # Contiguous slices: a batch is what one relay pass hands one task.
                size = -(-len(many_ids) // processes)
                split = [many_ids[i : i + size] for i in range(0, len(many_ids), size)]
                handled_many = _phase("dispatch-batched", split, account, standin.base_url, batch)
                # Each sender queues and claims its own rows, so the processes never send the same row.
                sent = _phase("send", [[] for _ in range(processes)], account, standin.base_url)
                stats = standin.stats()
        finally:
            standin.close()
    return {
        "events": events,
        "processes": processes,
        "sweep_emitted": emitted,
        "sweep_s": sweep_s,
        "inline": inline,
        "dispatch_only": handled,
        "dispatch_batched": handled_many,
        "batch": batch,
        "batched_send": sent,
        "standin": stats,
    }


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per path")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=200, help="events per transaction in dispatch_many")
    args = parser.parse_args()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    r = run(args.events, args.processes, args.batch)
    n = r["events"]
    inline, handled, many, sent = r["inline"], r["dispatch_only"], r["dispatch_batched"], r["batched_send"]
    batched_wall = handled["wall_s"] + sent["wall_s"] * n / max(sent["sent"], 1)
    one_per_tx = n / handled["wall_s"]
    figures = [
        Figure("inline (interactive topics): events /s", n / inline["wall_s"], "ev/s", 1.0, "info", "higher"),
        Figure("events handled /s, one per transaction (no send)", one_per_tx, "ev/s", 1.0, "info", "higher"),
        Figure(
            f"events handled /s, {r['batch']} per transaction (dispatch_many, no send)",
            n / many["wall_s"],
            "ev/s",
            10 * one_per_tx,
            "10× one per transaction",
            "higher",
        ),
        Figure(
            "batched: pushes sent /s (500 per round)",
            sent["sent"] / sent["wall_s"],
            "msg/s",
            1.0,
            "info",
            "higher",
        ),
        Figure(
            "sweep topics, one event per transaction, then sent 500 a round: end to end /s",
            n / batched_wall,
            "ev/s",
            1.0,
            "info",
            "higher",
        ),
        Figure(
            f"sweep topics, {r['batch']} events per transaction, then sent 500 a round: end to end /s",
            # One push per event: the time per event is its share of handling plus one push's share of sending.
            1 / (many["wall_s"] / n + sent["wall_s"] / max(sent["sent"], 1)),
            "ev/s",
            1.0,
            "info",
            "higher",
        ),
    ]
    print(machine())
    print(
        table(f"Dispatch fan-out, {n:,} reminders per path, {r['processes']} processes (PostgreSQL)", figures)
    )
    print(
        f"\nsweep emitted {r['sweep_emitted']:,} events in {r['sweep_s']:.2f} s; inline sent {inline['sent']:,};"
        f" batched sent {sent['sent']:,}; worker CPU: inline {inline['cpu_s'] / n * 1e3:.2f} ms/event, handling"
        f" {handled['cpu_s'] / n * 1e3:.2f} ms/event, batched handling {many['cpu_s'] / n * 1e3:.2f} ms/event,"
        f" batched send {sent['cpu_s'] / max(sent['sent'], 1) * 1e3:.2f}"
        f" ms/push; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; stand-in: {r['standin']}"
    )
    save("dispatch", figures, r)


if __name__ == "__main__":
    main()
