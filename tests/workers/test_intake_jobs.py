"""Intake CSV jobs in a real Celery worker: upload (202) → outbox → relay → worker → progress and counts."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend.auth.models import Role
from backend.db import new_session, session_scope
from backend.intake.models import IntakeJob, JobState
from backend.main import create_app
from backend.outbox import relay
from backend.outbox.models import OutboxEvent
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import RecordKind, RecordState
from backend.records.service import bureau_today
from tests.factories import login, make_account, make_instrument, make_operator
from tests.workers.conftest import WorkerProcess
from workers import intake_tasks


def _job_state(job_id: int) -> JobState:
    # A fresh, short transaction per poll: on SQLite an open one would hold the write lock the worker needs.
    with new_session() as check:
        state = check.exec(select(IntakeJob.state).where(IntakeJob.id == job_id)).one()
        check.rollback()
    return JobState(state)


def _file(session: Session, rows: int) -> tuple[bytes, list[int]]:
    staff = make_account(session, Role.staff, "330106")
    operator = make_operator(session, staff)
    instruments = [make_instrument(session, operator) for _ in range(rows)]
    day = (bureau_today() - timedelta(days=2)).isoformat()
    lines = ["instrument_id,verified_on,passed,certificate_no\n"]
    for i, inst in enumerate(instruments):
        lines.append(f"{inst.id},{day},{'fail' if i % 5 == 0 else 'pass'},W-{inst.id}\n")
    lines.append(f"999999999,{day},pass,W-X\n")  # unknown instrument: reported, the rest imported
    return "".join(lines).encode(), [i.id or 0 for i in instruments]


def test_an_uploaded_file_is_imported_by_the_worker(
    committed_session: Session, celery_worker_process: WorkerProcess
) -> None:
    institution = make_account(committed_session, Role.institution)
    data, ids = _file(committed_session, 30)
    committed_session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:  # real sessions that commit
        headers = login(client, institution)
        resp = client.post(
            "/api/v1/intake/verifications/import",
            files={"file": ("w.csv", data, "text/csv")},
            headers=headers,
        )
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        with session_scope() as s:
            assert relay.relay_once(s, sender=celery_worker_process.send) >= 1
        deadline = time.monotonic() + 90
        while _job_state(job_id) in (JobState.queued, JobState.running) and time.monotonic() < deadline:
            assert celery_worker_process.process.poll() is None, celery_worker_process.output()
            time.sleep(0.25)
        job: dict[str, Any] = client.get(f"/api/v1/intake/jobs/{job_id}", headers=headers).json()
        assert job["state"] == "succeeded", celery_worker_process.output()
        assert job["progress"] == {"done": 31, "total": 31, "percent": 100.0}
        assert (job["imported"], job["rejected"], job["records_created"]) == (30, 1, 6)
        errors = client.get(f"/api/v1/intake/jobs/{job_id}/errors", headers=headers).json()
        assert [(e["row"], e["code"]) for e in errors["items"]] == [(32, "unknown_instrument")]
    with new_session() as s:
        records = s.exec(
            select(IntegrityRecord).where(IntegrityRecord.instrument_id.in_(ids))  # type: ignore[union-attr]
        ).all()
        assert len(records) == 6 and all(
            r.kind is RecordKind.INSTRUMENT_FAILED_VERIFICATION
            and r.source is RecordSource.institution
            and r.state is RecordState.REPORTED
            for r in records
        )
        event = s.exec(select(OutboxEvent).where(OutboxEvent.topic == "intake.job_submitted")).one()
        assert event.published_at is not None
        event_id = event.id
        s.rollback()
    # Delivered again (a crash between send and mark): the finished job is left alone.
    assert intake_tasks.run_job_task(event_id) == "succeeded"
    with new_session() as s:
        assert s.exec(select(IntakeJob.imported).where(IntakeJob.id == job_id)).one() == 30
        s.rollback()


def test_a_job_whose_file_is_gone_fails_with_a_reason(committed_session: Session) -> None:
    from backend.media.factory import media_storage

    institution = make_account(committed_session, Role.institution)
    data, _ids = _file(committed_session, 2)
    committed_session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        headers = login(client, institution)
        resp = client.post(
            "/api/v1/intake/verifications/import",
            files={"file": ("w.csv", data, "text/csv")},
            headers=headers,
        )
        job_id = resp.json()["id"]
        with new_session() as s:
            job = s.get(IntakeJob, job_id)
            assert job is not None
            media_storage().delete(job.file_key)
            event_id = s.exec(select(OutboxEvent.id).where(OutboxEvent.topic == "intake.job_submitted")).one()
            s.rollback()
        assert intake_tasks.run_job_task(event_id) == "failed"
        body = client.get(f"/api/v1/intake/jobs/{job_id}", headers=headers).json()
        assert body["state"] == "failed" and "gone" in body["failure"]
