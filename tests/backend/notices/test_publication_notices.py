"""``publication.changed``: the operator is told when a record about it becomes public or stops being public.

The events are made by the real publication gate (request, four-eyes approval, take-down, withdrawal by a
record change) and go through the real handler, dispatcher and FCM channel (against the stand-in).
"""

from __future__ import annotations

import itertools
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.complaints.models import Complaint, ComplaintCategory, ComplaintSource
from backend.notices import delivery
from backend.notices.delivery import resolve_context
from backend.notices.handlers import Notice, notices_for
from backend.notices.models import InboxNotification, PushDelivery
from backend.operators.models import Operator
from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.publication import service as publication
from backend.publication.models import RecordPublication
from backend.publication.schemas import PublicationApprove
from backend.records import service as records
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import RecordKind
from backend.records.service import bureau_today
from notifications.push import PushChannel
from notifications.templates import KINDS, is_identifying_key, render
from tests.factories import COUNTY_A, make_account, make_device, make_operator
from tests.support.fcm_standin import FcmStandin

SHANGHAI_NOON = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
CONFIRMED = PublicationApprove(
    no_state_or_trade_secret=True, no_personal_data=True, no_undisclosed_information_of_other_organs=True
)
#: Things about the case behind a record that must never reach the operator (Art. 18).
COMPLAINANT_NAME, COMPLAINANT_PHONE = "李四", "13900139000"
TAKE_DOWN_REASON = "公示期满，经王五科长批准撤下"
_refs = itertools.count(1)


@dataclass
class Bureau:
    """County A's author and reviewer, an operator with two active users (zh, en) and a disabled one."""

    author: Account
    reviewer: Account
    operator: Operator
    user: Account
    english_user: Account
    consumer: Account
    complaint: Complaint


@pytest.fixture
def bureau(session: Session) -> Bureau:
    author = make_account(session, Role.staff, COUNTY_A)
    reviewer = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, author, name="西溪水产批发部")
    user = make_account(session, Role.operator, operator_id=operator.id)
    english_user = make_account(session, Role.operator, operator_id=operator.id)
    english_user.locale = "en"
    disabled = make_account(session, Role.operator, operator_id=operator.id)
    disabled.is_active = False
    session.add_all([english_user, disabled])
    consumer = make_account(session, Role.consumer_device)
    complaint = Complaint(
        account_id=consumer.id or 0,
        filer_role=consumer.role,
        source=ComplaintSource.consumer,
        category=ComplaintCategory.short_weight,
        operator_id=operator.id,
        contact_name=COMPLAINANT_NAME,
        contact_phone=COMPLAINANT_PHONE,
    )
    session.add(complaint)
    session.flush()
    return Bureau(author, reviewer, operator, user, english_user, consumer, complaint)


def _record(
    session: Session, b: Bureau, operator: Operator | None = None, days_ago: int = 20
) -> IntegrityRecord:
    """A verified substantiated complaint whose summary names the complainant (staff-only text)."""
    return records.create(
        session,
        operator=operator or b.operator,
        kind=RecordKind.COMPLAINT_SUBSTANTIATED,
        fact_date=bureau_today() - timedelta(days=days_ago),
        source=RecordSource.complaint,
        # Creators are idempotent on their reference: one per record here (as if from several cases).
        source_ref=f"complaint:{b.complaint.id}:{next(_refs)}",
        state="verified",
        summary=f"投诉人{COMPLAINANT_NAME}（电话{COMPLAINANT_PHONE}）反映少称二两",
        actor=b.author,
    )


def _publish(session: Session, b: Bureau, record: IntegrityRecord) -> RecordPublication:
    publication.request(session, record=record, actor=b.author)
    return publication.approve(session, record=record, actor=b.reviewer, data=CONFIRMED)


def _events(session: Session, row: RecordPublication) -> list[OutboxEvent]:
    found = session.execute(
        select(OutboxEvent)
        .where(col(OutboxEvent.topic) == "publication.changed")
        .order_by(col(OutboxEvent.id))
    ).scalars()
    return [e for e in found if e.payload["publication_id"] == row.id]


def _rendered_text(notice: Notice) -> str:
    """Title and body in both languages (what any recipient could read)."""
    parts = []
    for locale in ("zh-CN", "en"):
        message = render(notice.kind, locale, resolve_context(notice.context, locale, "Asia/Shanghai"))
        parts += [message.title, message.body, message.deep_link]
    return "\n".join(parts)


def _assert_nothing_about_the_case(b: Bureau, notice: Notice, *also: str) -> None:
    assert KINDS[notice.kind].audience == "operator"
    assert not [key for key in notice.context if is_identifying_key(key)]
    text = _rendered_text(notice)
    for secret in (
        COMPLAINANT_NAME,
        COMPLAINANT_PHONE,
        b.consumer.username,
        b.author.username,
        b.reviewer.username,
        "投诉人",
        *also,
    ):
        assert secret not in text


