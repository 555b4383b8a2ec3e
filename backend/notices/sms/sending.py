"""Sending SMS at most once: claim (committed) → provider → record; a lost sender is reconciled, never resent.

1. :func:`claim` turns ``pending``, due rows into ``sending`` with one conditional ``UPDATE`` (over rows locked
   ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and charges the caps in the same transaction; the claim is
   committed *before* the provider is called, and our row id goes to the provider as the OutId.
2. :func:`send_messages` calls the provider and records each answer in its own transaction: accepted → ``sent``;
   not sent (flow control, connection refused) → ``pending`` again later; refused → ``not_reached``; unknown
   (timeout, dropped connection, 5xx) → stays ``sending``.
3. :func:`reconcile` finds ``sending`` rows nobody answered for (the worker was killed, the answer was lost) and
   asks the provider for the number's records of that day: a record with our OutId means it was sent (its
   status is taken over); no record after :data:`NOT_SENT_AFTER` means it provably was not, and only then is
   the row ``pending`` again. Nothing else ever sends a row twice.
4. :func:`poll_receipts` reads the delivery receipts of ``sent`` rows: delivered, or failed → sent again up to
   ``GONGPING_SMS_MAX_ATTEMPTS`` in all, then ``not_reached`` (staff phone or write; see ``reach.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from backend import faults
from backend.config import get_settings
from backend.dates import bureau_date
from backend.db import UnitOfWork, aware, is_postgres, session_scope, skip_locked, table_of, utcnow
from backend.notices.sms.models import SmsDailyCount, SmsMessage, SmsStatus
from backend.notices.sms.phones import mask
from backend.notices.sms.provider import ProviderUnavailable, SendRecord, SendResult, SmsProvider

log = logging.getLogger(__name__)

#: A ``sending`` row older than this had its sender die or lose the answer (> the SDK's read timeout).
STALE_AFTER = timedelta(minutes=2)
#: No provider record with our OutId this long after the claim: the message provably was not sent.
NOT_SENT_AFTER = timedelta(minutes=10)
#: A sent message without a receipt after this is not reached (Aliyun keeps receipts for 72 hours).
RECEIPT_TIMEOUT = timedelta(hours=72)
RECEIPT_POLL = timedelta(minutes=1)
#: Aliyun's send dates are Beijing days.
PROVIDER_ZONE = ZoneInfo("Asia/Shanghai")
GLOBAL_SCOPE = "all"


@dataclass
class SendReport:
    """What one round did."""

    sent: int = 0
    retry: int = 0
    not_reached: int = 0
    unknown: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _final(values: dict[str, Any]) -> dict[str, Any]:
    """A final row keeps only the masked number."""
    return values | {"phone": None}


def _update_if(session: Session, row_id: int | None, expected: SmsStatus, values: dict[str, Any]) -> None:
    """Write ``values`` to the row unless another sender or sweep moved it out of ``expected`` meanwhile."""
    table = table_of(SmsMessage)
    session.execute(
        update(table).where(table.c.id == row_id, table.c.status == expected.value).values(**values)
    )


# --- caps ------------------------------------------------------------------------------------------------


def _charge_one(session: Session, day: Any, scope: str, cap: int) -> bool:
    """Count one SMS against ``scope``'s cap for ``day``; False (nothing counted) when the cap is reached."""
    table = table_of(SmsDailyCount)
    dialect = postgresql if is_postgres(session) else sqlite
    session.execute(
        dialect.insert(table)
        .values(day=day, scope=scope, sent=0)
        .on_conflict_do_nothing(index_elements=["day", "scope"])
    )
    # Conditional increment: concurrent senders serialise on the row, and none passes the cap.
    done = session.execute(
        update(table)
        .where(table.c.day == day, table.c.scope == scope, table.c.sent < cap)
        .values(sent=table.c.sent + 1)
    )
    return bool(getattr(done, "rowcount", 0))


def _refund(session: Session, day: Any, scope: str) -> None:
    table = table_of(SmsDailyCount)
    session.execute(
        update(table).where(table.c.day == day, table.c.scope == scope).values(sent=table.c.sent - 1)
    )


def charge(session: Session, operator_id: int, now: datetime) -> str | None:
    """Count one SMS for the operator and the deployment today; the reason it may not go, or None."""
    settings = get_settings()
    day = bureau_date(now)
    if not _charge_one(session, day, GLOBAL_SCOPE, settings.sms_daily_budget):
        return "daily_budget"
    if not _charge_one(session, day, f"operator:{operator_id}", settings.sms_operator_daily_cap):
        _refund(session, day, GLOBAL_SCOPE)
        return "operator_daily_cap"
    return None


# --- claiming and sending --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed row, detached: what the provider call needs."""

    id: int
    phone: str
    template_code: str
    params: dict[str, str]
    attempts: int


