"""The fallback sweep: unread required notices whose SMS time has come become ``sms_message`` rows.

The query reads only the partial index ``ix_inbox_notification_sms_due`` (``read_at IS NULL AND sms_due_at IS
NOT NULL``), in keyset batches on ``(sms_due_at, id)``: a notice that was read left the index when it was read,
one whose SMS was made leaves it when the sweep clears ``sms_due_at``, so a sweep costs what is due, not what
the inbox holds (``bench/bench_sms_sweep.py``: 1,000,000 required notices).

For each due entry the notice is made again from its outbox event (``handlers.notices_for``): a summons
cancelled or moved since is stale and sends nothing, and the SMS carries today's truth. Then: read by another
of the operator's users → no SMS; no consented phone, a variable too long, no approved template → a ``skipped``
row with the reason (staff see it); otherwise a ``pending`` row, released after quiet hours.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import literal, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from backend.auth.models import Account, Role
from backend.config import get_settings
from backend.db import aware, table_of
from backend.notices.delivery import _insert_ignore as insert_ignore
from backend.notices.delivery import resolve_context
from backend.notices.handlers import BATCH_HANDLERS, Notice, notices_for, operator_users_of
from backend.notices.models import InboxNotification
from backend.notices.sms.models import SmsContact, SmsMessage, SmsStatus
from backend.notices.sms.phones import mask
from backend.notices.sms.templates import BY_KIND, VariableTooLong, params_for
from backend.operators.models import Operator
from backend.outbox.models import OutboxEvent
from notifications.policy import DEFAULT_TZ, release_time

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000


def sms_dedupe_key(event_id: int, kind: str, operator_id: int) -> str:
    """One SMS per (event, kind, operator), whatever number of users the operator has."""
    canonical = json.dumps(["v1", event_id, kind, operator_id])
    return f"sms:{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


@dataclass(frozen=True, slots=True)
class DueEntry:
    """One inbox entry due for SMS."""

    inbox_id: int
    event_id: int
    kind: str
    recipient_id: int
    due_at: datetime
    #: "no_device" (due when written: nobody got a push) or "unread" (the push went unread for the delay).
    trigger: str


Cursor = tuple[datetime, int]


def due_entries(
    session: Session, now: datetime, after: Cursor | None, limit: int = SWEEP_BATCH
) -> list[DueEntry]:
    """The next batch of unread required notices due for SMS, in (due, id) order after ``after``."""
    inbox = table_of(InboxNotification)
    stmt = select(
        inbox.c.id,
        inbox.c.event_id,
        inbox.c.kind,
        inbox.c.recipient_id,
        inbox.c.sms_due_at,
        inbox.c.created_at,
    ).where(inbox.c.read_at.is_(None), inbox.c.sms_due_at.is_not(None), inbox.c.sms_due_at <= now)
    if after is not None:
        stmt = stmt.where(
            tuple_(inbox.c.sms_due_at, inbox.c.id)
            > tuple_(literal(after[0], inbox.c.sms_due_at.type), literal(after[1], inbox.c.id.type))
        )
    # No row locks: locking writes every tuple it takes and turns an index-only scan into heap work, ten times
    # slower over 100,000 due entries. Two overlapping sweeps (a slow one and the next beat) may both handle an
    # entry; the SMS row's unique dedupe key keeps that to one message.
    stmt = stmt.order_by(inbox.c.sms_due_at, inbox.c.id).limit(limit)
    return [
        DueEntry(
            int(i), int(e or 0), str(k), int(r), aware(d), "unread" if aware(d) > aware(c) else "no_device"
        )
        for i, e, k, r, d, c in session.execute(stmt).all()
    ]


def _read_by_someone(
    session: Session,
    entries: list[DueEntry],
    users: Mapping[int, tuple[int, ...]],
    operator_of: Mapping[int, int],
) -> set[tuple[int, str, int]]:
    """(event, kind, operator) of the entries another of the operator's users has read."""
    everyone = sorted({u for e in entries for u in users.get(operator_of.get(e.recipient_id, 0), ())})
    events = sorted({e.event_id for e in entries})
    if not everyone or not events:
        return set()
    inbox = table_of(InboxNotification)
    rows = session.execute(
        select(inbox.c.event_id, inbox.c.kind, inbox.c.recipient_id).where(
            inbox.c.recipient_id.in_(everyone), inbox.c.event_id.in_(events), inbox.c.read_at.is_not(None)
        )
    ).all()
    account_operator = {u: op for op, members in users.items() for u in members}
    return {(int(e), str(k), account_operator[int(r)]) for e, k, r in rows if int(r) in account_operator}


def _notices(session: Session, events: Mapping[int, OutboxEvent]) -> dict[int, list[Notice]]:
    """Each event's notices as they stand now: sweep topics through their batch handler, one query for all."""
    by_topic: dict[str, list[OutboxEvent]] = defaultdict(list)
    for event in events.values():
        by_topic[event.topic].append(event)
    found: dict[int, list[Notice]] = {}
    for topic, group in by_topic.items():
        try:
            if topic in BATCH_HANDLERS:
                for event, notices in zip(group, BATCH_HANDLERS[topic](session, group), strict=True):
                    found[event.id or 0] = notices
                continue
        except SQLAlchemyError:
            raise
        except Exception:
            log.warning("%s: batch handler failed; one event at a time", topic)
        for event in group:
            try:
                found[event.id or 0] = notices_for(session, event)
            except SQLAlchemyError:
                raise
            except Exception:
                log.exception("event %s (%s): handler failed; its SMS is skipped", event.id, event.topic)
                found[event.id or 0] = []
    return found