def test_the_topic_goes_to_the_notification_dispatcher() -> None:
    assert relay.TOPIC_TASKS["publication.changed"] == (relay.DISPATCH_TASK,)
    assert "publication.changed" in relay.NOTIFICATION_TOPICS


def test_approval_tells_the_operators_active_users_what_is_now_public(
    session: Session, bureau: Bureau
) -> None:
    record = _record(session, bureau)
    row = _publish(session, bureau, record)
    [event] = _events(session, row)
    [notice] = notices_for(session, event)
    assert notice.kind == "record_published"
    # Every active account of the operator, and nobody else (not the disabled one, staff or the consumer).
    assert notice.recipients == (bureau.user.id, bureau.english_user.id)
    assert set(notice.context) == {"record_id", "record_kind", "fact_date", "bureau_name"}
    assert notice.context["record_id"] == str(record.id)
    assert notice.context["record_kind"] == "complaint_substantiated"
    assert notice.context["fact_date"] == record.fact_date
    assert "西湖区" in str(notice.context["bureau_name"])
    text = _rendered_text(notice)
    assert "消费者投诉经查属实" in text and "consumer complaint substantiated" in text
    assert record.fact_date.isoformat() in text and f"gongping://findings/{record.id}" in text
    _assert_nothing_about_the_case(bureau, notice)


def test_a_take_down_is_told_with_its_cause_and_the_earlier_notice_goes_stale(
    session: Session, bureau: Bureau
) -> None:
    record = _record(session, bureau)
    row = _publish(session, bureau, record)
    publication.unpublish(session, record=record, actor=bureau.author, reason=TAKE_DOWN_REASON)
    published, taken_down = _events(session, row)
    assert (published.payload["status"], taken_down.payload["status"]) == ("published", "unpublished")
    # Handled after the take-down, "it is public" would be false: only the take-down is told.
    assert notices_for(session, published) == []
    [notice] = notices_for(session, taken_down)
    assert notice.kind == "record_unpublished" and notice.recipients == (
        bureau.user.id,
        bureau.english_user.id,
    )
    assert (
        notice.context["cause"] == "unpublished"
        and notice.context["record_kind"] == "complaint_substantiated"
    )
    text = _rendered_text(notice)
    assert "市场监管部门决定撤下" in text and "taken down by the market regulation bureau" in text
    # The staff's free-text reason (which here names a person) stays with the staff.
    _assert_nothing_about_the_case(bureau, notice, TAKE_DOWN_REASON, "王五")


def test_a_withdrawal_names_the_change_and_the_record_as_the_public_saw_it(
    session: Session, bureau: Bureau
) -> None:
    revoked = _record(session, bureau, days_ago=40)
    revoked_row = _publish(session, bureau, revoked)
    records.revoke(session, revoked, actor=bureau.author, reason="经复核不实")
    [_, withdrawn] = _events(session, revoked_row)
    assert withdrawn.payload["status"] == "withdrawn"
    [notice] = notices_for(session, withdrawn)
    assert notice.kind == "record_unpublished" and notice.context["cause"] == "revoked"
    _assert_nothing_about_the_case(bureau, notice, "经复核不实")

    corrected = _record(session, bureau, days_ago=30)
    published_on = corrected.fact_date
    corrected_row = _publish(session, bureau, corrected)
    records.correct(
        session,
        corrected,
        actor=bureau.author,
        reason="日期与类别有误",
        changes={"kind": RecordKind.SHORT_WEIGHT, "fact_date": published_on - timedelta(days=1)},
    )
    [_, withdrawn] = _events(session, corrected_row)
    [notice] = notices_for(session, withdrawn)
    assert notice.context["cause"] == "corrected"
    # The kind and date the public saw, not what the correction made of them.
    assert notice.context["record_kind"] == "complaint_substantiated"
    assert notice.context["fact_date"] == published_on
    text = _rendered_text(notice)
    assert "该记录已更正" in text and "the record was corrected" in text


def test_a_good_record_is_told_in_words_too(session: Session, bureau: Bureau) -> None:
    record = records.create(
        session,
        operator=bureau.operator,
        kind=RecordKind.COMMITMENT_KEPT,
        fact_date=bureau_today() - timedelta(days=5),
        source=RecordSource.self_commitment,
        state="verified",
        actor=bureau.author,
    )
    [event] = _events(session, _publish(session, bureau, record))
    [notice] = notices_for(session, event)
    text = _rendered_text(notice)
    assert "实现诚信计量自我承诺" in text and "integrity self-commitment kept" in text


