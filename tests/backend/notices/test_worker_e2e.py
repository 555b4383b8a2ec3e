"""End to end through a real Celery worker and the real firebase-admin SDK: outbox → relay → worker → FCM.

The worker runs with ``GONGPING_FIREBASE_CREDENTIALS`` (a service account whose ``token_uri`` is the stand-in)
and ``GONGPING_FCM_ENDPOINT`` (the stand-in), on the committed test database and a broker of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.db import new_session, session_scope
from backend.notices.models import Device, InboxNotification, PushDelivery, PushStatus
from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.records.service import bureau_today
from tests.factories import COUNTY_A, make_account, make_device, make_instrument, make_operator
from tests.support.fcm_standin import ERRORS_BY_PREFIX, FcmStandin
from tests.workers.conftest import WorkerProcess

T = TypeVar("T")


@dataclass
class Recipient:
    """An operator user with one device, and the id of an event that notifies it."""

    user: Account
    device: Device
    event_id: int


def _recipient(session: Session, zone: str, token: str, topic: str = "rating.changed") -> Recipient:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    user = make_account(session, Role.operator, operator_id=operator.id)
    device = make_device(session, user, token=token, timezone=zone)
    if topic == "rating.changed":
        payload: dict[str, object] = {
            "operator_id": operator.id,
            "change_id": operator.id,
            "from": "basically_trustworthy",
            "to": "untrustworthy",
            "as_of": bureau_today().isoformat(),
        }
    else:
        instrument = make_instrument(session, operator, verified_on=bureau_today() - timedelta(days=400))
        assert instrument.valid_until is not None
        payload = {
            "instrument_id": instrument.id,
            "operator_id": operator.id,
            "valid_until": instrument.valid_until.isoformat(),
        }
    emit(session, topic, payload, dedupe_key=f"e2e:{uuid.uuid4().hex}")
    event = session.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
    session.commit()
    assert event is not None and event.id is not None
    return Recipient(user, device, event.id)


def _relay(worker: WorkerProcess) -> None:
    with session_scope() as s:
        assert relay.relay_once(s, sender=worker.send) >= 1


def _wait(worker: WorkerProcess, probe: Callable[[], T | None], what: str, timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.output()
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{worker.output()}")


def _pushes(event_id: int) -> list[PushDelivery]:
    # A fresh, short transaction per poll: on SQLite an open one would hold the write lock the worker needs.
    with new_session() as s:
        rows = list(s.exec(select(PushDelivery).where(PushDelivery.event_id == event_id)).all())
        s.expunge_all()  # closing then ends the transaction without expiring what was read
    return rows


def _inbox(account: Account) -> list[InboxNotification]:
    with new_session() as s:
        rows = list(
            s.exec(select(InboxNotification).where(InboxNotification.recipient_id == account.id)).all()
        )
        s.expunge_all()
    return rows


def test_worker_says_push_is_on(notifications_worker: WorkerProcess) -> None:
    # The whole log: output() is its tail, and the session's worker may have handled other tests' events first.
    def started() -> bool:
        log = notifications_worker.log.read_text(errors="replace")
        return "push notifications ON" in log and "JPush ON" in log

    _wait(notifications_worker, started, "start-up log")


def test_event_reaches_inbox_and_phone_once_even_when_redelivered(
    committed_session: Session, notifications_worker: WorkerProcess, fcm: FcmStandin, daytime_zone: str
) -> None:
    first = _recipient(committed_session, daytime_zone, "e2e_" + uuid.uuid4().hex * 3)
    _relay(notifications_worker)
    message = _wait(
        notifications_worker, lambda: _message(fcm, first.device.token), "the push at the stand-in"
    )
    assert message["data"]["kind"] == "rating_changed"
    assert message["notification"]["title"] == "计量诚信等级变更"
    assert message["android"]["priority"] == "high"
    assert message["android"]["collapse_key"].startswith("rating:")
    assert [e.kind for e in _inbox(first.user)] == ["rating_changed"]
    [row] = _wait(
        notifications_worker,
        lambda: [r for r in _pushes(first.event_id) if r.status == PushStatus.sent],
        "sent",
    )
    assert row.provider_message_id and row.attempts == 1

    # The broker redelivers the event's task (twice, under new ids): nothing more may reach the phone.
    for _ in range(2):
        notifications_worker.send("gongping.notifications.dispatch", [first.event_id], uuid.uuid4().hex)
    # The solo worker takes its queue in order: once a later event is delivered, the redeliveries are done.
    sentinel = _recipient(committed_session, daytime_zone, "e2e_" + uuid.uuid4().hex * 3)
    _relay(notifications_worker)
    _wait(notifications_worker, lambda: _message(fcm, sentinel.device.token), "the sentinel push")
    assert fcm.recorded_tokens().count(first.device.token) == 1
    assert len(_inbox(first.user)) == 1 and len(_pushes(first.event_id)) == 1


def _message(fcm: FcmStandin, token: str) -> dict[str, object] | None:
    try:
        return fcm.message_for(token)
    except KeyError:
        return None


def test_quota_exceeded_is_retried_after_retry_after_and_arrives_once(
    committed_session: Session, notifications_worker: WorkerProcess, fcm: FcmStandin, daytime_zone: str
) -> None:
    fcm.retry_after = "2"
    target = _recipient(committed_session, daytime_zone, "e2e_" + uuid.uuid4().hex * 3)
    fcm.fail_next(1, ERRORS_BY_PREFIX["quota-"])
    _relay(notifications_worker)
    _wait(notifications_worker, lambda: _message(fcm, target.device.token), "the retried push", timeout=120)
    [row] = _wait(
        notifications_worker,
        lambda: [r for r in _pushes(target.event_id) if r.status == PushStatus.sent],
        "sent",
    )
    assert row.attempts == 2 and fcm.stats()["errors_by_code"] == {"QUOTA_EXCEEDED": 1}
    assert row.sent_at is not None and row.claimed_at is None
    # Sent no sooner than FCM asked.
    assert (row.sent_at - row.created_at).total_seconds() >= 2
    assert fcm.recorded_tokens().count(target.device.token) == 1


def test_unregistered_token_is_deactivated_by_the_worker(
    committed_session: Session, notifications_worker: WorkerProcess, fcm: FcmStandin, daytime_zone: str
) -> None:
    target = _recipient(committed_session, daytime_zone, "unregistered-" + uuid.uuid4().hex * 3)
    _relay(notifications_worker)

    def deactivated() -> bool:
        with new_session() as s:
            device = s.get(Device, target.device.id)
            active = device.active if device is not None else True
        return not active

    _wait(notifications_worker, deactivated, "the device to be deactivated")
    [row] = _pushes(target.event_id)
    assert row.status == PushStatus.invalid_token and "UNREGISTERED" in (row.last_error or "")
    assert len(_inbox(target.user)) == 1


def test_sweep_reminders_wait_for_the_retry_sweep_and_go_out_in_batches(
    committed_session: Session, notifications_worker: WorkerProcess, fcm: FcmStandin, daytime_zone: str
) -> None:
    target = _recipient(committed_session, daytime_zone, "e2e_" + uuid.uuid4().hex * 3, "instrument.overdue")
    _relay(notifications_worker)
    [row] = _wait(notifications_worker, lambda: _pushes(target.event_id), "the push row")
    assert row.status == PushStatus.pending and [e.kind for e in _inbox(target.user)] == [
        "verification_overdue"
    ]
    # Beat's retry sweep hands the due rows to send tasks on the same queue.
    notifications_worker.send("gongping.notifications.retry_due", [], uuid.uuid4().hex)
    message = _wait(notifications_worker, lambda: _message(fcm, target.device.token), "the batched push")
    assert message["data"]["kind"] == "verification_overdue"
    assert fcm.recorded_tokens().count(target.device.token) == 1


def test_a_batch_task_handles_many_events_and_sends_only_the_interactive_ones_at_once(
    committed_session: Session, notifications_worker: WorkerProcess, fcm: FcmStandin, daytime_zone: str
) -> None:
    rated = [_recipient(committed_session, daytime_zone, "e2e_" + uuid.uuid4().hex * 3) for _ in range(3)]
    overdue = _recipient(committed_session, daytime_zone, "e2e_" + uuid.uuid4().hex * 3, "instrument.overdue")
    ids = [r.event_id for r in (*rated, overdue)]
    notifications_worker.send("gongping.notifications.dispatch_batch", [ids], uuid.uuid4().hex)
    for target in rated:
        _wait(notifications_worker, lambda t=target: _message(fcm, t.device.token), "a batched event's push")
    # The sweep topic's push waits for the retry sweep, as with the one-event task.
    [row] = _pushes(overdue.event_id)
    assert row.status == PushStatus.pending
    # Redelivered, alone and as a batch: nothing more reaches any phone.
    notifications_worker.send("gongping.notifications.dispatch_batch", [ids], uuid.uuid4().hex)
    notifications_worker.send("gongping.notifications.dispatch", [rated[0].event_id], uuid.uuid4().hex)
    notifications_worker.send("gongping.notifications.retry_due", [], uuid.uuid4().hex)
    _wait(notifications_worker, lambda: _message(fcm, overdue.device.token), "the swept push")
    for target in (*rated, overdue):
        assert fcm.recorded_tokens().count(target.device.token) == 1
        assert len(_inbox(target.user)) == 1 and len(_pushes(target.event_id)) == 1
