"""kill -9 a real Celery worker in the middle of a task; a new worker finishes the work exactly once.

Each test arms a pause point (``backend.faults``) in the first worker, waits until the task is parked there,
SIGKILLs the worker (no acknowledgement, no rollback of its own), starts a second worker without the pause and
checks that Redis handed the unacknowledged message to it (``acks_late`` + a short visibility timeout) and that
the outcome exists once: one set of photo renditions, one routing decision, one push per device at the FCM
stand-in.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from backend.auth.models import Role
from backend.complaints.models import ComplaintPhoto, PhotoStatus
from backend.db import utcnow
from backend.notices.delivery import STALE_AFTER, reclaim_stale
from backend.notices.models import PushDelivery, PushStatus
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.records.service import bureau_today
from tests.factories import COUNTY_A, complaint_json, make_account, make_device, make_operator
from tests.faults.conftest import VISIBILITY_TIMEOUT_S, ApiServer, Proc, Stack, api_login, wait_for
from tests.fixtures.media_images import jpeg, photo_like
from tests.support.fcm_standin import FcmStandin, StandinServer, write_service_account

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

PAUSE_S = 120


def _armed(stack: Stack, point: str, extra: dict[str, str] | None = None) -> tuple[Proc, Path]:
    """A worker that parks in ``point``; returns it and the file that appears when it gets there."""
    signals = Path(tempfile.mkdtemp(prefix="gongping-fault-signal-", dir=stack.folder))
    env = {
        "GONGPING_FAULT_PAUSE": f"{point}={PAUSE_S}",
        "GONGPING_FAULT_SIGNAL_DIR": str(signals),
        **(extra or {}),
    }
    return stack.worker(env), signals / point


def _kill_when_parked(worker: Proc, reached: Path) -> None:
    wait_for(lambda: reached.exists() or worker.exited(), f"the worker to reach {reached.name}", timeout=90)
    assert not worker.exited(), worker.output()
    worker.kill9()


def _submit(server: ApiServer, stack: Stack, photos: list[bytes]) -> int:
    with stack.session() as s:
        device = make_account(s, Role.consumer_device)
        s.commit()
        username = device.username
    with server.client() as client:
        headers = {**api_login(client, username), "Idempotency-Key": uuid.uuid4().hex}
        files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
        resp = client.post(
            "/api/v1/complaint-form",
            data={"complaint": json.dumps(complaint_json(), ensure_ascii=False)},
            files=files or None,
            headers=headers,
        )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _succeeded(worker: Proc, task: str, event_id: int) -> bool:
    return f"outbox-{event_id}-{task}] succeeded" in worker.output()


def _event_of(stack: Stack, complaint_id: int) -> int:
    return int(
        stack.scalar(
            "SELECT id FROM outbox_event WHERE topic = 'complaint.created' "
            "AND CAST(payload ->> 'complaint_id' AS integer) = :cid",
            cid=complaint_id,
        )
    )


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_killed_mid_photo_processing_the_photos_are_processed_once(
    stack: Stack, api_server: ApiServer
) -> None:
    photos = [jpeg(photo_like(900, 700, seed=31)), jpeg(photo_like(700, 900, seed=32))]
    complaint_id = _submit(api_server, stack, photos)
    event_id = _event_of(stack, complaint_id)
    first, reached = _armed(stack, "photo.before_write")
    assert stack.relay_once() >= 1
    # Parked after the renditions of the first photo were written to storage, before the database knew.
    _kill_when_parked(first, reached)
    assert stack.scalar(
        "SELECT count(*) FROM complaint_photo WHERE complaint_id = :c AND status = 'pending'", c=complaint_id
    ) == len(photos)
    second = stack.worker()
    try:
        wait_for(
            lambda: _succeeded(second, "gongping.complaints.process_photos", event_id),
            "the redelivered photo task to succeed on the new worker",
            timeout=60 + VISIBILITY_TIMEOUT_S,
        )
        with stack.session() as s:
            rows = s.exec(
                select(ComplaintPhoto)
                .where(ComplaintPhoto.complaint_id == complaint_id)
                .order_by(col(ComplaintPhoto.position))
            ).all()
        assert [r.status for r in rows] == [PhotoStatus.processed, PhotoStatus.processed]
        # One set of renditions: the killed run's files are the very ones the rerun recorded (content keys).
        displays = _files(stack.media_dir / "complaint-display")
        thumbnails = _files(stack.media_dir / "complaint-thumbnails")
        assert len({r.display_key for r in rows}) == len(rows) == len(displays) == len(thumbnails)
        for row in rows:
            assert row.display_key and (stack.media_dir / row.display_key).is_file()
            assert row.thumbnail_key and (stack.media_dir / row.thumbnail_key).is_file()
        # Delivered twice in all: once to the killed worker, once (redelivered) to the new one.
        assert first.output().count(f"outbox-{event_id}-gongping.complaints.process_photos] received") == 1
        assert second.output().count(f"outbox-{event_id}-gongping.complaints.process_photos] received") == 1
    finally:
        second.stop()


def test_killed_mid_routing_the_complaint_is_routed_once(stack: Stack, api_server: ApiServer) -> None:
    complaint_id = _submit(api_server, stack, [])
    event_id = _event_of(stack, complaint_id)
    first, reached = _armed(stack, "route.before_commit")
    assert stack.relay_once() >= 1
    # Parked inside the routing transaction, after the case row was written and before the commit.
    _kill_when_parked(first, reached)
    assert stack.scalar("SELECT count(*) FROM case_file WHERE complaint_id = :c", c=complaint_id) == 0
    second = stack.worker()
    try:
        wait_for(
            lambda: _succeeded(second, "gongping.complaints.route", event_id),
            "the redelivered routing task to succeed on the new worker",
            timeout=60 + VISIBILITY_TIMEOUT_S,
        )
        assert stack.scalar("SELECT count(*) FROM case_file WHERE complaint_id = :c", c=complaint_id) == 1
        assert stack.scalar("SELECT routing_status FROM complaint WHERE id = :c", c=complaint_id) == "routed"
        case_id = stack.scalar("SELECT id FROM case_file WHERE complaint_id = :c", c=complaint_id)
        assigned = stack.scalar(
            "SELECT count(*) FROM outbox_event WHERE topic = 'case.assigned' "
            "AND CAST(payload ->> 'case_id' AS integer) = :case",
            case=case_id,
        )
        assert assigned == 1
        assert second.output().count(f"outbox-{event_id}-gongping.complaints.route] received") == 1
    finally:
        second.stop()


@pytest.fixture
def fcm(stack: Stack) -> Iterator[tuple[StandinServer, Path]]:
    """The FCM stand-in (in this process) and a service account pointing at it."""
    with StandinServer(FcmStandin()) as server:
        account = write_service_account(stack.folder / "fcm" / "service-account.json", server.token_uri)
        yield server, account


def test_killed_mid_push_batch_each_device_gets_one_push(
    stack: Stack, fcm: tuple[StandinServer, Path]
) -> None:
    from tests.backend.notices.conftest import zone_at_local_hour

    server, account = fcm
    push_env = {"GONGPING_FIREBASE_CREDENTIALS": str(account), "GONGPING_FCM_ENDPOINT": server.base_url}
    zone = zone_at_local_hour(10, 16)
    tokens = [f"fault-{uuid.uuid4().hex}-{i}" for i in range(12)]
    with stack.session() as s:
        staff = make_account(s, Role.staff, COUNTY_A)
        operator = make_operator(s, staff)
        users = [make_account(s, Role.operator, operator_id=operator.id) for _ in range(3)]
        for i, token in enumerate(tokens):
            make_device(s, users[i % len(users)], token=token, timezone=zone)
        payload = {
            "operator_id": operator.id,
            "change_id": operator.id,
            "from": "basically_trustworthy",
            "to": "untrustworthy",
            "as_of": bureau_today().isoformat(),
        }
        emit(s, "rating.changed", payload, dedupe_key=f"fault:{uuid.uuid4().hex}")
        event = s.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
        s.commit()
        assert event is not None and event.id is not None
        event_id = event.id

    def statuses() -> list[str]:
        with stack.session() as s:
            return sorted(
                str(r.value)
                for r in s.exec(select(PushDelivery.status).where(PushDelivery.event_id == event_id)).all()
            )

    first, reached = _armed(stack, "push.claimed", push_env)
    assert stack.relay_once() >= 1
    # Parked after the batch was claimed (committed) and before FCM was called.
    _kill_when_parked(first, reached)
    assert statuses() == ["sending"] * len(tokens)
    assert server.app.recorded_tokens() == []
    second = stack.worker(push_env)
    try:
        # The relay hands notification events over in batches (with whatever else was pending), so the task
        # id is the batch's: ask the completion record instead (workers/delivery_tracking.py).
        wait_for(
            lambda: stack.scalar(
                "SELECT count(*) FROM outbox_task_done WHERE event_id = :e AND task = :t",
                e=event_id,
                t="gongping.notifications.dispatch",
            ),
            "the redelivered dispatch to succeed on the new worker",
            timeout=60 + VISIBILITY_TIMEOUT_S,
        )
        # The redelivered task must not send rows another sender claimed: whether the dead one reached FCM is
        # unknown, so they wait for the stale-claim sweep.
        assert statuses() == ["sending"] * len(tokens)
        assert server.app.recorded_tokens() == []
        # Ten minutes later (STALE_AFTER) the beat's retry sweep hands them out again: run it as of then.
        with stack.session() as s:
            assert reclaim_stale(s, utcnow() + STALE_AFTER + timedelta(seconds=1)) == len(tokens)
            s.commit()
        stack.celery.send_task("gongping.notifications.retry_due")
        wait_for(
            lambda: statuses() == ["sent"] * len(tokens),
            "every push to be sent",
            timeout=60,
        )
        # And nothing more arrives later.
        wait_for(lambda: "gongping.notifications.send_push" in second.output(), "the send task", timeout=10)
        time.sleep(2)
        assert sorted(server.app.recorded_tokens()) == sorted(tokens), second.output()[-3000:]
        assert statuses() == [PushStatus.sent.value] * len(tokens)
        inbox = stack.scalar("SELECT count(*) FROM inbox_notification WHERE event_id = :e", e=event_id)
        assert inbox == len(users)
    finally:
        second.stop()
