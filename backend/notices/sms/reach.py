"""Staff see reach: for each required notice to an operator, which channel reached it and when; SMS per bureau.

A notice is reached when one of the operator's users read it in the app, or its SMS was delivered; a push FCM
accepted is shown with its time but proves only that the phone was sent it. A notice whose SMS is
``not_reached`` or was ``skipped`` (no phone, a cap) and that nobody read is ``follow_up``: staff phone or write,
and record it (``POST /api/v1/cases/{id}/operator-notified`` for the end of mediation).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, select
from sqlmodel import Session, col

from backend.auth.models import Account, Role
from backend.auth.scope import Scope
from backend.cases.models import Case
from backend.config import get_settings
from backend.db import aware
from backend.jurisdictions.models import Jurisdiction
from backend.notices.models import InboxNotification, PushDelivery, PushStatus
from backend.notices.sms.models import SmsMessage, SmsStatus
from backend.notices.sms.schemas import SmsBureauMonthRead
from backend.notices.sms.sweep import sms_dedupe_key
from backend.notices.sms.templates import BY_KIND
from backend.operators.models import Operator


@dataclass
class Reach:
    """How one required notice reached one operator."""

    event_id: int
    kind: str
    operator_id: int
    operator_name: str
    jurisdiction_code: str
    notified_at: datetime
    read_at: datetime | None = None
    push_devices: int = 0
    push_delivered_at: datetime | None = None
    sms_status: str | None = None
    sms_reason: str | None = None
    sms_trigger: str | None = None
    sms_phone: str | None = None
    sms_sent_at: datetime | None = None
    sms_delivered_at: datetime | None = None
    reached_by: str | None = None
    reached_at: datetime | None = None
    follow_up: bool = False
    last_inbox_id: int = 0
    #: The notice's title by locale (the inbox's texts; older rows have only their own locale's title).
    titles: dict[str, str] = field(default_factory=dict)
    #: The complaint case the notice is about (end of mediation), for staff to record "operator told" on it.
    case_no: str | None = None
    case_id: int | None = None


def _in_scope(scope: Scope) -> list[ColumnElement[bool]]:
    return [] if scope.path == "/" else [col(Jurisdiction.path).startswith(scope.path)]


def reach_page(
    session: Session,
    scope: Scope,
    *,
    operator_id: int | None = None,
    follow_up_only: bool = False,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[list[Reach], int | None]:
    """Required notices to operators in ``scope``, newest first, keyset-paged by inbox id; (page, next cursor)."""
    inbox = InboxNotification
    where = [
        col(inbox.kind).in_(sorted(BY_KIND)),
        col(Account.role) == Role.operator,
        *_in_scope(scope),
    ]
    if operator_id is not None:
        where.append(col(Account.operator_id) == operator_id)
    found: dict[tuple[int, str, int], Reach] = {}
    cursor = before_id
    # Several users of one operator share one notice: read in slices until ``limit`` notices are complete.
    for _ in range(20):
        stmt = (
            select(inbox, Operator, col(Account.operator_id))
            .join(Account, col(Account.id) == col(inbox.recipient_id))
            .join(Operator, col(Operator.id) == col(Account.operator_id))
            .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
            .where(*where)
            .order_by(col(inbox.id).desc())
            .limit(limit * 4)
        )
        if cursor is not None:
            stmt = stmt.where(col(inbox.id) < cursor)
        rows = session.execute(stmt).all()
        if not rows:
            cursor = None
            break
        for entry, operator, op_id in rows:
            key = (int(entry.event_id or 0), entry.kind, int(op_id))
            item = found.get(key)
            if item is None:
                item = found[key] = Reach(
                    event_id=key[0],
                    kind=entry.kind,
                    operator_id=key[2],
                    operator_name=operator.name,
                    jurisdiction_code=operator.jurisdiction_code,
                    notified_at=aware(entry.created_at),
                    titles=_titles(entry),
                    case_no=str(entry.data["case_no"]) if entry.data.get("case_no") else None,
                )
            if entry.read_at is not None and (item.read_at is None or aware(entry.read_at) < item.read_at):
                item.read_at = aware(entry.read_at)
            item.last_inbox_id = min(item.last_inbox_id or entry.id or 0, entry.id or 0)
            _push(session, item, entry.id or 0)
        cursor = int(rows[-1][0].id or 0)
        if len(found) > limit or len(rows) < limit * 4:
            break
    items = sorted(found.values(), key=lambda r: r.last_inbox_id, reverse=True)
    complete = items[:limit] if len(items) > limit else items
    next_cursor = complete[-1].last_inbox_id if len(items) > limit else None
    _sms(session, complete)
    _cases(session, complete)
    for item in complete:
        _judge(item)
    if follow_up_only:
        complete = [i for i in complete if i.follow_up]
    return complete, next_cursor


def _titles(entry: InboxNotification) -> dict[str, str]:
    found = {loc: t["title"] for loc, t in (entry.texts or {}).items() if t.get("title")}
    found.setdefault(entry.locale, entry.title)
    return found


def _cases(session: Session, items: Sequence[Reach]) -> None:
    numbers = {i.case_no for i in items if i.case_no}
    if not numbers:
        return
    ids = dict(
        session.execute(select(col(Case.case_no), col(Case.id)).where(col(Case.case_no).in_(sorted(numbers))))
        .tuples()
        .all()
    )
    for item in items:
        if item.case_no is not None:
            item.case_id = ids.get(item.case_no)


def _push(session: Session, item: Reach, inbox_id: int) -> None:
    rows = session.execute(
        select(col(PushDelivery.status), col(PushDelivery.sent_at)).where(
            col(PushDelivery.inbox_id) == inbox_id
        )
    ).all()
    item.push_devices += len(rows)
    for status, sent_at in rows:
        if status == PushStatus.sent and sent_at is not None:
            at = aware(sent_at)
            if item.push_delivered_at is None or at < item.push_delivered_at:
                item.push_delivered_at = at


def _sms(session: Session, items: Sequence[Reach]) -> None:
    keys = {sms_dedupe_key(i.event_id, i.kind, i.operator_id): i for i in items}
    if not keys:
        return
    for row in session.execute(
        select(SmsMessage).where(col(SmsMessage.dedupe_key).in_(sorted(keys)))
    ).scalars():
        item = keys[row.dedupe_key]
        item.sms_status = row.status.value
        item.sms_reason = row.reason
        item.sms_trigger = row.trigger
        item.sms_phone = row.phone_masked or None
        item.sms_sent_at = aware(row.sent_at) if row.sent_at else None
        item.sms_delivered_at = aware(row.delivered_at) if row.delivered_at else None


def _judge(item: Reach) -> None:
    if item.read_at is not None:
        item.reached_by, item.reached_at = "inbox_read", item.read_at
    elif item.sms_delivered_at is not None:
        item.reached_by, item.reached_at = "sms_delivered", item.sms_delivered_at
    elif item.push_delivered_at is not None:
        item.reached_by, item.reached_at = "push_delivered", item.push_delivered_at
    item.follow_up = item.read_at is None and item.sms_status in (SmsStatus.not_reached, SmsStatus.skipped)


# --- the monthly report ----------------------------------------------------------------------------------


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month's first and next month's first instant, in the bureau's zone."""
    zone = ZoneInfo(get_settings().timezone)
    start = datetime.combine(month.replace(day=1), time(0), tzinfo=zone)
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start, datetime.combine(following, time(0), tzinfo=zone)