def claim(session: Session, ids: Sequence[int], now: datetime) -> tuple[list[Claimed], dict[str, int]]:
    """Take due ``pending`` rows among ``ids`` (others' claims are skipped) and charge the caps."""
    if not ids:
        return [], {}
    table = table_of(SmsMessage)
    candidates = skip_locked(
        session,
        select(table.c.id).where(
            table.c.id.in_(sorted(ids)),
            table.c.status == SmsStatus.pending.value,
            table.c.next_attempt_at <= now,
        ),
    )
    taken = sorted(
        int(i)
        for i in session.execute(
            update(table)
            .where(table.c.id.in_(candidates), table.c.status == SmsStatus.pending.value)
            .values(
                status=SmsStatus.sending.value, claimed_at=now, attempts=table.c.attempts + 1, updated_at=now
            )
            .returning(table.c.id)
        ).scalars()
    )
    if not taken:
        return [], {}
    rows = session.execute(
        select(SmsMessage)
        .where(col(SmsMessage.id).in_(taken))
        .order_by(col(SmsMessage.id))
        .execution_options(populate_existing=True)
    ).scalars()
    codes = get_settings().sms_template_codes
    claimed: list[Claimed] = []
    skipped: dict[str, int] = {}
    for row in rows:
        reason = None if row.phone else "no_phone"
        code = codes.get(row.template_key, "")
        if reason is None and not code:
            reason = "no_template_code"
        if reason is None:
            reason = charge(session, row.operator_id, now)
        if reason is not None:
            # Not sent, and recorded so staff see why (the notice still needs to reach the operator).
            session.execute(
                update(table)
                .where(table.c.id == row.id)
                .values(**_final({"status": SmsStatus.skipped.value, "reason": reason, "updated_at": now}))
            )
            skipped[reason] = skipped.get(reason, 0) + 1
            log.warning("sms %s to %s not sent: %s", row.id, row.phone_masked, reason)
            continue
        claimed.append(Claimed(row.id or 0, row.phone or "", code, dict(row.params), row.attempts))
    return claimed, skipped


def _retry_values(row_attempts: int, now: datetime, delay_s: float, reason: str) -> dict[str, Any]:
    if row_attempts >= get_settings().sms_max_attempts:
        return _final({"status": SmsStatus.not_reached.value, "reason": reason})
    return {
        "status": SmsStatus.pending.value,
        "next_attempt_at": now + timedelta(seconds=delay_s),
        "claimed_at": None,
        "reason": None,
    }


def record(session: Session, item: Claimed, result: SendResult, now: datetime) -> str:
    """Store the provider's answer for one claimed row; returns the row's new status."""
    error = f"{result.code or ''}: {result.detail}"[:500] if result.outcome != "accepted" else None
    values: dict[str, Any]
    if result.outcome == "accepted":
        values = {
            "status": SmsStatus.sent.value,
            "sent_at": now,
            "biz_id": (result.biz_id or "")[:64] or None,
        }
    elif result.outcome == "retry":
        # Not sent: flow control or no connection. Sent again later, without counting as a failed delivery.
        values = {
            "status": SmsStatus.pending.value,
            "next_attempt_at": now + timedelta(seconds=result.retry_after_s or 60.0),
            "claimed_at": None,
            "attempts": max(item.attempts - 1, 0),
        }
    elif result.outcome == "refused":
        values = _final({"status": SmsStatus.not_reached.value, "reason": f"refused:{result.code}"[:64]})
    else:
        # Maybe sent: stays 'sending' for the reconciler, which asks the provider before anything else.
        values = {}
    values |= {"last_error": error, "updated_at": now}
    _update_if(session, item.id, SmsStatus.sending, values)
    return str(values.get("status", SmsStatus.sending.value))


def send_messages(
    provider: SmsProvider,
    ids: Sequence[int],
    *,
    now: datetime | None = None,
    unit_of_work: UnitOfWork = session_scope,
) -> SendReport:
    """Claim ``ids`` (committed), send each once, record each answer (committed one by one)."""
    now = now or utcnow()
    with unit_of_work() as session:
        claimed, skipped = claim(session, ids, now)
    report = SendReport(skipped=sum(skipped.values()), reasons=dict(skipped))
    for item in claimed:
        faults.pause("sms.claimed")
        result = provider.send(
            phone=item.phone, template_code=item.template_code, params=item.params, out_id=str(item.id)
        )
        with unit_of_work() as session:
            status = record(session, item, result, now)
        if status == SmsStatus.sent.value:
            report.sent += 1
        elif status == SmsStatus.pending.value:
            report.retry += 1
        elif status == SmsStatus.not_reached.value:
            report.not_reached += 1
            log.error("sms %s to %s refused: %s", item.id, mask(item.phone), result.code)
        else:
            report.unknown += 1
            log.warning(
                "sms %s to %s: outcome unknown (%s); reconciling", item.id, mask(item.phone), result.code
            )
    return report


def queue_due(session: Session, now: datetime, limit: int = 500) -> list[int]:
    """Ids of ``pending`` rows whose time has come (new, or retries), oldest first."""
    return [
        int(i)
        for i in session.execute(
            select(col(SmsMessage.id))
            .where(col(SmsMessage.status) == SmsStatus.pending, col(SmsMessage.next_attempt_at) <= now)
            .order_by(col(SmsMessage.next_attempt_at))
            .limit(limit)
        ).scalars()
    ]


