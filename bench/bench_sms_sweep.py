"""Issue 19 figure: the SMS fallback sweep over 1,000,000 required notices on PostgreSQL (≤ 10 s to find).

The inbox holds 1,000,000 required notices (``verification_overdue``) to 50,000 operators: 60 % read, 10 %
without an SMS time (another user's copy), 20 % unread but not yet due, 10 % unread and due (100,000). The
sweep reads only the partial index ``ix_inbox_notification_sms_due`` (unread, SMS time set) in keyset batches.

Figures: the find phase (every due entry, 1,000 a batch, each its own transaction, as the sweep reads them);
the whole sweep (each due notice made again through the topic's batch handler, consent looked up, an
``sms_message`` row written, the entry's SMS time cleared); the next sweep (nothing due).

Rows come from ``generate_series``. Run: .venv/bin/python -m bench.bench_sms_sweep [--notices N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import Figure, fresh_postgres, insert_operators, machine, save, table

OPERATORS = 50_000


def generate(url: str, notices: int, operators: int) -> float:
    """Operators with one user and a consented phone, the due notices' instruments and events, the inbox."""
    from sqlalchemy import text

    from backend.db import make_engine

    engine = make_engine(url)
    started = time.perf_counter()
    due = notices // 10
    with engine.begin() as conn:
        insert_operators(conn, operators, prefix="S", first=0)
        conn.execute(
            text(
                """
                INSERT INTO account (username, password_hash, role, display_name, operator_id, locale, timezone,
                    is_active, created_at, updated_at)
                SELECT 'op' || o.id, 'x', 'operator', '', o.id, 'zh-CN', 'Asia/Shanghai', true, now(), now()
                FROM operator o
                """
            )
        )
        conn.execute(
            text(
                """
                INSERT INTO sms_contact (operator_id, phone, consent_source, consent_by_id, consent_note,
                    consent_at, updated_at)
                SELECT a.operator_id, '138' || lpad(a.operator_id::text, 8, '0'), 'staff', a.id, '', now(), now()
                FROM account a WHERE a.role = 'operator'
                """
            )
        )
        # Due notice k (inbox row 10k+9) is about instrument k of operator (10k+9) mod operators.
        conn.execute(
            text(
                """
                INSERT INTO instrument (type_code, serial, maker, model, operator_id, status, qr_serial,
                    last_verified_on, last_passed, valid_until, created_at)
                SELECT 'price_scale', 'SMS' || k, '', '', (SELECT min(id) FROM operator) + (10 * k + 9) % :ops,
                    'in_use', 1, CURRENT_DATE - 400, true, CURRENT_DATE - 5, now()
                FROM generate_series(0, :due - 1) AS k
                """
            ),
            {"due": due, "ops": operators},
        )
        conn.execute(
            text(
                """
                INSERT INTO outbox_event (topic, payload, dedupe_key, created_at, available_at, published_at, attempts)
                SELECT 'instrument.overdue',
                    json_build_object('instrument_id', i.id, 'operator_id', i.operator_id,
                                      'valid_until', to_char(i.valid_until, 'YYYY-MM-DD')),
                    'bench:' || i.id, now(), now(), now(), 0
                FROM instrument i WHERE i.serial LIKE 'SMS%'
                """
            )
        )
        conn.execute(
            text(
                """
                INSERT INTO inbox_notification (recipient_id, event_id, kind, category, locale, title, body, deep_link,
                    data, dedupe_key, created_at, read_at, sms_due_at)
                SELECT (SELECT min(id) FROM account WHERE role = 'operator') + i % :ops,
                    CASE WHEN i % 10 = 9 THEN (SELECT min(id) FROM outbox_event) + i / 10 ELSE NULL END,
                    'verification_overdue', 'verification', 'zh-CN', '计量器具检定已过期', '…', 'gongping://inbox',
                    '{}'::json, 'bench-inbox:' || i, now() - interval '3 days',
                    CASE WHEN i % 10 < 6 THEN now() - interval '2 days' ELSE NULL END,
                    CASE WHEN i % 10 = 6 THEN NULL
                         WHEN i % 10 IN (7, 8) THEN now() + interval '1 day'
                         ELSE now() - interval '1 day' END
                FROM generate_series(0, :n - 1) AS i
                """
            ),
            {"n": notices, "ops": operators},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in (
            "operator",
            "account",
            "sms_contact",
            "instrument",
            "outbox_event",
            "inbox_notification",
        ):
            conn.execute(text(f"VACUUM ANALYZE {name}"))
    engine.dispose()
    return time.perf_counter() - started


def run(url: str, notices: int, operators: int, sweep_batches: int = 10_000) -> dict[str, Any]:
    """Generate, then time the find phase, the whole sweep and the next sweep."""
    os.environ["GONGPING_DATABASE_URL"] = url
    from sqlalchemy import text

    from backend.db import make_engine, session_scope
    from backend.migrate import upgrade
    from backend.notices.sms import sweep as sms_sweep

    upgrade(url)
    generate_s = generate(url, notices, operators)
    engine = make_engine(url)

    @contextmanager
    def scope() -> Iterator[Any]:
        with session_scope(engine) as session:
            yield session

    now = datetime.now(UTC).replace(hour=2)  # 10:00 in Beijing: outside quiet hours
    now = max(now, datetime.now(UTC))
    with engine.connect() as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text(
                    "EXPLAIN SELECT id FROM inbox_notification WHERE read_at IS NULL AND sms_due_at IS NOT NULL "
                    "AND sms_due_at <= now() ORDER BY sms_due_at, id LIMIT 1000"
                )
            )
        )
    t0 = time.perf_counter()
    found = 0
    after = None
    while True:
        with scope() as session:
            rows = sms_sweep.due_entries(session, now, after)
        found += len(rows)
        if len(rows) < sms_sweep.SWEEP_BATCH:
            break
        after = (rows[-1].due_at, rows[-1].inbox_id)
    find_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    due_now, handled = sms_sweep.sweep(scope, now, max_batches=sweep_batches)
    sweep_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _again, handled_again = sms_sweep.sweep(scope, now + timedelta(minutes=1), max_batches=10_000)
    next_s = time.perf_counter() - t0
    with engine.connect() as conn:
        messages = int(conn.execute(text("SELECT count(*) FROM sms_message")).scalar_one())
    engine.dispose()
    return {
        "generate_s": generate_s,
        "found": found,
        "find_s": find_s,
        "handled": handled,
        "messages": messages,
        "due_now": len(due_now),
        "sweep_s": sweep_s,
        "next_handled": handled_again,
        "next_s": next_s,
        "plan": plan,
    }


