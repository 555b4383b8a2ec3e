"""SMS for required notices: the real Aliyun SDK against the local stand-in, on the test database.

A notice to an operator without a device goes by SMS at once; an unread push is followed by exactly one SMS
after the working-hours delay; quiet hours hold; caps and the budget hold (the skipped sends are recorded);
a failed delivery is sent again, then shown to staff as not reached; an answer lost mid-send is settled by
the provider's records, never by a second SMS; bad phone numbers and over-long variables are 422s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Account, Role
from backend.config import get_settings
from backend.db import utcnow
from backend.instruments.models import Instrument
from backend.notices import delivery
from backend.notices.models import InboxNotification
from backend.notices.sms import contacts, reach
from backend.notices.sms.channel import reset
from backend.notices.sms.models import ConsentSource, SmsMessage, SmsStatus
from backend.notices.sms.provider import AliyunSms
from backend.notices.sms.schedule import add_working_hours
from backend.notices.sms.sending import poll_receipts, reconcile, send_messages
from backend.notices.sms.sweep import sweep_batch
from backend.notices.sms.templates import TEMPLATES
from backend.operators.models import Operator
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.records.service import bureau_today
from tests.factories import (
    COUNTY_A,
    COUNTY_B,
    login,
    make_account,
    make_device,
    make_instrument,
    make_operator,
    scope_of,
)
from tests.support.aliyun_sms_standin import ACCESS_KEY_ID, ACCESS_KEY_SECRET, StandinServer

BEIJING = "Asia/Shanghai"
#: Monday 1 June 2026, 10:00 in Beijing (a working day).
MONDAY_10 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
PHONE = "13812345678"


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def sms(monkeypatch: pytest.MonkeyPatch, standin: StandinServer) -> Iterator[StandinServer]:
    """SMS on, pointed at the stand-in, every template with a code."""
    settings = get_settings()
    for name, value in {
        "sms_enabled": True,
        "sms_access_key_id": SecretStr(ACCESS_KEY_ID),
        "sms_access_key_secret": SecretStr(ACCESS_KEY_SECRET),
        "sms_endpoint": standin.endpoint,
        "sms_sign_name": "公平计量",
        "sms_template_codes": {t.key: f"SMS_{i + 1000}" for i, t in enumerate(TEMPLATES)},
        "sms_timeout_ms": 2000,
    }.items():
        monkeypatch.setattr(settings, name, value)
    standin.state.reset()
    reset()
    yield standin
    standin.state.reset()
    reset()


@dataclass
class World:
    session: Session
    staff: Account
    operator: Operator
    user: Account
    instrument: Instrument

    def uow(self) -> Callable[[], AbstractContextManager[Session]]:
        return lambda: nullcontext(self.session)


@pytest.fixture
def world(session: Session) -> World:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff, name="西溪水产")
    user = make_account(session, Role.operator, operator_id=operator.id)
    instrument = make_instrument(session, operator, verified_on=bureau_today() - timedelta(days=400))
    session.flush()
    return World(session, staff, operator, user, instrument)


def _consent(w: World, phone: str = PHONE) -> None:
    contacts.set_contact(
        w.session,
        operator_id=w.operator.id or 0,
        phone=phone,
        consent=True,
        source=ConsentSource.staff,
        actor=w.staff,
        note="书面同意书",
    )


def _overdue(w: World, tag: str = "1") -> OutboxEvent:
    assert w.instrument.valid_until is not None
    emit(
        w.session,
        "instrument.overdue",
        {
            "instrument_id": w.instrument.id,
            "operator_id": w.operator.id,
            "valid_until": w.instrument.valid_until.isoformat(),
        },
        dedupe_key=f"sms-test:{w.instrument.id}:{tag}",
    )
    event = w.session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    assert event is not None
    return event


def _dispatch(w: World, event: OutboxEvent, now: datetime, *, push: bool) -> None:
    delivery.dispatch(event.id or 0, push_enabled=push, now=now, unit_of_work=w.uow())


def _sweep_and_send(w: World, standin: StandinServer, now: datetime) -> list[int]:
    standin.state.clock = lambda: now
    ids, _cursor, _n = sweep_batch(w.session, now)
    send_messages(AliyunSms(get_settings()), ids, now=now, unit_of_work=w.uow())
    return ids


def _messages(w: World) -> list[SmsMessage]:
    w.session.expire_all()
    return list(w.session.exec(select(SmsMessage).where(SmsMessage.operator_id == w.operator.id)).all())


def test_no_device_goes_by_sms_at_once_exactly_once(sms: StandinServer, world: World) -> None:
    _consent(world)
    event = _overdue(world)
    _dispatch(world, event, MONDAY_10, push=True)
    _sweep_and_send(world, sms, MONDAY_10)
    # Handled again (a redelivered event, a second sweep): nothing more.
    _dispatch(world, event, MONDAY_10 + timedelta(minutes=1), push=True)
    _sweep_and_send(world, sms, MONDAY_10 + timedelta(minutes=2))
    [sent] = sms.state.sent_to(PHONE)
    assert sent.sign_name == "公平计量"
    assert sent.template_code == get_settings().sms_template_codes["verification_overdue"]
    assert sent.params["date"] == world.instrument.valid_until.isoformat()  # type: ignore[union-attr]
    [row] = _messages(world)
    assert (row.status, row.trigger, row.phone_masked) == (SmsStatus.sent, "no_device", "138****5678")
    assert sent.out_id == str(row.id)  # our id is the provider's OutId
    assert (
        poll_receipts(
            AliyunSms(get_settings()), now=MONDAY_10 + timedelta(minutes=5), unit_of_work=world.uow()
        )["delivered"]
        == 1
    )
    [row] = _messages(world)
    assert row.status is SmsStatus.delivered and row.phone is None  # erased once final


def test_unread_push_is_followed_by_one_sms_after_working_hours(sms: StandinServer, world: World) -> None:
    _consent(world)
    make_device(world.session, world.user, timezone=BEIJING)
    _dispatch(world, _overdue(world), MONDAY_10, push=True)
    # 24 working hours of 08:00-18:00 from Monday 10:00: Monday 8 h, Tuesday 10 h, Wednesday 6 h → 14:00.
    due = datetime(2026, 6, 3, 6, 0, tzinfo=UTC)
    entry = world.session.exec(
        select(InboxNotification).where(InboxNotification.recipient_id == world.user.id)
    ).one()
    assert entry.sms_due_at is not None and entry.sms_due_at.replace(tzinfo=UTC) == due
    assert _sweep_and_send(world, sms, due - timedelta(minutes=1)) == []
    assert sms.state.sent_to(PHONE) == []
    _sweep_and_send(world, sms, due)
    _sweep_and_send(world, sms, due + timedelta(hours=1))
    assert len(sms.state.sent_to(PHONE)) == 1
    assert [m.trigger for m in _messages(world)] == ["unread"]


def test_a_read_push_sends_no_sms(sms: StandinServer, world: World) -> None:
    _consent(world)
    make_device(world.session, world.user, timezone=BEIJING)
    _dispatch(world, _overdue(world), MONDAY_10, push=True)
    entry = world.session.exec(
        select(InboxNotification).where(InboxNotification.recipient_id == world.user.id)
    ).one()
    entry.read_at = MONDAY_10 + timedelta(hours=1)
    world.session.add(entry)
    world.session.flush()
    _sweep_and_send(world, sms, MONDAY_10 + timedelta(days=7))
    assert sms.state.sent_to(PHONE) == [] and _messages(world) == []


def test_working_hours_skip_weekends_and_holidays() -> None:
    from zoneinfo import ZoneInfo

    window = get_settings().sms_working_hours
    friday_17 = datetime(2026, 6, 5, 9, 0, tzinfo=UTC)  # Friday 17:00 in Beijing
    # 1 h on Friday, nothing on the weekend, Monday 08:00 + 23 h: Monday 10, Tuesday 10, Wednesday 3 → 11:00.
    assert add_working_hours(friday_17, 24, window=window, zone=ZoneInfo(BEIJING)) == datetime(
        2026, 6, 10, 3, 0, tzinfo=UTC
    )
    # National Day 2026: 1-7 October are holidays; a notice on 30 September 17:00 waits until the 8th.
    sept_30 = datetime(2026, 9, 30, 9, 0, tzinfo=UTC)
    assert (
        add_working_hours(sept_30, 2, window=window, zone=ZoneInfo(BEIJING)).date()
        >= datetime(2026, 10, 8).date()
    )


def test_quiet_hours_hold_the_sms(sms: StandinServer, world: World) -> None:
    _consent(world)
    night = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)  # 23:00 in Beijing
    _dispatch(world, _overdue(world), night, push=False)
    _sweep_and_send(world, sms, night + timedelta(minutes=5))
    assert sms.state.sent_to(PHONE) == []
    [row] = _messages(world)
    assert row.status is SmsStatus.pending
    morning = datetime(2026, 6, 2, 0, 0, tzinfo=UTC)  # 08:00
    send_messages(AliyunSms(get_settings()), [row.id or 0], now=morning, unit_of_work=world.uow())
    assert len(sms.state.sent_to(PHONE)) == 1


def test_operator_cap_and_daily_budget_hold(
    sms: StandinServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "sms_operator_daily_cap", 1)
    _consent(world)
    for tag in ("a", "b"):
        _dispatch(world, _overdue(world, tag), MONDAY_10, push=False)
    _sweep_and_send(world, sms, MONDAY_10)
    assert len(sms.state.sent_to(PHONE)) == 1
    skipped = [m for m in _messages(world) if m.status is SmsStatus.skipped]
    assert [m.reason for m in skipped] == ["operator_daily_cap"]
    monkeypatch.setattr(get_settings(), "sms_operator_daily_cap", 10)
    monkeypatch.setattr(get_settings(), "sms_daily_budget", 1)  # one already spent today
    _dispatch(world, _overdue(world, "c"), MONDAY_10, push=False)
    _sweep_and_send(world, sms, MONDAY_10 + timedelta(minutes=1))
    assert len(sms.state.sent_to(PHONE)) == 1
    assert sorted(str(m.reason) for m in _messages(world) if m.status is SmsStatus.skipped) == [
        "daily_budget",
        "operator_daily_cap",
    ]
    report = reach.counts_by_reason(world.session, scope_of(world.session, world.staff), MONDAY_10.date())
    assert report == {"daily_budget": 1, "operator_daily_cap": 1}


def test_no_phone_is_recorded_and_staff_see_follow_up(sms: StandinServer, world: World) -> None:
    _dispatch(world, _overdue(world), MONDAY_10, push=False)
    _sweep_and_send(world, sms, MONDAY_10)
    [row] = _messages(world)
    assert (row.status, row.reason) == (SmsStatus.skipped, "no_phone")
    items, _ = reach.reach_page(world.session, scope_of(world.session, world.staff), follow_up_only=True)
    assert [(i.operator_id, i.kind, i.sms_status, i.follow_up) for i in items] == [
        (world.operator.id, "verification_overdue", "skipped", True)
    ]
    # Another county's staff see nothing of it; the report of their scope is empty too.
    other = make_account(world.session, Role.staff, COUNTY_B)
    assert reach.reach_page(world.session, scope_of(world.session, other))[0] == []
    assert reach.monthly_report(world.session, scope_of(world.session, other), MONDAY_10.date()) == []


def test_failed_delivery_is_retried_then_not_reached(
    sms: StandinServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "sms_max_attempts", 2)
    _consent(world)
    sms.state.receipts[PHONE].extend([2, 2])
    _dispatch(world, _overdue(world), MONDAY_10, push=False)
    _sweep_and_send(world, sms, MONDAY_10)
    provider = AliyunSms(get_settings())
    poll_receipts(provider, now=MONDAY_10 + timedelta(minutes=2), unit_of_work=world.uow())
    [row] = _messages(world)
    assert row.status is SmsStatus.pending and row.reason is None
    later = MONDAY_10 + timedelta(minutes=20)
    send_messages(provider, [row.id or 0], now=later, unit_of_work=world.uow())
    poll_receipts(provider, now=later + timedelta(minutes=2), unit_of_work=world.uow())
    [row] = _messages(world)
    assert (row.status, row.reason, row.phone) == (SmsStatus.not_reached, "failed:UNDELIV", None)
    assert len(sms.state.sent_to(PHONE)) == 2
    items, _ = reach.reach_page(world.session, scope_of(world.session, world.staff))
    assert [(i.sms_status, i.follow_up, i.reached_by) for i in items] == [("not_reached", True, None)]


def test_a_lost_answer_is_reconciled_not_resent(
    sms: StandinServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "sms_timeout_ms", 300)
    _consent(world)
    now = utcnow()
    _dispatch(world, _overdue(world), now, push=False)
    sms.state.hold()  # the provider accepts the message but its answer never arrives in time
    sms.state.clock = lambda: now
    ids, _c, _n = sweep_batch(world.session, now)
    if not ids:  # quiet hours where this runs: release the held row now
        pytest.skip("quiet hours in Beijing at this instant")
    report = send_messages(AliyunSms(get_settings()), ids, now=now, unit_of_work=world.uow())
    sms.state.release()
    assert report.unknown == 1
    [row] = _messages(world)
    assert row.status is SmsStatus.sending
    # A send task redelivered meanwhile finds the row claimed: nothing is sent again.
    send_messages(AliyunSms(get_settings()), ids, now=now + timedelta(minutes=1), unit_of_work=world.uow())
    counts = reconcile(AliyunSms(get_settings()), now=now + timedelta(minutes=3), unit_of_work=world.uow())
    assert counts["found"] == 1
    [row] = _messages(world)
    assert row.status is SmsStatus.delivered
    assert len(sms.state.sent_to(PHONE)) == 1


def test_a_provably_unsent_message_is_sent_again(sms: StandinServer, world: World) -> None:
    _consent(world)
    _dispatch(world, _overdue(world), MONDAY_10, push=False)
    sms.state.clock = lambda: MONDAY_10
    ids, _c, _n = sweep_batch(world.session, MONDAY_10)
    [row] = _messages(world)
    # A worker claimed it and died before calling the provider.
    row.status, row.claimed_at, row.attempts = SmsStatus.sending, MONDAY_10, 1
    world.session.add(row)
    world.session.flush()
    provider = AliyunSms(get_settings())
    assert reconcile(provider, now=MONDAY_10 + timedelta(minutes=3), unit_of_work=world.uow())["waiting"] == 1
    assert (
        reconcile(provider, now=MONDAY_10 + timedelta(minutes=11), unit_of_work=world.uow())["not_sent"] == 1
    )
    send_messages(provider, ids, now=MONDAY_10 + timedelta(minutes=11), unit_of_work=world.uow())
    assert len(sms.state.sent_to(PHONE)) == 1


def test_phone_api_validates_consents_masks_and_audits(
    sms: StandinServer, client: TestClient, world: World
) -> None:
    headers = login(client, world.user)
    for bad in ("12345", "0571-88886666", "+1 415 555 0100", "14012345678"):
        answer = client.put("/api/v1/me/sms-contact", json={"phone": bad, "consent": True}, headers=headers)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_phone", bad
    answer = client.put("/api/v1/me/sms-contact", json={"phone": PHONE, "consent": False}, headers=headers)
    assert answer.json()["error"]["code"] == "consent_required"
    answer = client.put(
        "/api/v1/me/sms-contact", json={"phone": "+86 138-1234-5678", "consent": True}, headers=headers
    )
    assert answer.status_code == 200 and answer.json()["phone"] == PHONE
    entry = world.session.exec(
        select(AuditEntry).where(AuditEntry.action == "sms_contact.set").order_by(col(AuditEntry.id).desc())
    ).first()
    assert entry is not None and PHONE not in str(entry.after) and "138****5678" in str(entry.after)
    assert client.delete("/api/v1/me/sms-contact", headers=headers).status_code == 204
    assert client.get("/api/v1/me/sms-contact", headers=headers).status_code == 404
    # Staff record it with how consent was given; a consumer has no number to give.
    staff = login(client, world.staff)
    path = f"/api/v1/operators/{world.operator.id}/sms-contact"
    answer = client.put(
        path, json={"phone": PHONE, "consent": True, "consent_note": "签字同意书"}, headers=staff
    )
    assert answer.status_code == 200 and answer.json()["consent_source"] == "staff"
    consumer = make_account(world.session, Role.consumer)
    answer = client.put(
        "/api/v1/me/sms-contact", json={"phone": PHONE, "consent": True}, headers=login(client, consumer)
    )
    assert answer.status_code == 403


def test_a_summons_place_too_long_for_sms_is_refused(
    sms: StandinServer, client: TestClient, world: World
) -> None:
    body = {
        "operator_id": world.operator.id,
        "kind": "interview",
        "scheduled_at": (utcnow() + timedelta(days=3)).isoformat(),
        "place": "西湖区市场监督管理局三楼会议室（文三路一百号，近学院路口，请从东侧门进入）",
        "subject": "计量违法行为约谈",
    }
    answer = client.post("/api/v1/interviews", json=body, headers=login(client, world.staff))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "sms_variable_too_long"


def test_monthly_report_csv_has_chinese_headers(sms: StandinServer, client: TestClient, world: World) -> None:
    _consent(world)
    # 10:00 in Beijing on the 2nd of this month: in the month wherever the test runs, outside quiet hours.
    at = utcnow().replace(day=2, hour=2, minute=0, second=0, microsecond=0)
    _dispatch(world, _overdue(world), at, push=False)
    _sweep_and_send(world, sms, at)
    month = at.strftime("%Y-%m")
    answer = client.get(f"/api/v1/sms-report?month={month}&format=csv", headers=login(client, world.staff))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.lstrip("\ufeff").splitlines()
    assert lines[0].split(",")[:3] == ["行政区划代码", "监管局", "月份"]
    assert any(line.startswith(COUNTY_A) for line in lines[1:])
    assert (
        client.get("/api/v1/sms-report?month=2026-13", headers=login(client, world.staff)).status_code == 422
    )


def test_the_sweep_walks_keyset_batches(
    sms: StandinServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.notices.sms import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "SWEEP_BATCH", 1)
    _consent(world)
    second = make_operator(world.session, world.staff, name="第二家")
    make_account(world.session, Role.operator, operator_id=second.id)
    contacts.set_contact(
        world.session,
        operator_id=second.id or 0,
        phone="13900001111",
        consent=True,
        source=ConsentSource.staff,
        actor=world.staff,
        note="书面同意书",
    )
    second_instrument = make_instrument(
        world.session, second, verified_on=bureau_today() - timedelta(days=400)
    )
    _dispatch(world, _overdue(world), MONDAY_10, push=False)
    assert second_instrument.valid_until is not None
    emit(
        world.session,
        "instrument.overdue",
        {
            "instrument_id": second_instrument.id,
            "operator_id": second.id,
            "valid_until": second_instrument.valid_until.isoformat(),
        },
        dedupe_key="sms-test:second",
    )
    event = world.session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    assert event is not None
    _dispatch(world, event, MONDAY_10 + timedelta(seconds=1), push=False)
    due, seen = sweep_module.sweep(world.uow(), MONDAY_10 + timedelta(minutes=1), max_batches=5)
    assert seen == 2 and len(due) == 2
