"""From notices to the inbox and to pushes, exactly once per (event, recipient, channel, device).

1. :func:`dispatch_event` renders each notice in each recipient's locale and time zone, writes the inbox
   entry (always) and, when push is on and the recipient's preferences allow it, one ``push_delivery`` row
   per active device. Every row carries a dedupe key, so handling the same event again writes nothing new.
   :func:`dispatch_many` does this for a batch of events in one transaction, with one query for all their
   recipients and devices and one insert for all their inbox entries and push rows.
2. :func:`send_pushes` claims rows with one conditional ``UPDATE … WHERE status = 'pending' RETURNING``
   (on PostgreSQL over rows locked ``FOR UPDATE SKIP LOCKED``, so concurrent senders split the rows instead
   of waiting on each other) and commits the claim before calling the provider (FCM or JPush, by device), so
   two senders (a redelivered task, the retry sweep) never both send a row; it then records what the provider
   answered: sent, token dead (device deactivated), retry later (Retry-After or backoff), refused.
3. :func:`queue_due` hands out rows whose time has come (quiet hours over, retry delay passed); rows a
   sender claimed and never answered for (the process died) go back to pending after :data:`STALE_AFTER`.

A crash after the provider accepted a message but before the answer was recorded is the one case that sends
twice; the collapse key (FCM's Android tag, the APNs collapse id) makes the second replace the first on the phone.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, case, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from backend import faults
from backend.auth.models import Account, Role
from backend.db import UnitOfWork, aware, is_postgres, session_scope, skip_locked, table_of, utcnow
from backend.notices.handlers import BATCH_HANDLERS, ContextValue, Localized, Notice, notices_for
from backend.notices.models import Device, InboxNotification, NotificationPreference, PushDelivery, PushStatus
from backend.notices.sms.schedule import Recipient
from backend.notices.sms.schedule import due_times as sms_due_times
from backend.outbox.models import OutboxEvent
from notifications.channels import DEEP_LINK_KEY, Channel, DeliveryResult, DeliveryStatus, OutgoingMessage
from notifications.compose import Device as PushTarget
from notifications.compose import inbox_message, push_messages
from notifications.policy import DEFAULT_TZ, is_allowed, release_time, resolve_zone, retry_delay
from notifications.templates import (
    SUPPORTED_LOCALES,
    RenderedMessage,
    TemplateError,
    render,
    resolve_locale,
    spec_for,
)

log = logging.getLogger(__name__)


#: A claimed row whose sender never reported back is handed out again after this (> the task time limit).
STALE_AFTER = timedelta(minutes=10)
#: A row the retry sweep queued is not queued again for this long (its task should have claimed it by then).
QUEUE_LEASE = timedelta(minutes=5)
#: Rows handed to one send task: one ``send_each_async`` round of up to 500 messages.
SEND_CHUNK = 500
#: Outbox events handled in one transaction by :func:`dispatch_many` (``gongping.notifications.dispatch_batch``).
DISPATCH_BATCH = 200
#: Ids per ``IN (...)`` list: stays far below SQLite's bound-parameter limit.
_IN_CHUNK = 5000


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
    # The handler raised and the event was skipped (batches only; see dispatch_events' skip_broken).
    error: bool = False


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


def _inbox_texts(notice: Notice, zone_name: str | None) -> dict[str, dict[str, str]]:
    """The inbox entry's title and body in each supported locale (times in the recipient's zone)."""
    texts: dict[str, dict[str, str]] = {}
    for locale in SUPPORTED_LOCALES:
        rendered = _render(notice, locale, zone_name)
        texts[locale] = {"title": rendered.title, "body": rendered.body}
    return texts


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


def _inbox_ids(session: Session, dedupe_keys: Sequence[str]) -> dict[str, int]:
    """Ids of existing inbox entries by dedupe key (entries an earlier run of the event wrote)."""
    found: dict[str, int] = {}
    for start in range(0, len(dedupe_keys), _IN_CHUNK):
        part = dedupe_keys[start : start + _IN_CHUNK]
        rows = session.execute(
            select(col(InboxNotification.dedupe_key), col(InboxNotification.id)).where(
                col(InboxNotification.dedupe_key).in_(part)
            )
        ).all()
        found.update({str(key): int(i) for key, i in rows})
    return found


def _recipients(session: Session, ids: Iterable[int]) -> dict[int, tuple[Account, frozenset[str]]]:
    """The active recipients among ``ids`` with the categories each has muted, in one query per chunk."""
    wanted = sorted(set(ids))
    found: dict[int, tuple[Account, frozenset[str]]] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = session.execute(
            select(Account, col(NotificationPreference.muted_categories))
            .outerjoin(NotificationPreference, col(NotificationPreference.account_id) == col(Account.id))
            .where(col(Account.id).in_(wanted[start : start + _IN_CHUNK]), col(Account.is_active))
        ).all()
        found.update({account.id or 0: (account, frozenset(muted or ())) for account, muted in rows})
    return found


def _devices(
    session: Session, account_ids: Iterable[int], providers: Collection[str] | None
) -> dict[int, list[Device]]:
    """Active devices of the accounts, only those of a provider that is on (``None``: any provider)."""
    wanted = sorted(set(account_ids))
    found: dict[int, list[Device]] = defaultdict(list)
    for start in range(0, len(wanted), _IN_CHUNK):
        query = select(Device).where(
            col(Device.account_id).in_(wanted[start : start + _IN_CHUNK]), col(Device.active)
        )
        if providers is not None:
            query = query.where(col(Device.provider).in_(sorted(providers)))
        rows = session.execute(query.order_by(col(Device.id))).scalars()
        for device in rows:
            found[device.account_id].append(device)
    return found


def event_ref(event_id: int, kind: str) -> str:
    """The event part of a dedupe key: one event may notify several kinds, each to be sent once."""
    return f"outbox:{event_id}:{kind}"


def recipient_ref(account_id: int) -> str:
    """The recipient part of a dedupe key."""
    return f"account:{account_id}"


@dataclass
class _Planned:
    """One notice rendered for each recipient (inbox) and each of their devices (push)."""

    event: OutboxEvent
    notice: Notice
    urgent: bool
    recipients: list[tuple[Account, RenderedMessage, list[tuple[Device, RenderedMessage]]]]
    #: Each recipient's inbox text in every locale, so the inbox reads in the language the app asks for.
    texts: dict[int, dict[str, dict[str, str]]] = field(default_factory=dict)


def dispatch_event(
    session: Session,
    event: OutboxEvent,
    *,
    push_enabled: bool,
    now: datetime | None = None,
    providers: Collection[str] | None = None,
) -> DispatchReport:
    """Write the inbox entries and push rows an event calls for; safe to run any number of times."""
    return dispatch_events(session, [event], push_enabled=push_enabled, now=now, providers=providers)[0]


def dispatch_events(
    session: Session,
    events: Sequence[OutboxEvent],
    *,
    push_enabled: bool,
    now: datetime | None = None,
    skip_broken: bool = False,
    providers: Collection[str] | None = None,
) -> list[DispatchReport]:
    """:func:`dispatch_event` for many events at once: one report per event, in order.

    Recipients, preferences and devices are read with one query for all the events, and the inbox entries
    and push rows of all of them are written with one insert each, so a batch costs a few round trips
    instead of a handful per event. Dedupe keys are the same as one at a time, so handling an event again,
    alone or in another batch, writes nothing new. With ``skip_broken`` a handler that raises (a malformed
    payload) costs only its own event, which is logged; database errors always propagate. Push rows are
    written only for devices of the ``providers`` that are on (``None``: every provider).
    """
    now = now or utcnow()
    reports = [DispatchReport(topic=event.topic) for event in events]
    made = _notices(session, events, reports, skip_broken=skip_broken)
    notices = [(index, notice) for index, found in enumerate(made) for notice in found]
    accounts = _recipients(session, (r for _i, notice in notices for r in notice.recipients))
    allowed: list[tuple[int, Notice, list[tuple[Account, bool]]]] = []
    device_owners: set[int] = set()
    for index, notice in notices:
        people = [
            (accounts[r][0], is_allowed(notice.kind, accounts[r][1]))
            for r in sorted(set(notice.recipients))
            if r in accounts
        ]
        allowed.append((index, notice, people))
        device_owners.update(account.id or 0 for account, ok in people if ok)
    devices = _devices(session, device_owners, providers) if push_enabled and device_owners else {}
    plans: list[tuple[int, _Planned]] = []
    for index, notice, people in allowed:
        event = events[index]
        try:
            urgent = spec_for(notice.kind).urgent
            # Render everything before writing anything, so a template error leaves no half-delivered notice.
            rendered = [
                (
                    account,
                    _render(notice, account.locale, account.timezone),
                    [
                        (device, _render(notice, device.locale, device.timezone or account.timezone))
                        for device in (devices.get(account.id or 0, []) if ok else [])
                    ],
                )
                for account, ok in people
            ]
            texts = {account.id or 0: _inbox_texts(notice, account.timezone) for account, _ok in people}
        except TemplateError as exc:
            # A handler bug (or a context that would leak a complainant's identity): nothing of this notice
            # is sent, the others still are, and the log says why.
            log.error("event %s (%s): notice %s not rendered: %s", event.id, event.topic, notice.kind, exc)
            continue
        plans.append((index, _Planned(event, notice, urgent, rendered, texts)))
    _write(session, plans, reports, now)
    return reports


def _notices(
    session: Session, events: Sequence[OutboxEvent], reports: list[DispatchReport], *, skip_broken: bool
) -> list[list[Notice]]:
    """Each event's notices: sweep topics through their batch handler, the rest one event at a time."""
    made: list[list[Notice] | None] = [None] * len(events)
    by_topic: dict[str, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        if event.topic in BATCH_HANDLERS:
            by_topic[event.topic].append(index)
    for topic, indexes in by_topic.items():
        try:
            answers = BATCH_HANDLERS[topic](session, [events[i] for i in indexes])
        except SQLAlchemyError:
            raise
        except Exception:
            # One malformed payload: the one-event handlers below find out which.
            log.warning("%s: batch handler failed; handling its %d events one by one", topic, len(indexes))
            continue
        for index, answer in zip(indexes, answers, strict=True):
            made[index] = answer
    result: list[list[Notice]] = []
    for index, event in enumerate(events):
        found = made[index]
        if found is None:
            try:
                found = notices_for(session, event)
            except SQLAlchemyError:
                raise
            except Exception:
                if not skip_broken:
                    raise
                log.exception("event %s (%s): handler failed; its notices are skipped", event.id, event.topic)
                reports[index].error = True
                found = []
        reports[index].notices += len(found)
        result.append(found)
    return result


def _write(
    session: Session, plans: Sequence[tuple[int, _Planned]], reports: list[DispatchReport], now: datetime
) -> None:
    """Insert the inbox entries, then the push rows (which point at their inbox entry), of all plans."""
    inbox_rows: dict[str, dict[str, Any]] = {}
    inbox_owner: dict[str, int] = {}
    sms_due = _sms_due_times(plans, now)
    for index, plan in plans:
        event_id = plan.event.id or 0
        ref = event_ref(event_id, plan.notice.kind)
        for account, rendered, _targets in plan.recipients:
            reports[index].recipients += 1
            message = inbox_message(rendered, event_id=ref, recipient_ref=recipient_ref(account.id or 0))
            data = dict(message.data)
            inbox_owner.setdefault(message.dedupe_key, index)
            inbox_rows.setdefault(
                message.dedupe_key,
                {
                    "recipient_id": account.id,
                    "event_id": event_id,
                    "kind": data["kind"],
                    "category": data["category"],
                    "locale": rendered.locale,
                    "title": message.title,
                    "body": message.body,
                    "texts": plan.texts.get(account.id or 0),
                    "deep_link": data.get(DEEP_LINK_KEY, ""),
                    "data": data,
                    "dedupe_key": message.dedupe_key,
                    "created_at": now,
                    "sms_due_at": sms_due.get(message.dedupe_key),
                },
            )
    try:
        inbox_ids = _insert_ignore(session, table_of(InboxNotification), list(inbox_rows.values()))
    except SQLAlchemyError as exc:
        raise InboxUnavailable(f"inbox write failed: {type(exc).__name__}: {exc}") from exc
    for key in inbox_ids:
        reports[inbox_owner[key]].inbox_written += 1
    inbox_ids |= _inbox_ids(session, [key for key in inbox_rows if key not in inbox_ids])

    push_rows: dict[str, dict[str, Any]] = {}
    push_owner: dict[str, int] = {}
    for index, plan in plans:
        event_id = plan.event.id or 0
        ref = event_ref(event_id, plan.notice.kind)
        for account, rendered, targets in plan.recipients:
            who = recipient_ref(account.id or 0)
            inbox_key = inbox_message(rendered, event_id=ref, recipient_ref=who).dedupe_key
            for device, device_rendered in targets:
                target = PushTarget(
                    device_ref=f"device:{device.id}", token=device.token, platform=device.platform.value
                )
                [push] = push_messages(device_rendered, event_id=ref, recipient_ref=who, devices=[target])
                release = release_time(now, device.timezone or account.timezone, plan.urgent)
                push_owner.setdefault(push.dedupe_key, index)
                push_rows.setdefault(
                    push.dedupe_key,
                    {
                        "dedupe_key": push.dedupe_key,
                        "event_id": event_id,
                        "recipient_id": account.id,
                        "device_id": device.id,
                        "inbox_id": inbox_ids.get(inbox_key),
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
                    },
                )
    created = _insert_ignore(session, table_of(PushDelivery), list(push_rows.values()))
    for key, row in push_rows.items():
        report = reports[push_owner[key]]
        push_id = created.get(key)
        if push_id is None:
            # Written by an earlier run (a redelivered event): its state must be read back.
            report.rerun = True
            continue
        report.pushes_created += 1
        report.push_ids.append(push_id)
        if row["next_attempt_at"] <= now:
            report.due_ids.append(push_id)


def _sms_due_times(plans: Sequence[tuple[int, _Planned]], now: datetime) -> dict[str, datetime]:
    """When each plan's required notices fall back to SMS, by inbox dedupe key (``backend.notices.sms``)."""
    due: dict[str, datetime] = {}
    for _index, plan in plans:
        ref = event_ref(plan.event.id or 0, plan.notice.kind)
        people = [
            Recipient(
                inbox_key=inbox_message(
                    rendered, event_id=ref, recipient_ref=recipient_ref(account.id or 0)
                ).dedupe_key,
                account_id=account.id or 0,
                operator_id=account.operator_id if account.role is Role.operator else None,
                pushed=bool(targets),
            )
            for account, rendered, targets in plan.recipients
        ]
        due |= sms_due_times(plan.notice.kind, people, now)
    return due


def due_for_event(session: Session, event_id: int, now: datetime) -> list[int]:
    """Pending push rows of one event that may go out now (new ones, or left by an interrupted run)."""
    return due_for_events(session, [event_id], now).get(event_id, [])


def due_for_events(session: Session, event_ids: Sequence[int], now: datetime) -> dict[int, list[int]]:
    """:func:`due_for_event` for many events, by event id."""
    due: dict[int, list[int]] = defaultdict(list)
    for start in range(0, len(event_ids), _IN_CHUNK):
        rows = session.execute(
            select(col(PushDelivery.event_id), col(PushDelivery.id))
            .where(
                col(PushDelivery.event_id).in_(event_ids[start : start + _IN_CHUNK]),
                col(PushDelivery.status) == PushStatus.pending,
                col(PushDelivery.next_attempt_at) <= now,
            )
            .order_by(col(PushDelivery.id))
        ).all()
        for event_id, push_id in rows:
            due[int(event_id)].append(int(push_id))
    return dict(due)


# --- sending -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claimed:
    row: PushDelivery
    device: Device


def claim(session: Session, ids: Sequence[int], now: datetime) -> list[_Claimed]:
    """Take pending, due rows among ``ids`` for this sender (others' claims and sent rows are skipped).

    One statement: rows whose time to live ran out become ``expired``, the others ``sending``.
    """
    if not ids:
        return []
    table = table_of(PushDelivery)
    candidates = skip_locked(
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
        provider=device.provider.value,
    )


def _detail(result: DeliveryResult) -> str:
    return f"{result.error_code or result.status.value}: {result.detail or ''}"[:500]


def record_results(
    session: Session, claimed: Sequence[_Claimed], results: Sequence[DeliveryResult], now: datetime
) -> SendReport:
    """Store what the provider answered for each claimed row; dead tokens deactivate their device."""
    report = SendReport()
    table = table_of(PushDelivery)
    updates: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    for item, result in zip(claimed, results, strict=True):
        row = item.row
        values: dict[str, Any] = {
            "b_id": row.id,
            "b_status": PushStatus.sent.value,
            "b_next": aware(row.next_attempt_at),
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
                    "b_reason": f"{item.device.provider.value}:{result.error_code or 'invalid'}"[:32],
                }
            )
            report.invalid_token += 1
        elif result.status is DeliveryStatus.RETRY:
            delay = result.retry_after_s if result.retry_after_s is not None else 60.0
            at = now + timedelta(seconds=delay)
            if at >= aware(row.expires_at):
                values |= {"b_status": PushStatus.expired.value, "b_error": _detail(result)}
                report.expired += 1
            else:
                values |= {"b_status": PushStatus.pending.value, "b_next": at, "b_error": _detail(result)}
                report.retry[row.id or 0] = delay
        else:
            values |= {"b_status": PushStatus.failed.value, "b_error": _detail(result)}
            log.error("push %s refused by %s: %s", row.id, item.device.provider.value, _detail(result))
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
    faults.pause("push.claimed")
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
    lost = skip_locked(
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
    due = skip_locked(
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
    providers: Collection[str] | None = None,
) -> tuple[DispatchReport, list[int]]:
    """Handle one outbox event in its own transaction; returns the report and the push rows due now."""
    reports = dispatch_many(
        [event_id], push_enabled=push_enabled, now=now, unit_of_work=unit_of_work, providers=providers
    )
    if not reports:
        return DispatchReport(), []
    return reports[0], reports[0].due_ids


def dispatch_many(
    event_ids: Sequence[int],
    *,
    push_enabled: bool,
    now: datetime | None = None,
    unit_of_work: UnitOfWork = session_scope,
    skip_broken: bool = False,
    providers: Collection[str] | None = None,
) -> list[DispatchReport]:
    """Handle outbox events in one transaction; one report per event found, in id order.

    Each report's ``due_ids`` are the event's push rows that may go out now: the ones this run wrote, or,
    when an earlier run of the event had written some (``rerun``), every pending due row of the event.
    """
    now = now or utcnow()
    wanted = sorted(set(event_ids))
    if not wanted:
        return []
    with unit_of_work() as session:
        events = list(
            session.execute(
                select(OutboxEvent).where(col(OutboxEvent.id).in_(wanted)).order_by(col(OutboxEvent.id))
            ).scalars()
        )
        reports = dispatch_events(
            session, events, push_enabled=push_enabled, now=now, skip_broken=skip_broken, providers=providers
        )
        rerun = [event.id or 0 for event, report in zip(events, reports, strict=True) if report.rerun]
        if push_enabled and rerun:
            # A rerun may find rows an interrupted first run left pending; a first run knows its own rows.
            due = due_for_events(session, rerun, now)
            for event, report in zip(events, reports, strict=True):
                if report.rerun:
                    report.due_ids = due.get(event.id or 0, [])
    return reports