def _context(notices: list[Notice], kind: str, recipient_id: int) -> dict[str, str] | None:
    """The notice's context now, in Chinese (None when the notice no longer stands)."""
    for notice in notices:
        if notice.kind == kind and recipient_id in notice.recipients:
            resolved = resolve_context(notice.context, "zh-CN", DEFAULT_TZ)
            return {k: str(v) for k, v in resolved.items()}
    return None


def sweep_batch(
    session: Session, now: datetime, after: Cursor | None = None
) -> tuple[list[int], Cursor | None, int]:
    """Handle one batch: make the SMS rows, clear the entries' due time; (rows due now, cursor, entries seen)."""
    entries = due_entries(session, now, after)
    if not entries:
        return [], None, 0
    cursor: Cursor = (entries[-1].due_at, entries[-1].inbox_id)
    accounts = session.execute(
        select(col(Account.id), col(Account.operator_id)).where(
            col(Account.id).in_(sorted({e.recipient_id for e in entries})), col(Account.role) == Role.operator
        )
    ).all()
    operator_of = {int(a): int(o) for a, o in accounts if o is not None}
    operator_ids = sorted(set(operator_of.values()))
    users = operator_users_of(session, operator_ids)
    read = _read_by_someone(session, entries, users, operator_of)
    contacts = {
        c.operator_id: c.phone
        for c in session.execute(
            select(SmsContact).where(col(SmsContact.operator_id).in_(operator_ids))
        ).scalars()
    }
    bureaus = {
        int(i): str(j)
        for i, j in session.execute(
            select(col(Operator.id), col(Operator.jurisdiction_code)).where(
                col(Operator.id).in_(operator_ids)
            )
        ).all()
    }
    events = {
        e.id or 0: e
        for e in session.execute(
            select(OutboxEvent).where(col(OutboxEvent.id).in_(sorted({e.event_id for e in entries})))
        ).scalars()
    }
    notices = _notices(session, events)
    rows: list[dict[str, Any]] = []
    release = release_time(now, get_settings().timezone, urgent=False)
    for entry in entries:
        operator_id = operator_of.get(entry.recipient_id)
        if operator_id is None or (entry.event_id, entry.kind, operator_id) in read:
            continue  # reached in the app (or no longer an operator's user): no SMS
        template = BY_KIND.get(entry.kind)
        if template is None:
            continue
        phone = contacts.get(operator_id)
        status, reason, params = SmsStatus.pending, None, {}
        context = _context(notices.get(entry.event_id, []), entry.kind, entry.recipient_id)
        if context is None:
            status, reason = SmsStatus.skipped, "notice_stale"
        elif phone is None:
            status, reason = SmsStatus.skipped, "no_phone"
        else:
            try:
                params = params_for(entry.kind, context)
            except VariableTooLong as exc:
                status, reason = SmsStatus.skipped, f"variable_too_long:{exc.variable}"
                log.error("sms for inbox %s refused: %s", entry.inbox_id, exc)
        rows.append(
            {
                "dedupe_key": sms_dedupe_key(entry.event_id, entry.kind, operator_id),
                "event_id": entry.event_id,
                "kind": entry.kind,
                "operator_id": operator_id,
                "inbox_id": entry.inbox_id,
                "jurisdiction_code": bureaus.get(operator_id, ""),
                "trigger": entry.trigger,
                "template_key": template.key,
                "params": params,
                "phone": phone if status is SmsStatus.pending else None,
                "phone_masked": mask(phone),
                "status": status.value,
                "reason": reason,
                "attempts": 0,
                "next_attempt_at": max(release, now),
                "created_at": now,
                "updated_at": now,
            }
        )
    # One statement for the batch (json_populate_recordset on PostgreSQL), skipping notices already made.
    made = insert_ignore(session, table_of(SmsMessage), rows)
    inbox = table_of(InboxNotification)
    session.execute(
        update(inbox).where(inbox.c.id.in_([e.inbox_id for e in entries])).values(sms_due_at=None)
    )
    due_now = [
        made[r["dedupe_key"]]
        for r in rows
        if r["dedupe_key"] in made and r["status"] == "pending" and r["next_attempt_at"] <= now
    ]
    return sorted(due_now), cursor, len(entries)


def sweep(session_factory: Any, now: datetime, max_batches: int = 50) -> tuple[list[int], int]:
    """Run batches (each its own transaction) until nothing is due; (rows due now, entries handled)."""
    due: list[int] = []
    seen = 0
    after: Cursor | None = None
    for _ in range(max_batches):
        with session_factory() as session:
            ids, after, count = sweep_batch(session, now, after)
        due.extend(ids)
        seen += count
        if after is None or count < SWEEP_BATCH:
            break
    return due, seen
