"""The routing and deadline tasks: wiring, retries, the sweeps on committed data, and a complaint submitted
through the API that a real worker routes and whose bureau's staff find it in their inbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from celery.exceptions import Retry
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.cases.models import Case, CaseDeadline
from backend.cases.routing import GeocoderRetry
from backend.complaints.models import Complaint, RoutingStatus
from backend.db import new_session, utcnow
from backend.main import create_app
from backend.notices.models import InboxNotification
from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from tests.factories import COUNTY_A, complaint_json, login, make_account, post_complaint
from tests.workers.conftest import WorkerProcess
from workers import cases_tasks
from workers.celery_app import celery_app

T = TypeVar("T")


def test_tasks_are_registered_subscribed_and_scheduled() -> None:
    assert relay.TOPIC_TASKS["complaint.created"][:2] == (
        "gongping.complaints.process_photos",
        "gongping.complaints.route",
    )
    celery_app.loader.import_default_modules()
    for name in (
        "gongping.complaints.route",
        "gongping.complaints.route_stale",
        "gongping.cases.deadline_sweep",
    ):
        assert name in celery_app.tasks
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert {"gongping.cases.deadline_sweep", "gongping.complaints.route_stale"} <= scheduled


class _FakeTask:
    def __init__(self, retries: int = 2) -> None:
        self.request = SimpleNamespace(retries=retries)
        self.countdown: int | None = None

    def retry(self, exc: BaseException, countdown: int) -> Retry:
        self.countdown = countdown
        return Retry(exc=exc, when=countdown)


def test_route_task_retries_transient_errors_only(monkeypatch: pytest.MonkeyPatch) -> None:
    finals: list[bool] = []

    def offline(event_id: int, *, final_attempt: bool = False) -> str:
        finals.append(final_attempt)
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(cases_tasks, "route_event", offline)
    task = _FakeTask()
    with pytest.raises(Retry):
        cases_tasks._route(task, 1)
    assert task.countdown == 40

    def geocoder_down(event_id: int, *, final_attempt: bool = False) -> str:
        finals.append(final_attempt)
        raise GeocoderRetry("timed out")

    monkeypatch.setattr(cases_tasks, "route_event", geocoder_down)
    with pytest.raises(Retry):
        cases_tasks._route(_FakeTask(), 1)

    def bug(event_id: int, *, final_attempt: bool = False) -> str:
        finals.append(final_attempt)
        raise KeyError("a bug is not retried")

    monkeypatch.setattr(cases_tasks, "route_event", bug)
    with pytest.raises(KeyError):
        cases_tasks._route(_FakeTask(retries=cases_tasks.MAX_RETRIES), 1)
    # Only the last attempt lets a failing geocoder give up to triage.
    assert finals == [False, False, True]


def _submit(client: TestClient, headers: dict[str, str], **overrides: Any) -> int:
    resp = post_complaint(client, headers, complaint_json(**overrides))
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def test_stale_complaints_are_routed_by_the_sweep(committed_session: Session) -> None:
    device = make_account(committed_session, Role.consumer_device)
    committed_session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        headers = login(client, device)
        stale, fresh = _submit(client, headers), _submit(client, headers)
    complaint = committed_session.get(Complaint, stale)
    assert complaint is not None
    complaint.created_at = utcnow() - timedelta(hours=1)
    committed_session.add(complaint)
    committed_session.commit()
    assert cases_tasks.route_stale_task.apply().get() == 1
    with new_session() as check:
        statuses = {
            c.id: c.routing_status
            for c in check.execute(select(Complaint).where(col(Complaint.id).in_([stale, fresh]))).scalars()
        }
    assert statuses == {stale: RoutingStatus.routed, fresh: RoutingStatus.pending}


def test_deadline_sweep_task_on_committed_cases(committed_session: Session) -> None:
    device = make_account(committed_session, Role.consumer_device)
    committed_session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        complaint_id = _submit(client, login(client, device))
    cases_tasks.route_one(complaint_id)
    with new_session() as s:
        case = s.execute(select(Case).where(col(Case.complaint_id) == complaint_id)).scalar_one()
        deadline = s.execute(select(CaseDeadline).where(col(CaseDeadline.case_id) == case.id)).scalar_one()
        deadline.due_before = utcnow() - timedelta(minutes=1)
        s.add(deadline)
        s.commit()
    assert cases_tasks.deadline_sweep_task.apply().get() == 1
    assert cases_tasks.deadline_sweep_task.apply().get() == 0
    with new_session() as check:
        fresh = check.get(Case, case.id)
        assert fresh is not None and fresh.overdue and fresh.escalated_to == "330100"


# ---- a real worker ----------------------------------------------------------------------------------------


def _poll(read: Callable[[Session], T | None], worker: WorkerProcess, timeout: float = 60) -> T:
    """Read in short transactions until ``read`` finds something (SQLite: never hold the worker's lock)."""
    deadline = time.monotonic() + timeout
    while True:
        with new_session() as check:
            found = read(check)
            # Detached before the rollback, which would otherwise expire what was just read.
            check.expunge_all()
            check.rollback()
        if found is not None:
            return found
        assert worker.process.poll() is None, worker.output()
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.25)