def main() -> None:
    """Run the bench and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--notices", type=int, default=1_000_000)
    parser.add_argument("--operators", type=int, default=OPERATORS)
    parser.add_argument(
        "--sweep-batches", type=int, default=10_000, help="batches of 1,000 the whole sweep runs"
    )
    args = parser.parse_args()
    with fresh_postgres() as url:
        result = run(url, args.notices, args.operators, args.sweep_batches)
    figures = [
        Figure("find every due unread notice", result["find_s"], "s", 10.0, "≤ 10 s (issue)", "lower"),
        Figure("next sweep (nothing due)", result["next_s"], "s", 1.0, "≤ 1 s (ours)", "lower"),
        Figure(
            "whole sweep: ms per due notice",
            1000 * result["sweep_s"] / max(result["handled"], 1),
            "ms",
            5.0,
            "≤ 5 ms (ours)",
            "lower",
        ),
    ]
    print(machine())
    print(table(f"SMS fallback sweep over {args.notices:,} required notices (PostgreSQL)", figures))
    print(
        f"\ngenerated in {result['generate_s']:.1f} s; found {result['found']:,} due unread notices; the sweep "
        f"handled {result['handled']:,} and made {result['messages']:,} SMS rows ({result['due_now']:,} due now); "
        f"the next sweep handled {result['next_handled']:,}.\nplan of one batch:\n{result['plan']}"
    )
    save("sms_sweep", figures, {"notices": args.notices, **{k: v for k, v in result.items() if k != "plan"}})


if __name__ == "__main__":
    main()
