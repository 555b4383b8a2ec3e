"""Dispatch and push delivery with the real firebase-admin SDK against the FCM stand-in, in-process.

Time is passed in explicitly (``now``), so retries, quiet hours and expiry are exercised without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.db import utcnow
from backend.instruments.models import Instrument
from backend.notices import delivery
from backend.notices.handlers import HANDLERS, Notice
from backend.notices.models import Device, InboxNotification, NotificationPreference, PushDelivery, PushStatus
from backend.operators.models import Operator
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.records.service import bureau_today
from notifications.push import PushChannel
from tests.factories import COUNTY_A, make_account, make_device, make_instrument, make_operator
from tests.support.fcm_standin import ERRORS_BY_PREFIX, FcmStandin, StandinServer

SHANGHAI_NOON = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
SHANGHAI_LATE = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)  # 23:00 in Beijing


@dataclass
class Setup:
    """An operator user with an Android and an iOS device, and an instrument falling overdue."""

    session: Session
    operator: Operator
    user: Account
    android: Device
    ios: Device
    instrument: Instrument

    def uow(self) -> Callable[[], AbstractContextManager[Session]]:
        """A unit of work on the test's rolled-back session."""
        return lambda: nullcontext(self.session)


@pytest.fixture
def setup(session: Session) -> Setup:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    user = make_account(session, Role.operator, operator_id=operator.id)
    android = make_device(session, user, token="android_" + "a" * 140, platform="android")
    ios = make_device(session, user, token="ios_" + "i" * 140, platform="ios", locale="en")
    instrument = make_instrument(session, operator, verified_on=bureau_today() - timedelta(days=400))
    session.flush()
    return Setup(session, operator, user, android, ios, instrument)


def _overdue_event(s: Setup) -> OutboxEvent:
    assert s.instrument.valid_until is not None
    payload = {
        "instrument_id": s.instrument.id,
        "operator_id": s.operator.id,
        "valid_until": s.instrument.valid_until.isoformat(),
    }
    emit(s.session, "instrument.overdue", payload, dedupe_key=f"t:{s.instrument.id}:{utcnow().timestamp()}")
    event = s.session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    assert event is not None
    return event


def _dispatch(s: Setup, event: OutboxEvent, now: datetime, *, push: bool = True) -> list[int]:
    _report, due = delivery.dispatch(event.id or 0, push_enabled=push, now=now, unit_of_work=s.uow())
    return due


def _send(s: Setup, channel: PushChannel, ids: list[int], now: datetime) -> delivery.SendReport:
    return delivery.send_pushes(channel, ids, now=now, unit_of_work=s.uow())


def _pushes(s: Setup, event: OutboxEvent | None = None) -> list[PushDelivery]:
    s.session.expire_all()
    stmt = select(PushDelivery).order_by(col(PushDelivery.id))
    if event is not None:
        stmt = stmt.where(PushDelivery.event_id == event.id)
    return list(s.session.exec(stmt).all())


def _inbox(s: Setup, account: Account) -> list[InboxNotification]:
    return list(
        s.session.exec(select(InboxNotification).where(InboxNotification.recipient_id == account.id)).all()
    )