def test_a_submitted_complaint_is_routed_by_a_real_worker_and_the_bureau_told(
    committed_session: Session, celery_worker_process: WorkerProcess
) -> None:
    staff = make_account(committed_session, Role.staff, COUNTY_A)
    device = make_account(committed_session, Role.consumer_device)
    committed_session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:  # real sessions that commit
        headers = login(client, device)
        complaint_id = _submit(
            client, headers, location={"lon": 120.1408, "lat": 30.2568, "coord_system": "gcj02"}
        )
        with new_session() as s:
            first_event_id = s.execute(
                select(func.min(OutboxEvent.id)).where(col(OutboxEvent.published_at).is_(None))
            ).scalar_one()
            assert relay.relay_once(s, sender=celery_worker_process.send) >= 1
            s.commit()

        def routed(s: Session) -> Case | None:
            return s.execute(select(Case).where(col(Case.complaint_id) == complaint_id)).scalar_one_or_none()

        case = _poll(routed, celery_worker_process)
        assert case.jurisdiction_code == COUNTY_A and case.state == "routed"
        body = client.get(f"/api/v1/complaints/{complaint_id}", headers=headers).json()
        assert body["routing"] == {"status": "routed", "jurisdiction_code": COUNTY_A}
        staff_headers = login(client, staff)
        detail = client.get(f"/api/v1/cases/{case.id}", headers=staff_headers).json()
        assert detail["routing"]["rule"] in (2, 6) and detail["routing"]["reason"]
        # The case.assigned event the worker wrote goes out on the next relay pass; the staff's inbox has it.
        with new_session() as s:
            assert relay.relay_once(s, sender=celery_worker_process.send) >= 1
            s.commit()

        def told(s: Session) -> InboxNotification | None:
            return s.execute(
                select(InboxNotification).where(
                    col(InboxNotification.recipient_id) == staff.id,
                    col(InboxNotification.kind) == "case_assigned",
                )
            ).scalar_one_or_none()

        notice = _poll(told, celery_worker_process)
        assert case.case_no in notice.body or notice.data.get("case_no") == case.case_no
        # Every task of both events finished and said so: the redrive sweep leaves them alone.

        def handled(s: Session) -> list[OutboxEvent] | None:
            rows = [
                r
                for r in s.execute(
                    select(OutboxEvent).where(
                        col(OutboxEvent.topic).in_(["complaint.created", "case.assigned"]),
                        col(OutboxEvent.id) >= first_event_id,
                    )
                ).scalars()
                if r.payload.get("complaint_id") == complaint_id or r.payload.get("case_id") == case.id
            ]
            return rows if len(rows) == 2 and all(r.handled_at is not None for r in rows) else None

        events = _poll(handled, celery_worker_process)
        assert {e.topic for e in events} == {"complaint.created", "case.assigned"}
