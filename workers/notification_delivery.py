"""From notices to the inbox and to pushes, exactly once per (event, recipient, channel, device).

1. :func:`dispatch_event` renders each notice in each recipient's locale and time zone, writes the inbox
   entry (always) and, when push is on and the recipient's preferences allow it, one ``push_delivery`` row
   per active device. Every row carries a dedupe key, so handling the same event again writes nothing new.
2. :func:`send_pushes` claims rows with one conditional ``UPDATE … WHERE status = 'pending' RETURNING``
   (on PostgreSQL over rows locked ``FOR UPDATE SKIP LOCKED``, so concurrent senders split the rows instead
   of waiting on each other) and commits the claim before calling FCM, so two senders (a redelivered task,
   the retry sweep) never both send a row; it then records what FCM answered: sent, token dead (device
   deactivated), retry later (FCM's Retry-After or backoff), refused.
3. :func:`queue_due` hands out rows whose time has come (quiet hours over, retry delay passed); rows a
   sender claimed and never answered for (the process died) go back to pending after :data:`STALE_AFTER`.

A crash after FCM accepted a message but before the answer was recorded is the one case that sends twice;
the collapse key (Android tag, APNs collapse id) makes the second replace the first on the phone.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, bindparam, case, select, text, update
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col

from backend.auth.models import Account
from backend.db import is_postgres, session_scope, table_of, utcnow
from backend.inbox.models import Device, InboxNotification, NotificationPreference, PushDelivery, PushStatus
from backend.outbox.models import OutboxEvent
from notifications.channels import Channel, DeliveryResult, DeliveryStatus, OutgoingMessage
from notifications.compose import Device as PushTarget
from notifications.compose import inbox_message, push_messages
from notifications.inbox import InboxChannel
from notifications.policy import DEFAULT_TZ, is_allowed, release_time, resolve_zone, retry_delay
from notifications.templates import RenderedMessage, TemplateError, render, resolve_locale, spec_for
from workers.notification_handlers import ContextValue, Localized, Notice, notices_for

log = logging.getLogger(__name__)

UnitOfWork = Callable[[], AbstractContextManager[Session]]

#: A claimed row whose sender never reported back is handed out again after this (> the task time limit).
STALE_AFTER = timedelta(minutes=10)
#: A row the retry sweep queued is not queued again for this long (its task should have claimed it by then).
QUEUE_LEASE = timedelta(minutes=5)
#: Rows handed to one send task: one ``send_each`` round of up to 500 messages.
SEND_CHUNK = 500


class InboxUnavailable(RuntimeError):
    """The inbox could not be written; the whole event is retried (nothing of it is committed)."""


@dataclass
class DispatchReport:
    """What handling one event did."""

    topic: str = ""
    notices: int = 0
    recipients: int = 0
    inbox_written: int = 0
    pushes_created: int = 0
    push_ids: list[int] = field(default_factory=list)
    due_ids: list[int] = field(default_factory=list)
    # Some push rows existed already (a redelivered event): their state must be read back.
    rerun: bool = False


@dataclass
class SendReport:
    """What one send round did; ``retry`` maps row ids to the seconds until their next try."""

    sent: int = 0
    invalid_token: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0
    retry: dict[int, float] = field(default_factory=dict)


# --- rendering ---------------------------------------------------------------------------------------------


def format_instant(value: datetime, zone_name: str | None, locale: str) -> str:
    """An instant as the recipient reads it: local wall time, with the zone named when it is not China's."""
    zone = resolve_zone(zone_name)
    local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)
    text = local.strftime("%Y-%m-%d %H:%M")
    if zone.key == DEFAULT_TZ:
        return text
    return f"{text}（{zone.key}）" if resolve_locale(locale) == "zh-CN" else f"{text} ({zone.key})"


def resolve_context(
    context: Mapping[str, ContextValue], locale: str, zone_name: str | None
) -> dict[str, str | int | date]:
    """The context for one recipient: Localized values picked by locale, instants in their zone."""
    resolved: dict[str, str | int | date] = {}
    english = resolve_locale(locale) == "en"
    for key, value in context.items():
        if isinstance(value, Localized):
            resolved[key] = value.en if english else value.zh
        elif isinstance(value, datetime):
            resolved[key] = format_instant(value, zone_name, locale)
        else:
            resolved[key] = value
    return resolved


def _render(notice: Notice, locale: str, zone_name: str | None) -> RenderedMessage:
    return render(notice.kind, locale, resolve_context(notice.context, locale, zone_name))