def _changed(session: Session, payload: dict[str, Any]) -> OutboxEvent:
    emit(session, "publication.changed", payload)
    event = session.exec(
        select(OutboxEvent)
        .where(col(OutboxEvent.topic) == "publication.changed")
        .order_by(col(OutboxEvent.id).desc())
    ).first()
    assert event is not None
    return event


def test_a_missing_publication_an_operator_without_accounts_or_an_odd_status_is_a_no_op(
    session: Session, bureau: Bureau, caplog: pytest.LogCaptureFixture
) -> None:
    gone = {"publication_id": 10**9, "record_id": 1, "operator_id": bureau.operator.id, "status": "published"}
    assert notices_for(session, _changed(session, gone)) == []

    nobody = make_operator(session, bureau.author, name="无账号的摊位")
    row = _publish(session, bureau, _record(session, bureau, operator=nobody))
    [event] = _events(session, row)
    assert notices_for(session, event) == []
    report = delivery.dispatch_event(session, event, push_enabled=True, now=SHANGHAI_NOON)
    assert (report.notices, report.inbox_written, report.pushes_created) == (0, 0, 0)

    own = _publish(session, bureau, _record(session, bureau))
    pending = {**_events(session, own)[0].payload, "status": "pending"}
    assert notices_for(session, _changed(session, pending)) == []
    assert "unexpected status 'pending'" in caplog.text


def _inbox(session: Session, account: Account) -> list[InboxNotification]:
    return list(
        session.execute(
            select(InboxNotification).where(col(InboxNotification.recipient_id) == account.id)
        ).scalars()
    )


def test_the_operator_gets_inbox_and_push_once_in_its_language_even_when_redelivered(
    session: Session, bureau: Bureau, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    android = make_device(session, bureau.user, token="android_" + "p" * 140, platform="android")
    ios = make_device(session, bureau.english_user, token="ios_" + "q" * 140, platform="ios", locale="en")
    record = _record(session, bureau)
    row = _publish(session, bureau, record)
    [event] = _events(session, row)

    def uow() -> AbstractContextManager[Session]:
        return nullcontext(session)  # the test's rolled-back session as the unit of work

    report, due = delivery.dispatch(event.id or 0, push_enabled=True, now=SHANGHAI_NOON, unit_of_work=uow)
    assert (report.topic, report.notices, report.inbox_written, report.pushes_created) == (
        "publication.changed",
        1,
        2,
        2,
    )
    sent = delivery.send_pushes(push_channel, due, now=SHANGHAI_NOON, unit_of_work=uow)
    assert sent.sent == 2

    # A redelivered task (or the redrive) writes and sends nothing new.
    again, due_again = delivery.dispatch(
        event.id or 0, push_enabled=True, now=SHANGHAI_NOON, unit_of_work=uow
    )
    assert (again.inbox_written, again.pushes_created, due_again) == (0, 0, [])
    assert delivery.send_pushes(push_channel, due, now=SHANGHAI_NOON, unit_of_work=uow).sent == 0
    assert fcm.stats()["delivered"] == 2

    [zh] = _inbox(session, bureau.user)
    [en] = _inbox(session, bureau.english_user)
    assert zh.kind == en.kind == "record_published" and zh.category == "publication"
    assert zh.title == "计量诚信信息已向社会公开" and "申请更正" in zh.body
    assert en.title == "Integrity information made public" and "correct or revoke" in en.body
    assert zh.deep_link == en.deep_link == f"gongping://findings/{record.id}"
    assert fcm.message_for(android.token)["notification"]["title"] == "计量诚信信息已向社会公开"
    pushed = fcm.message_for(ios.token)
    assert pushed["notification"]["title"] == "Integrity information made public"
    assert pushed["data"] == {
        "kind": "record_published",
        "category": "publication",
        "link": f"gongping://findings/{record.id}",
    }
    assert pushed["apns"]["headers"]["apns-collapse-id"] == f"publication:{record.id}"
    rows = session.execute(select(PushDelivery).where(col(PushDelivery.event_id) == event.id)).scalars().all()
    assert len(rows) == 2

    # The take-down reaches the same people, and replaces the first notice on the phone (same collapse key).
    publication.unpublish(session, record=record, actor=bureau.author, reason=TAKE_DOWN_REASON)
    [_, down] = _events(session, row)
    report, due = delivery.dispatch(down.id or 0, push_enabled=True, now=SHANGHAI_NOON, unit_of_work=uow)
    assert report.inbox_written == 2 and len(due) == 2
    titles = {e.title for e in _inbox(session, bureau.user) + _inbox(session, bureau.english_user)}
    assert titles >= {"计量诚信信息已停止公开", "Integrity information no longer public"}