def monthly_report(session: Session, scope: Scope, month: date) -> list[SmsBureauMonthRead]:
    """SMS sent (accepted by the provider: what is billed), delivered, not reached and skipped per bureau."""
    start, end = month_bounds(month)
    sm = SmsMessage
    rows = session.execute(
        select(
            col(sm.jurisdiction_code),
            col(Jurisdiction.bureau_name),
            func.sum(case((col(sm.sent_at).is_not(None), 1), else_=0)),
            func.sum(case((col(sm.status) == SmsStatus.delivered, 1), else_=0)),
            func.sum(case((col(sm.status) == SmsStatus.not_reached, 1), else_=0)),
            func.sum(case((col(sm.status) == SmsStatus.skipped, 1), else_=0)),
        )
        .join(Jurisdiction, col(Jurisdiction.code) == col(sm.jurisdiction_code))
        .where(col(sm.created_at) >= start, col(sm.created_at) < end, *_in_scope(scope))
        .group_by(col(sm.jurisdiction_code), col(Jurisdiction.bureau_name))
        .order_by(col(sm.jurisdiction_code))
    ).all()
    label = month.strftime("%Y-%m")
    return [
        SmsBureauMonthRead(
            jurisdiction_code=str(c),
            bureau_name=str(n),
            month=label,
            sent=int(s or 0),
            delivered=int(d or 0),
            not_reached=int(x or 0),
            skipped=int(k or 0),
        )
        for c, n, s, d, x, k in rows
    ]


CSV_HEADERS = ("行政区划代码", "监管局", "月份", "发送条数（计费）", "送达条数", "未送达条数", "未发送条数")


def report_csv(rows: Sequence[SmsBureauMonthRead]) -> str:
    """The report as CSV with Chinese headers (UTF-8 with BOM, so spreadsheet programs read it)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_HEADERS)
    for r in rows:
        writer.writerow(
            (r.jurisdiction_code, r.bureau_name, r.month, r.sent, r.delivered, r.not_reached, r.skipped)
        )
    return out.getvalue()


def counts_by_reason(session: Session, scope: Scope, month: date) -> dict[str, int]:
    """Skipped and not-reached SMS of the month by reason (caps, budget, no phone…), in ``scope``."""
    start, end = month_bounds(month)
    rows = session.execute(
        select(col(SmsMessage.reason), func.count())
        .join(Jurisdiction, col(Jurisdiction.code) == col(SmsMessage.jurisdiction_code))
        .where(
            col(SmsMessage.created_at) >= start,
            col(SmsMessage.created_at) < end,
            col(SmsMessage.reason).is_not(None),
            *_in_scope(scope),
        )
        .group_by(col(SmsMessage.reason))
    ).all()
    found: dict[str, int] = defaultdict(int)
    for reason, n in rows:
        found[str(reason)] += int(n)
    return dict(found)