# --- writing rows ------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert rows, skipping any whose dedupe key exists; returns the new rows' ids by dedupe key."""
    if not rows:
        return {}
    if is_postgres(session):
        # SQLAlchemy never caches a compiled PostgreSQL ON CONFLICT insert (its Insert sets inherit_cache =
        # False), and compiling one costs more than the round trip. As text with one JSON parameter the
        # statement is the same for any number of rows, so the server and the driver reuse its plan.
        quote = session.get_bind().dialect.identifier_preparer.quote
        columns = ", ".join(quote(name) for name in rows[0])
        name = quote(table.name)
        stmt = text(
            f"INSERT INTO {name} ({columns}) SELECT {columns} "  # noqa: S608 - our own column names
            f"FROM json_populate_recordset(NULL::{name}, CAST(:rows AS json)) "
            "ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key, id"
        )
        payload = json.dumps(rows, default=_json_value, ensure_ascii=False)
        return {str(k): int(i) for k, i in session.execute(stmt, {"rows": payload}).all()}
    insert = (
        sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.dedupe_key, table.c.id)
    )
    # RETURNING yields only the rows actually inserted (rowcount is unreliable for multi-row inserts).
    return {str(k): int(i) for k, i in session.execute(insert, rows).all()}


class _DbInboxStore:
    """The inbox channel's store: one ``inbox_notification`` row per dedupe key."""

    def __init__(self, session: Session, *, event_id: int, recipient_id: int, locale: str) -> None:
        self._session = session
        self._event_id = event_id
        self._recipient_id = recipient_id
        self._locale = locale
        self.written: dict[str, int] = {}

    def add(self, message: OutgoingMessage) -> bool:
        """Store ``message`` unless its dedupe key is stored; True when newly stored."""
        data = dict(message.data)
        ids = _insert_ignore(
            self._session,
            table_of(InboxNotification),
            [
                {
                    "recipient_id": self._recipient_id,
                    "event_id": self._event_id,
                    "kind": data["kind"],
                    "category": data["category"],
                    "locale": self._locale,
                    "title": message.title,
                    "body": message.body,
                    "deep_link": data.get("link", ""),
                    "data": data,
                    "dedupe_key": message.dedupe_key,
                    "created_at": utcnow(),
                }
            ],
        )
        self.written.update(ids)
        return bool(ids)


def _inbox_id(session: Session, dedupe_key: str) -> int | None:
    return session.execute(
        select(col(InboxNotification.id)).where(col(InboxNotification.dedupe_key) == dedupe_key)
    ).scalar_one_or_none()