def test_event_becomes_inbox_entry_and_pushes_with_platform_options(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    event = _overdue_event(setup)
    due = _dispatch(setup, event, SHANGHAI_NOON)
    assert len(due) == 2
    report = _send(setup, push_channel, due, SHANGHAI_NOON)
    assert report.sent == 2 and not report.retry
    [entry] = _inbox(setup, setup.user)
    assert entry.kind == "verification_overdue" and entry.locale == "zh-CN" and "检定已过期" in entry.title
    assert entry.deep_link == f"gongping://instruments/{setup.instrument.id}" and entry.event_id == event.id

    android = fcm.message_for(setup.android.token)
    assert android["notification"]["title"] == "计量器具检定已过期"
    assert android["data"] == {
        "kind": "verification_overdue",
        "category": "verification",
        "link": f"gongping://instruments/{setup.instrument.id}",
    }
    assert android["android"]["collapse_key"] == f"verification:{setup.instrument.id}"
    assert android["android"]["priority"] == "high"  # a required notice
    assert android["android"]["ttl"] == f"{7 * 24 * 3600}s"
    assert android["android"]["notification"]["tag"] == f"verification:{setup.instrument.id}"
    assert "apns" not in android

    ios = fcm.message_for(setup.ios.token)
    assert ios["notification"]["title"] == "Instrument verification overdue"  # the device's own locale
    assert ios["apns"]["headers"]["apns-collapse-id"] == f"verification:{setup.instrument.id}"
    assert ios["apns"]["headers"]["apns-priority"] == "10"
    assert ios["apns"]["payload"]["aps"]["sound"] == "default"
    assert "android" not in ios

    rows = _pushes(setup, event)
    assert [r.status for r in rows] == [PushStatus.sent, PushStatus.sent]
    assert all(r.provider_message_id and r.attempts == 1 and r.inbox_id == entry.id for r in rows)


def test_handling_an_event_again_never_pushes_twice(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    event = _overdue_event(setup)
    first = _dispatch(setup, event, SHANGHAI_NOON)
    _send(setup, push_channel, first, SHANGHAI_NOON)
    # A redelivered task: the rows exist and are sent, so nothing is due and nothing is claimed.
    assert _dispatch(setup, event, SHANGHAI_NOON) == []
    assert _send(setup, push_channel, first, SHANGHAI_NOON).sent == 0
    assert fcm.stats()["delivered"] == 2
    assert len(_inbox(setup, setup.user)) == 1 and len(_pushes(setup, event)) == 2


def test_a_claimed_row_cannot_be_claimed_again(setup: Setup) -> None:
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    assert len(delivery.claim(setup.session, due, SHANGHAI_NOON)) == 2
    assert delivery.claim(setup.session, due, SHANGHAI_NOON) == []


def test_a_retried_batch_resends_only_the_failed_device(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    flaky = make_device(setup.session, setup.user, token="flaky-" + "f" * 140)
    fcm.retry_after = None
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    now = SHANGHAI_NOON
    first = _send(setup, push_channel, due, now)
    assert first.sent == 2 and len(first.retry) == 1
    for _ in range(3):
        now += timedelta(seconds=max(first.retry.values(), default=0) + 1)
        first = _send(setup, push_channel, due, now)
        if not first.retry:
            break
    assert fcm.recorded_tokens().count(setup.android.token) == 1
    assert fcm.recorded_tokens().count(setup.ios.token) == 1
    assert fcm.recorded_tokens().count(flaky.token) == 1
    [row] = [r for r in _pushes(setup) if r.device_id == flaky.id]
    assert row.status == PushStatus.sent and row.attempts == 3  # the stand-in fails flaky- tokens twice


@pytest.mark.parametrize("prefix", ["unregistered-", "invalid-", "mismatch-"])
def test_dead_token_deactivates_the_device(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin, prefix: str
) -> None:
    dead = make_device(setup.session, setup.user, token=prefix + "d" * 140)
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    report = _send(setup, push_channel, due, SHANGHAI_NOON)
    assert report.invalid_token == 1 and report.sent == 2 and not report.retry
    setup.session.expire_all()
    assert setup.session.get(Device, dead.id).active is False  # type: ignore[union-attr]
    assert setup.session.get(Device, dead.id).deactivated_reason.startswith("fcm:")  # type: ignore[union-attr]
    [row] = [r for r in _pushes(setup) if r.device_id == dead.id]
    assert row.status == PushStatus.invalid_token
    # The next notice skips the dead device altogether.
    later = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    assert len(later) == 2


@pytest.mark.parametrize("error", ["quota-", "unavailable-", "internal-"])
def test_transient_errors_are_retried_after_retry_after_and_never_lost(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin, error: str
) -> None:
    spec = ERRORS_BY_PREFIX[error]
    fcm.retry_after = "7"
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    fcm.fail_next(2, spec)
    report = _send(setup, push_channel, due, SHANGHAI_NOON)
    assert report.sent == 0 and len(report.retry) == 2
    if spec.http_status in (429, 503):
        assert set(report.retry.values()) == {7.0}  # FCM's Retry-After wins over our own backoff
    rows = _pushes(setup)
    assert all(
        r.status == PushStatus.pending and r.last_error and (spec.fcm_code or "") in r.last_error
        for r in rows
    )
    # Not before its time…
    assert _send(setup, push_channel, due, SHANGHAI_NOON + timedelta(seconds=1)).sent == 0
    # …and exactly once after it, through the retry sweep.
    later = SHANGHAI_NOON + timedelta(seconds=max(report.retry.values()) + 1)
    queued = delivery.queue_due(setup.session, later)
    assert sorted(queued) == sorted(due)
    assert _send(setup, push_channel, queued, later).sent == 2
    assert fcm.stats()["delivered"] == 2
    assert all(r.status == PushStatus.sent and r.attempts == 2 for r in _pushes(setup))


def test_fcm_down_keeps_the_inbox_and_retries(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin, fcm_server: StandinServer
) -> None:
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    fcm_server.go_down()
    try:
        report = _send(setup, push_channel, due, SHANGHAI_NOON)
    finally:
        fcm_server.come_up()
    assert report.sent == 0 and len(report.retry) == 2
    assert len(_inbox(setup, setup.user)) == 1
    rows = _pushes(setup)
    assert all(r.status == PushStatus.pending for r in rows)
    later = SHANGHAI_NOON + timedelta(seconds=max(report.retry.values()) + 1)
    assert _send(setup, push_channel, delivery.queue_due(setup.session, later), later).sent == 2
    assert fcm.stats()["delivered"] == 2


def test_quiet_hours_hold_until_eight_and_urgent_goes_at_once(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    assert _dispatch(setup, _overdue_event(setup), SHANGHAI_LATE) == []
    rows = _pushes(setup)
    morning = datetime(2026, 6, 2, 0, 0, tzinfo=UTC)  # 08:00 in Beijing
    assert all(
        r.status == PushStatus.pending and r.next_attempt_at.replace(tzinfo=UTC) == morning for r in rows
    )
    assert delivery.queue_due(setup.session, morning - timedelta(minutes=1)) == []
    ids = delivery.queue_due(setup.session, morning)
    assert len(ids) == 2 and delivery.queue_due(setup.session, morning) == []  # handed out once per lease
    assert _send(setup, push_channel, ids, morning).sent == 2

    # A device in another zone follows its own night: 23:00 in Beijing is 17:00 in Berlin (summer).
    berlin = make_device(setup.session, setup.user, token="berlin_" + "b" * 140, timezone="Europe/Berlin")
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_LATE)
    assert [r.device_id for r in _pushes(setup) if r.id in due] == [berlin.id]

    # The interview reminder is urgent: it ignores quiet hours.
    notice = Notice(
        (setup.user.id or 0,),
        "interview_reminder",
        {
            "interview_id": "9",
            "scheduled_at": SHANGHAI_LATE + timedelta(hours=1),
            "place": "三楼",
            "lead": "1h",
        },
    )
    urgent = _dispatch_notice(setup, notice, SHANGHAI_LATE)
    assert len(urgent) == 3


def _dispatch_notice(s: Setup, notice: Notice, now: datetime) -> list[int]:
    emit(s.session, "test.notice", {})
    event = s.session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    assert event is not None
    original = HANDLERS.get("test.notice")
    HANDLERS["test.notice"] = lambda _session, _event: [notice]
    try:
        return _dispatch(s, event, now)
    finally:
        if original is None:
            del HANDLERS["test.notice"]


def test_muted_category_keeps_the_inbox_but_not_optional_pushes(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    setup.session.add(
        NotificationPreference(account_id=setup.user.id or 0, muted_categories=["verification"])
    )
    setup.session.flush()
    assert setup.instrument.valid_until is not None
    due_notice = Notice(
        (setup.user.id or 0,),
        "verification_due",
        {
            "instrument_id": "1",
            "instrument_name": "秤",
            "valid_until": setup.instrument.valid_until,
            "days_left": 7,
        },
    )
    assert _dispatch_notice(setup, due_notice, SHANGHAI_NOON) == []
    assert [e.kind for e in _inbox(setup, setup.user)] == ["verification_due"]
    # The overdue notice is in the same category but legally required: it still pushes.
    assert len(_dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)) == 2


def test_push_off_writes_the_inbox_only(setup: Setup) -> None:
    event = _overdue_event(setup)
    report, due = delivery.dispatch(
        event.id or 0, push_enabled=False, now=SHANGHAI_NOON, unit_of_work=setup.uow()
    )
    assert report.inbox_written == 1 and due == [] and _pushes(setup) == []


def test_inactive_recipients_and_devices_get_nothing(setup: Setup) -> None:
    setup.ios.active = False
    setup.session.add(setup.ios)
    other = make_account(setup.session, Role.operator, operator_id=setup.operator.id)
    make_device(setup.session, other)
    other.is_active = False
    setup.session.add(other)
    setup.session.flush()
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    assert [r.device_id for r in _pushes(setup) if r.id in due] == [setup.android.id]
    assert _inbox(setup, other) == []


def test_device_deactivated_after_the_row_was_written_is_cancelled(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    setup.ios.active = False
    setup.session.add(setup.ios)
    setup.session.flush()
    report = _send(setup, push_channel, due, SHANGHAI_NOON)
    assert report.sent == 1 and report.cancelled == 1
    assert fcm.recorded_tokens() == [setup.android.token]


def test_retries_stop_when_the_notice_expires(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    week = timedelta(days=7)
    report = _send(setup, push_channel, due, SHANGHAI_NOON + week)
    assert report.sent == 0 and fcm.stats()["send_requests"] == 0
    assert all(r.status == PushStatus.expired for r in _pushes(setup))
    assert len(_inbox(setup, setup.user)) == 1


def test_a_lost_sender_is_replaced_after_the_stale_limit(setup: Setup) -> None:
    due = _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON)
    delivery.claim(setup.session, due, SHANGHAI_NOON)  # the sender dies here, before FCM answers
    assert delivery.reclaim_stale(setup.session, SHANGHAI_NOON + timedelta(minutes=5)) == 0
    assert delivery.reclaim_stale(setup.session, SHANGHAI_NOON + timedelta(minutes=11)) == 2
    assert len(delivery.claim(setup.session, due, SHANGHAI_NOON + timedelta(minutes=11))) == 2


def test_a_broken_notice_is_logged_and_the_others_delivered(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    bad = Notice((setup.user.id or 0,), "rating_changed", {"operator_id": "1", "complainant_name": "李四"})
    good = Notice(
        (setup.user.id or 0,),
        "complaint_received",
        {"complaint_ref": "5", "case_no": "TS202600000005", "received_on": bureau_today()},
    )
    emit(setup.session, "test.notice", {})
    event = setup.session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    assert event is not None
    HANDLERS["test.notice"] = lambda _session, _event: [bad, good]
    try:
        report, _due = delivery.dispatch(event.id or 0, push_enabled=False, unit_of_work=setup.uow())
    finally:
        del HANDLERS["test.notice"]
    assert report.inbox_written == 1 and "not rendered" in caplog.text
    assert [e.kind for e in _inbox(setup, setup.user)] == ["complaint_received"]


def test_instants_are_shown_in_each_recipients_zone() -> None:
    at = datetime(2026, 6, 1, 1, 30, tzinfo=UTC)
    assert delivery.format_instant(at, "Asia/Shanghai", "zh-CN") == "2026-06-01 09:30"
    assert delivery.format_instant(at, "Europe/Berlin", "en") == "2026-06-01 03:30 (Europe/Berlin)"
    assert delivery.format_instant(at, "Europe/Berlin", "zh-CN") == "2026-06-01 03:30（Europe/Berlin）"
    assert delivery.format_instant(at, None, "en") == "2026-06-01 09:30"


def _overdue_events(s: Setup, count: int) -> list[OutboxEvent]:
    """``count`` instruments of the setup's operator falling overdue, one event each."""
    events = []
    for _ in range(count):
        s.instrument = make_instrument(
            s.session, s.operator, verified_on=bureau_today() - timedelta(days=400)
        )
        s.session.flush()
        events.append(_overdue_event(s))
    return events


def test_a_batch_of_events_is_handled_like_each_alone_and_never_twice(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin
) -> None:
    events = _overdue_events(setup, 5)
    ids = [e.id or 0 for e in events]
    muted_user = make_account(setup.session, Role.operator, operator_id=setup.operator.id)
    muted_user.locale = "en"
    setup.session.add(muted_user)
    make_device(setup.session, muted_user, token="muted_" + "m" * 140)
    setup.session.add(
        NotificationPreference(account_id=muted_user.id or 0, muted_categories=["verification"])
    )
    setup.session.flush()

    reports = delivery.dispatch_many(
        [*reversed(ids), ids[0], 10**9], push_enabled=True, now=SHANGHAI_NOON, unit_of_work=setup.uow()
    )

    # One report per event found, in id order; the unknown id is ignored and the repeated one handled once.
    assert [r.topic for r in reports] == ["instrument.overdue"] * 5
    assert [(r.notices, r.recipients, r.inbox_written, r.pushes_created) for r in reports] == [
        (1, 2, 2, 3)
    ] * 5
    # A required notice reaches the muted user's device too; every push row points at its inbox entry.
    rows = _pushes(setup)
    assert len(rows) == 15 and {r.event_id for r in rows} == set(ids)
    assert sorted(i for r in reports for i in r.due_ids) == [r.id for r in rows]
    inbox = {e.id: e for e in setup.session.exec(select(InboxNotification)).all()}
    assert all(inbox[r.inbox_id or 0].recipient_id == r.recipient_id for r in rows)
    english = [e for e in inbox.values() if e.recipient_id == muted_user.id]
    assert len(english) == 5 and all(e.locale == "en" for e in english)

    # Again, in another split: nothing new, and the rows still pending are due again.
    again = delivery.dispatch_many(ids[:2], push_enabled=True, now=SHANGHAI_NOON, unit_of_work=setup.uow())
    assert [(r.inbox_written, r.pushes_created, r.rerun) for r in again] == [(0, 0, True)] * 2
    assert sorted(i for r in again for i in r.due_ids) == sorted(r.id for r in rows if r.event_id in ids[:2])
    report = _send(setup, push_channel, [i for r in reports for i in r.due_ids], SHANGHAI_NOON)
    assert report.sent == 15 and len(fcm.recorded_tokens()) == 15
    after = delivery.dispatch_many(ids, push_enabled=True, now=SHANGHAI_NOON, unit_of_work=setup.uow())
    assert all(r.due_ids == [] and r.pushes_created == 0 for r in after)
    assert len(_pushes(setup)) == 15


def test_a_broken_handler_costs_only_its_own_event_in_a_batch(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    [good] = _overdue_events(setup, 1)
    emit(setup.session, "test.broken", {})
    broken = setup.session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    assert broken is not None

    def explode(_session: Session, event: OutboxEvent) -> list[Notice]:
        raise KeyError("instrument_id")

    HANDLERS["test.broken"] = explode
    try:
        reports = delivery.dispatch_many(
            [good.id or 0, broken.id or 0],
            push_enabled=False,
            now=SHANGHAI_NOON,
            unit_of_work=setup.uow(),
            skip_broken=True,
        )
        with pytest.raises(KeyError):
            delivery.dispatch(broken.id or 0, push_enabled=False, unit_of_work=setup.uow())
    finally:
        del HANDLERS["test.broken"]
    assert [(r.topic, r.error, r.inbox_written) for r in reports] == [
        ("instrument.overdue", False, 1),
        ("test.broken", True, 0),
    ]
    assert "handler failed" in caplog.text


def test_a_malformed_sweep_event_falls_back_to_one_by_one_and_only_it_is_skipped(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    good = _overdue_events(setup, 2)
    emit(setup.session, "instrument.overdue", {"operator_id": setup.operator.id}, dedupe_key="no-instrument")
    bad = setup.session.exec(select(OutboxEvent).where(OutboxEvent.dedupe_key == "no-instrument")).one()
    reports = delivery.dispatch_many(
        [e.id or 0 for e in good] + [bad.id or 0],
        push_enabled=True,
        now=SHANGHAI_NOON,
        unit_of_work=setup.uow(),
        skip_broken=True,
    )
    assert [(r.error, r.inbox_written, r.pushes_created) for r in reports] == [
        (False, 1, 2),
        (False, 1, 2),
        (True, 0, 0),
    ]
    assert "batch handler failed" in caplog.text and "handler failed; its notices are skipped" in caplog.text


def test_the_inbox_entry_is_written_in_every_language(setup: Setup) -> None:
    """So the app reads it in the language it asks for, whatever the account's own locale."""
    _dispatch(setup, _overdue_event(setup), SHANGHAI_NOON, push=False)
    [entry] = _inbox(setup, setup.user)
    assert entry.texts is not None and set(entry.texts) == {"zh-CN", "en"}
    assert entry.texts["zh-CN"] == {"title": entry.title, "body": entry.body}
    assert entry.texts["en"]["title"] == "Instrument verification overdue"


def test_devices_of_a_provider_that_is_off_get_no_push_rows(setup: Setup) -> None:
    phone = make_device(setup.session, setup.user, token="1a0018970a2bf2d4c66", provider="jpush")
    event = _overdue_event(setup)
    _report, due = delivery.dispatch(
        event.id or 0, push_enabled=True, now=SHANGHAI_NOON, unit_of_work=setup.uow(), providers={"fcm"}
    )
    rows = _pushes(setup, event)
    assert {r.device_id for r in rows} == {setup.android.id, setup.ios.id} and phone.id not in due
    # Once JPush is on too, handling the event again adds the JPush device's row and nothing else.
    delivery.dispatch(
        event.id or 0,
        push_enabled=True,
        now=SHANGHAI_NOON,
        unit_of_work=setup.uow(),
        providers={"fcm", "jpush"},
    )
    assert {r.device_id for r in _pushes(setup, event)} == {setup.android.id, setup.ios.id, phone.id}


def test_jpush_rows_go_through_the_router_to_jpush_and_dead_ids_deactivate(
    setup: Setup, push_channel: PushChannel, fcm: FcmStandin, jpush_channel: Any, jpush: Any
) -> None:
    from backend.notices.channel import PushRouter

    live = make_device(setup.session, setup.user, token="1a0018970a2bf2d4c66", provider="jpush")
    dead = make_device(setup.session, setup.user, token="1a0018970a2bf2d4c67", provider="jpush")
    jpush.unregister(dead.token)
    event = _overdue_event(setup)
    due = _dispatch(setup, event, SHANGHAI_NOON)
    router = PushRouter({"fcm": push_channel, "jpush": jpush_channel})
    report = _send(setup, router, due, SHANGHAI_NOON)  # type: ignore[arg-type]
    assert report.sent == 3 and report.invalid_token == 1
    assert len(jpush.delivered_to(live.token)) == 1 and len(fcm.messages) == 2
    setup.session.refresh(dead)
    assert dead.active is False and dead.deactivated_reason == "jpush:NOT_THIS_APP"