# --- after the send: reconciliation and receipts ---------------------------------------------------------


def send_date(at: datetime) -> str:
    """The provider's day of an instant (yyyyMMdd, Beijing)."""
    return aware(at).astimezone(PROVIDER_ZONE).strftime("%Y%m%d")


def _from_record(row: SmsMessage, found: SendRecord, now: datetime) -> dict[str, Any]:
    """The row's new values from the provider's record of it."""
    if found.send_status == 3:
        return _final({"status": SmsStatus.delivered.value, "delivered_at": now, "reason": None})
    if found.send_status == 2:
        delay = 600.0 * max(row.attempts, 1)
        return _retry_values(row.attempts, now, delay, f"failed:{found.err_code or 'unknown'}"[:64]) | {
            "last_error": f"delivery failed: {found.err_code}"[:500]
        }
    return {"status": SmsStatus.sent.value, "receipt_checked_at": now}


def _detached(unit_of_work: UnitOfWork, limit: int, *where: ColumnElement[bool]) -> list[SmsMessage]:
    """Up to ``limit`` rows matching ``where``, by id, out of their session: provider calls hold no transaction."""
    with unit_of_work() as session:
        rows = list(
            session.execute(
                select(SmsMessage).where(*where).order_by(col(SmsMessage.id)).limit(limit)
            ).scalars()
        )
        session.expunge_all()
    return rows


def _record_of(
    provider: SmsProvider, row: SmsMessage, sent_around: datetime, biz_id: str | None = None
) -> SendRecord | None:
    """The provider's record of ``row`` (by our OutId) on its send day; raises ProviderUnavailable."""
    records = provider.records(phone=row.phone or "", send_date=send_date(sent_around), biz_id=biz_id)
    return next((r for r in records if r.out_id == str(row.id)), None)


def reconcile(
    provider: SmsProvider,
    *,
    now: datetime | None = None,
    unit_of_work: UnitOfWork = session_scope,
    limit: int = 200,
) -> dict[str, int]:
    """Settle ``sending`` rows nobody answered for by the provider's records; never by sending again."""
    now = now or utcnow()
    counts = {"found": 0, "not_sent": 0, "waiting": 0, "unavailable": 0}
    rows = _detached(
        unit_of_work,
        limit,
        col(SmsMessage.status) == SmsStatus.sending,
        col(SmsMessage.claimed_at) <= now - STALE_AFTER,
    )
    for row in rows:
        claimed_at = aware(row.claimed_at or now)
        try:
            found = _record_of(provider, row, claimed_at)
        except ProviderUnavailable as exc:
            counts["unavailable"] += 1
            log.warning("sms %s: cannot reconcile now: %s", row.id, exc)
            continue
        if found is not None:
            values = _from_record(row, found, now) | {"sent_at": claimed_at}
            counts["found"] += 1
        elif claimed_at <= now - NOT_SENT_AFTER:
            # The provider has no message with our OutId long after the claim: it was never sent.
            values = {
                "status": SmsStatus.pending.value,
                "next_attempt_at": now,
                "claimed_at": None,
                "attempts": max(row.attempts - 1, 0),
                "last_error": "not found at the provider; sending again",
            }
            counts["not_sent"] += 1
        else:
            counts["waiting"] += 1
            continue
        with unit_of_work() as session:
            _update_if(session, row.id, SmsStatus.sending, values | {"updated_at": now})
    return counts


def poll_receipts(
    provider: SmsProvider,
    *,
    now: datetime | None = None,
    unit_of_work: UnitOfWork = session_scope,
    limit: int = 200,
) -> dict[str, int]:
    """Read the delivery receipts of ``sent`` rows: delivered, failed (sent again, bounded), or still waiting."""
    now = now or utcnow()
    counts = {"delivered": 0, "failed": 0, "waiting": 0, "not_reached": 0, "unavailable": 0}
    rows = _detached(
        unit_of_work,
        limit,
        col(SmsMessage.status) == SmsStatus.sent,
        (col(SmsMessage.receipt_checked_at).is_(None))
        | (col(SmsMessage.receipt_checked_at) <= now - RECEIPT_POLL),
    )
    for row in rows:
        sent_at = aware(row.sent_at or now)
        try:
            found = _record_of(provider, row, sent_at, row.biz_id)
        except ProviderUnavailable as exc:
            counts["unavailable"] += 1
            log.warning("sms %s: receipts unavailable: %s", row.id, exc)
            continue
        if found is not None and found.send_status in (2, 3):
            values = _from_record(row, found, now)
            counts["delivered" if found.send_status == 3 else "failed"] += 1
        elif sent_at <= now - RECEIPT_TIMEOUT:
            values = _final({"status": SmsStatus.not_reached.value, "reason": "no_receipt"})
            counts["not_reached"] += 1
        else:
            values = {"receipt_checked_at": now}
            counts["waiting"] += 1
        with unit_of_work() as session:
            _update_if(session, row.id, SmsStatus.sent, values | {"updated_at": now})
    return counts