def _recipients(session: Session, ids: Iterable[int]) -> list[tuple[Account, frozenset[str]]]:
    """The active recipients among ``ids`` with the categories each has muted, in one query."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = session.execute(
        select(Account, col(NotificationPreference.muted_categories))
        .outerjoin(NotificationPreference, col(NotificationPreference.account_id) == col(Account.id))
        .where(col(Account.id).in_(wanted), col(Account.is_active))
        .order_by(col(Account.id))
    ).all()
    return [(account, frozenset(muted or ())) for account, muted in rows]


def _devices(session: Session, account_ids: Sequence[int]) -> dict[int, list[Device]]:
    found: dict[int, list[Device]] = defaultdict(list)
    rows = session.execute(
        select(Device)
        .where(col(Device.account_id).in_(account_ids), col(Device.active))
        .order_by(col(Device.id))
    ).scalars()
    for device in rows:
        found[device.account_id].append(device)
    return found


def event_ref(event_id: int, kind: str) -> str:
    """The event part of a dedupe key: one event may notify several kinds, each to be sent once."""
    return f"outbox:{event_id}:{kind}"


def recipient_ref(account_id: int) -> str:
    """The recipient part of a dedupe key."""
    return f"account:{account_id}"


def dispatch_event(
    session: Session, event: OutboxEvent, *, push_enabled: bool, now: datetime | None = None
) -> DispatchReport:
    """Write the inbox entries and push rows an event calls for; safe to run any number of times."""
    now = now or utcnow()
    report = DispatchReport()
    for notice in notices_for(session, event):
        report.notices += 1
        try:
            spec_for(notice.kind)
            _deliver(session, event, notice, push_enabled=push_enabled, now=now, report=report)
        except TemplateError as exc:
            # A handler bug (or a context that would leak a complainant's identity): nothing of this notice
            # is sent, the others still are, and the log says why.
            log.error("event %s (%s): notice %s not rendered: %s", event.id, event.topic, notice.kind, exc)
    return report


def _deliver(
    session: Session,
    event: OutboxEvent,
    notice: Notice,
    *,
    push_enabled: bool,
    now: datetime,
    report: DispatchReport,
) -> None:
    assert event.id is not None
    recipients = _recipients(session, notice.recipients)
    if not recipients:
        return
    allowed = [account.id or 0 for account, muted in recipients if is_allowed(notice.kind, muted)]
    devices = _devices(session, allowed) if push_enabled and allowed else {}
    ref = event_ref(event.id, notice.kind)
    urgent = spec_for(notice.kind).urgent
    # Render everything before writing anything, so a template error leaves no half-delivered notice.
    planned = [
        (
            account,
            _render(notice, account.locale, account.timezone),
            [
                (device, _render(notice, device.locale, device.timezone or account.timezone))
                for device in devices.get(account.id or 0, [])
            ],
        )
        for account, _muted in recipients
    ]
    push_rows: list[dict[str, Any]] = []
    for account, rendered, targets in planned:
        account_id = account.id or 0
        report.recipients += 1
        who = recipient_ref(account_id)
        message = inbox_message(rendered, event_id=ref, recipient_ref=who)
        store = _DbInboxStore(session, event_id=event.id, recipient_id=account_id, locale=rendered.locale)
        [result] = InboxChannel(store).send([message])
        if result.status is not DeliveryStatus.DELIVERED:
            raise InboxUnavailable(f"inbox write failed for event {event.id}: {result.detail}")
        report.inbox_written += len(store.written)
        inbox_id = store.written.get(message.dedupe_key) or _inbox_id(session, message.dedupe_key)
        for device, device_rendered in targets:
            target = PushTarget(
                device_ref=f"device:{device.id}", token=device.token, platform=device.platform.value
            )
            [push] = push_messages(device_rendered, event_id=ref, recipient_ref=who, devices=[target])
            release = release_time(now, device.timezone or account.timezone, urgent)
            push_rows.append(
                {
                    "dedupe_key": push.dedupe_key,
                    "event_id": event.id,
                    "recipient_id": account_id,
                    "device_id": device.id,
                    "inbox_id": inbox_id,
                    "kind": device_rendered.kind,
                    "category": device_rendered.category,
                    "title": push.title,
                    "body": push.body,
                    "data": dict(push.data),
                    "collapse_key": push.collapse_key,
                    "ttl_seconds": push.ttl_seconds,
                    "priority": push.priority,
                    "status": PushStatus.pending.value,
                    "attempts": 0,
                    "next_attempt_at": release,
                    # The time to live counts from when the push may go out, not from when it was written.
                    "expires_at": release + timedelta(seconds=push.ttl_seconds),
                    "created_at": now,
                }
            )
    created = _insert_ignore(session, table_of(PushDelivery), push_rows)
    report.pushes_created += len(created)
    report.push_ids.extend(created.values())
    if len(created) == len(push_rows):
        # All new: which are due is known without asking the database again.
        report.due_ids.extend(
            created[row["dedupe_key"]] for row in push_rows if row["next_attempt_at"] <= now
        )
    else:
        report.rerun = True


def due_for_event(session: Session, event_id: int, now: datetime) -> list[int]:
    """Pending push rows of one event that may go out now (new ones, or left by an interrupted run)."""
    return [
        int(i)
        for i in session.execute(
            select(col(PushDelivery.id))
            .where(
                col(PushDelivery.event_id) == event_id,
                col(PushDelivery.status) == PushStatus.pending,
                col(PushDelivery.next_attempt_at) <= now,
            )
            .order_by(col(PushDelivery.id))
        ).scalars()
    ]


# --- sending -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claimed:
    row: PushDelivery
    device: Device


def _locked(session: Session, stmt: Select[Any]) -> Select[Any]:
    """``stmt`` taking row locks that concurrent senders skip rather than wait for (PostgreSQL).

    Waiting would let two senders lock overlapping rows in different orders and deadlock; skipping hands
    each row to exactly one of them. SQLite serialises writers with BEGIN IMMEDIATE and has no row locks.
    """
    return stmt.with_for_update(skip_locked=True) if is_postgres(session) else stmt


def claim(session: Session, ids: Sequence[int], now: datetime) -> list[_Claimed]:
    """Take pending, due rows among ``ids`` for this sender (others' claims and sent rows are skipped).

    One statement: rows whose time to live ran out become ``expired``, the others ``sending``.
    """
    if not ids:
        return []
    table = table_of(PushDelivery)
    candidates = _locked(
        session,
        select(table.c.id).where(
            table.c.id.in_(sorted(ids)),
            table.c.status == PushStatus.pending.value,
            (table.c.next_attempt_at <= now) | (table.c.expires_at <= now),
        ),
    )
    expired = table.c.expires_at <= now
    taken = session.execute(
        update(table)
        # Still conditional on 'pending': the row lock is the guard on PostgreSQL, this is the one on SQLite.
        .where(table.c.id.in_(candidates), table.c.status == PushStatus.pending.value)
        .values(
            status=case((expired, PushStatus.expired.value), else_=PushStatus.sending.value),
            last_error=case((expired, "expired before it could be sent"), else_=table.c.last_error),
            claimed_at=case((expired, None), else_=now),
            attempts=case((expired, table.c.attempts), else_=table.c.attempts + 1),
        )
        .returning(table.c.id, table.c.status)
    ).all()
    claimed = sorted(int(i) for i, status in taken if status == PushStatus.sending.value)
    if not claimed:
        return []
    rows = session.execute(
        select(PushDelivery, Device)
        .join(Device, col(Device.id) == col(PushDelivery.device_id))
        .where(col(PushDelivery.id).in_(claimed))
        .order_by(col(PushDelivery.id))
        # The rows were just changed by a Core UPDATE: refresh any copies the session already holds.
        .execution_options(populate_existing=True)
    ).all()
    return [_Claimed(row, device) for row, device in rows]


def _message(claimed: _Claimed) -> OutgoingMessage:
    row, device = claimed.row, claimed.device
    return OutgoingMessage(
        dedupe_key=row.dedupe_key,
        recipient_ref=recipient_ref(row.recipient_id),
        token=device.token,
        title=row.title,
        body=row.body,
        data=dict(row.data),
        collapse_key=row.collapse_key,
        ttl_seconds=row.ttl_seconds,
        priority="high" if row.priority == "high" else "normal",
        platform=device.platform.value,
        attempt=max(row.attempts - 1, 0),
    )


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _detail(result: DeliveryResult) -> str:
    return f"{result.error_code or result.status.value}: {result.detail or ''}"[:500]


def record_results(
    session: Session, claimed: Sequence[_Claimed], results: Sequence[DeliveryResult], now: datetime
) -> SendReport:
    """Store what FCM answered for each claimed row; dead tokens deactivate their device."""
    report = SendReport()
    table = table_of(PushDelivery)
    updates: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    for item, result in zip(claimed, results, strict=True):
        row = item.row
        values: dict[str, Any] = {
            "b_id": row.id,
            "b_status": PushStatus.sent.value,
            "b_next": _aware(row.next_attempt_at),
            "b_sent_at": None,
            "b_error": None,
            "b_message_id": None,
        }
        if result.status is DeliveryStatus.DELIVERED:
            values |= {"b_sent_at": now, "b_message_id": (result.provider_message_id or "")[:200] or None}
            report.sent += 1
        elif result.status is DeliveryStatus.INVALID_TOKEN:
            values |= {"b_status": PushStatus.invalid_token.value, "b_error": _detail(result)}
            dead.append(
                {
                    "b_id": item.device.id,
                    "b_hash": item.device.token_hash,
                    "b_reason": f"fcm:{result.error_code or 'invalid'}"[:32],
                }
            )
            report.invalid_token += 1
        elif result.status is DeliveryStatus.RETRY:
            delay = result.retry_after_s if result.retry_after_s is not None else 60.0
            at = now + timedelta(seconds=delay)
            if at >= _aware(row.expires_at):
                values |= {"b_status": PushStatus.expired.value, "b_error": _detail(result)}
                report.expired += 1
            else:
                values |= {"b_status": PushStatus.pending.value, "b_next": at, "b_error": _detail(result)}
                report.retry[row.id or 0] = delay
        else:
            values |= {"b_status": PushStatus.failed.value, "b_error": _detail(result)}
            log.error("push %s refused by FCM: %s", row.id, _detail(result))
            report.failed += 1
        updates.append(values)
    # One lock order for every writer (rows by id, devices by id), so concurrent batches cannot deadlock.
    updates.sort(key=lambda values: int(values["b_id"]))
    dead.sort(key=lambda values: int(values["b_id"]))
    if updates:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                next_attempt_at=bindparam("b_next"),
                sent_at=bindparam("b_sent_at"),
                last_error=bindparam("b_error"),
                provider_message_id=bindparam("b_message_id"),
                claimed_at=None,
                queued_at=None,
            ),
            updates,
        )
    if dead:
        devices = table_of(Device)
        # Only the token that failed: if the app re-registered a new token meanwhile, the device stays on.
        session.execute(
            update(devices)
            .where(devices.c.id == bindparam("b_id"), devices.c.token_hash == bindparam("b_hash"))
            .values(active=False, deactivated_reason=bindparam("b_reason")),
            dead,
        )
    session.flush()
    return report


def _cancel(session: Session, claimed: Sequence[_Claimed]) -> None:
    table = table_of(PushDelivery)
    session.execute(
        update(table)
        .where(table.c.id.in_([c.row.id for c in claimed]))
        .values(status=PushStatus.cancelled.value, claimed_at=None, last_error="device deactivated")
    )


def _release_claims(
    session: Session, claimed: Sequence[_Claimed], now: datetime, error: str
) -> dict[int, float]:
    """Give claimed rows back (pending, with backoff) after the sender itself failed."""
    retry: dict[int, float] = {}
    table = table_of(PushDelivery)
    for item in claimed:
        delay = retry_delay(
            item.row.attempts, retry_after_s=None, quota=False, jitter_key=item.row.dedupe_key
        )
        session.execute(
            update(table)
            .where(table.c.id == item.row.id, table.c.status == PushStatus.sending.value)
            .values(
                status=PushStatus.pending.value,
                claimed_at=None,
                next_attempt_at=now + timedelta(seconds=delay),
                last_error=error[:500],
            )
        )
        retry[item.row.id or 0] = delay
    return retry


def send_pushes(
    channel: Channel,
    ids: Sequence[int],
    *,
    now: datetime | None = None,
    unit_of_work: UnitOfWork = session_scope,
) -> SendReport:
    """Claim ``ids`` (committed), send them through ``channel``, record the answers (committed)."""
    now = now or utcnow()
    with unit_of_work() as session:
        claimed = claim(session, ids, now)
        live = [c for c in claimed if c.device.active]
        gone = [c for c in claimed if not c.device.active]
        if gone:
            _cancel(session, gone)
    report = SendReport(cancelled=len(gone))
    if not live:
        return report
    try:
        results = channel.send([_message(c) for c in live])
    except Exception as exc:
        # The channel reports problems rather than raising; if it raised anyway, nothing is known to be sent.
        log.exception("push channel failed on %d messages", len(live))
        with unit_of_work() as session:
            report.retry = _release_claims(session, live, now, f"{type(exc).__name__}: {exc}")
        return report
    with unit_of_work() as session:
        answered = record_results(session, live, results, now)
    answered.cancelled = report.cancelled
    return answered


# --- the retry sweep ---------------------------------------------------------------------------------------


def reclaim_stale(session: Session, now: datetime, older_than: timedelta = STALE_AFTER) -> int:
    """Give back rows a sender claimed and never reported on (it died mid-send); returns how many."""
    table = table_of(PushDelivery)
    lost = _locked(
        session,
        select(table.c.id).where(
            table.c.status == PushStatus.sending.value, table.c.claimed_at <= now - older_than
        ),
    )
    result = session.execute(
        update(table)
        .where(table.c.id.in_(lost))
        .values(status=PushStatus.pending.value, claimed_at=None, last_error="sender lost; sending again")
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.warning("push: %d claimed deliveries had no answer after %s; pending again", count, older_than)
    return count


def queue_due(session: Session, now: datetime, limit: int = 50_000) -> list[int]:
    """Mark up to ``limit`` due pending rows as handed out and return their ids, oldest due first."""
    table = table_of(PushDelivery)
    due = _locked(
        session,
        select(table.c.id)
        .where(
            table.c.status == PushStatus.pending.value,
            table.c.next_attempt_at <= now,
            (table.c.queued_at.is_(None)) | (table.c.queued_at <= now - QUEUE_LEASE),
        )
        .order_by(table.c.next_attempt_at)
        .limit(limit),
    )
    ids = [
        int(i)
        for i in session.execute(
            update(table).where(table.c.id.in_(due)).values(queued_at=now).returning(table.c.id)
        ).scalars()
    ]
    return sorted(ids)


def chunks(ids: Sequence[int], size: int = SEND_CHUNK) -> list[list[int]]:
    """``ids`` in send-task sized pieces."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def dispatch(
    event_id: int,
    *,
    push_enabled: bool,
    now: datetime | None = None,
    unit_of_work: UnitOfWork = session_scope,
) -> tuple[DispatchReport, list[int]]:
    """Handle one outbox event in its own transaction; returns the report and the push rows due now."""
    now = now or utcnow()
    with unit_of_work() as session:
        event = session.get(OutboxEvent, event_id)
        if event is None:
            return DispatchReport(), []
        report = dispatch_event(session, event, push_enabled=push_enabled, now=now)
        report.topic = event.topic
        # A rerun may find rows an interrupted first run left pending; a first run knows its own rows.
        due = due_for_event(session, event_id, now) if push_enabled and report.rerun else report.due_ids
    return report, due
