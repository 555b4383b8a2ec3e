"""End to end through a real Celery worker with both push providers: FCM (firebase-admin) and JPush (the
``jpush`` SDK), each against its local stand-in. The worker is the notices' one (``notifications_worker``),
started with both providers on; each device's pushes go through the provider it registered with.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.db import new_session, utcnow
from backend.notices.models import Device, PushDelivery, PushStatus
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.supervision.models import Interview, InterviewKind
from tests.backend.notices.conftest import zone_at_local_hour
from tests.backend.notices.test_worker_e2e import _inbox, _message, _pushes, _relay, _wait
from tests.factories import COUNTY_A, make_account, make_device, make_operator
from tests.support.fcm_standin import FcmStandin
from tests.support.jpush_standin import JPushStandin, registration_ids
from tests.workers.conftest import WorkerProcess


@dataclass
class Summoned:
    """An operator user with one device, summoned to an interview by one outbox event."""

    user: Account
    device: Device
    event_id: int


def _rid() -> str:
    return registration_ids(1, start=uuid.uuid4().int % 2**60)[0]


def _summon(session: Session, zone: str, token: str, provider: str) -> Summoned:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    user = make_account(session, Role.operator, operator_id=operator.id)
    device = make_device(session, user, token=token, timezone=zone, provider=provider)
    interview = Interview(
        operator_id=operator.id or 0,
        kind=InterviewKind.interview,
        scheduled_at=utcnow() + timedelta(days=2),
        place="西湖区市场监管局三楼会议室",
        subject="计量器具超期使用",
        legal_basis="第十二条",
        class_at_scheduling="untrustworthy",
        created_by_id=staff.id,
    )
    session.add(interview)
    session.flush()
    payload = {"interview_id": interview.id, "operator_id": operator.id, "kind": "interview"}
    emit(session, "interview.scheduled", payload, dedupe_key=f"e2e-jpush:{uuid.uuid4().hex}")
    event = session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    session.commit()
    assert event is not None and event.id is not None
    return Summoned(user, device, event.id)


def _delivered(jpush: JPushStandin, rid: str) -> list[dict[str, object]] | None:
    return jpush.delivered_to(rid) or None


def test_fcm_and_jpush_operators_each_get_the_summons_once_by_their_provider(
    committed_session: Session,
    notifications_worker: WorkerProcess,
    fcm: FcmStandin,
    jpush: JPushStandin,
    daytime_zone: str,
) -> None:
    by_fcm = _summon(committed_session, daytime_zone, "e2e_" + uuid.uuid4().hex * 3, "fcm")
    rid = _rid()
    by_jpush = _summon(committed_session, daytime_zone, rid, "jpush")
    _relay(notifications_worker)
    _wait(notifications_worker, lambda: _message(fcm, by_fcm.device.token), "the FCM push")
    [push] = _wait(notifications_worker, lambda: _delivered(jpush, rid), "the JPush push")
    android = push["notification"]["android"]  # type: ignore[index]
    assert android["title"] == "约谈通知" and android["extras"]["kind"] == "interview_scheduled"
    assert android["priority"] == 1  # a required notice
    for who in (by_fcm, by_jpush):
        [row] = _wait(
            notifications_worker,
            lambda w=who: [r for r in _pushes(w.event_id) if r.status == PushStatus.sent],
            "sent",
        )
        assert row.provider_message_id and row.attempts == 1
        assert [e.kind for e in _inbox(who.user)] == ["interview_scheduled"]

    # Redelivered events reach no phone again, by either provider.
    for who in (by_fcm, by_jpush):
        notifications_worker.send("gongping.notifications.dispatch", [who.event_id], uuid.uuid4().hex)
    sentinel_rid = _rid()
    _summon(committed_session, daytime_zone, sentinel_rid, "jpush")
    _relay(notifications_worker)
    _wait(notifications_worker, lambda: _delivered(jpush, sentinel_rid), "the sentinel push")
    assert fcm.recorded_tokens().count(by_fcm.device.token) == 1
    assert len(jpush.delivered_to(rid)) == 1
    # Neither provider saw the other's device.
    assert all(rid not in fcm.recorded_tokens() for rid in (rid, sentinel_rid))
    assert not jpush.delivered_to(by_fcm.device.token)


def test_quiet_hours_hold_for_jpush(
    committed_session: Session, notifications_worker: WorkerProcess, jpush: JPushStandin
) -> None:
    night = zone_at_local_hour(23, 24) if utcnow().minute < 50 else zone_at_local_hour(0, 5)
    rid = _rid()
    target = _summon(committed_session, night, rid, "jpush")
    _relay(notifications_worker)
    [row] = _wait(notifications_worker, lambda: _pushes(target.event_id), "the push row")
    assert row.status == PushStatus.pending and row.attempts == 0
    # Held until 08:00 on the phone's clock, not sent now; the inbox has it already.
    assert row.next_attempt_at.astimezone(UTC) > utcnow() + timedelta(hours=2)
    notifications_worker.send("gongping.notifications.retry_due", [], uuid.uuid4().hex)
    sentinel_rid = _rid()
    _summon(committed_session, zone_at_local_hour(10, 16), sentinel_rid, "jpush")
    _relay(notifications_worker)
    _wait(notifications_worker, lambda: _delivered(jpush, sentinel_rid), "a daytime push after the sweep")
    assert jpush.delivered_to(rid) == [] and [r.status for r in _pushes(target.event_id)] == [
        PushStatus.pending
    ]
    assert [e.kind for e in _inbox(target.user)] == ["interview_scheduled"]


def test_unregistered_registration_id_deactivates_the_device(
    committed_session: Session, notifications_worker: WorkerProcess, jpush: JPushStandin, daytime_zone: str
) -> None:
    rid = _rid()
    jpush.unregister(rid)
    target = _summon(committed_session, daytime_zone, rid, "jpush")
    _relay(notifications_worker)

    def deactivated() -> str | None:
        with new_session() as s:
            device = s.get(Device, target.device.id)
            return device.deactivated_reason if device is not None and not device.active else None

    reason = _wait(notifications_worker, deactivated, "the device to be deactivated")
    assert reason == "jpush:1011"
    [row] = _pushes(target.event_id)
    assert row.status == PushStatus.invalid_token and "1011" in (row.last_error or "")
    assert len(_inbox(target.user)) == 1


def test_rate_limit_and_server_error_back_off_and_arrive_once(
    committed_session: Session, notifications_worker: WorkerProcess, jpush: JPushStandin, daytime_zone: str
) -> None:
    jpush.rate_limit_reset_s = 2
    # The first try is rate limited (retried when JPush's window resets), the second meets a 503.
    jpush.fail_next(1, "rate")
    rid = _rid()
    target = _summon(committed_session, daytime_zone, rid, "jpush")
    _relay(notifications_worker)
    [row] = _wait(
        notifications_worker,
        lambda: [r for r in _pushes(target.event_id) if r.attempts >= 1 and r.status == PushStatus.pending],
        "the rate-limited try",
    )
    assert "2002" in (row.last_error or "")
    assert (row.next_attempt_at - row.created_at).total_seconds() >= 2
    jpush.fail_next(1, "timeout")
    [failed_again] = _wait(
        notifications_worker,
        lambda: [r for r in _pushes(target.event_id) if r.attempts >= 2 and r.status == PushStatus.pending],
        "the 503 try",
        timeout=60,
    )
    assert "1030" in (failed_again.last_error or "")
    # Backoff after a server error: ~20-30 s at the second attempt; the retry sweep sends it when due.
    wait_s = (failed_again.next_attempt_at - utcnow()).total_seconds()
    assert 5 < wait_s <= 31
    with new_session() as s:
        # Due now, instead of sleeping through the backoff.
        s.execute(
            update(PushDelivery)
            .where(col(PushDelivery.event_id) == target.event_id)
            .values(next_attempt_at=utcnow())
        )
        s.commit()
    notifications_worker.send("gongping.notifications.retry_due", [], uuid.uuid4().hex)
    [sent] = _wait(
        notifications_worker,
        lambda: [r for r in _pushes(target.event_id) if r.status == PushStatus.sent],
        "sent after backing off",
    )
    assert sent.attempts == 3 and len(jpush.delivered_to(rid)) == 1
    assert jpush.stats()["errors_by_code"] == {"2002": 1, "1030": 1}
