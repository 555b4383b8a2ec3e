"""The workbench's review queues: reported records verified or dismissed, correction requests decided, intake
jobs with their progress and error reports — through the same services as the API, audited the same way."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.intake.models import IntakeJob, JobState
from backend.outbox.models import OutboxEvent
from backend.records import corrections
from backend.records.models import CorrectionAction, CorrectionRequest, CorrectionStatus, IntegrityRecord
from backend.records.rules import RecordState
from backend.records.schemas import CorrectionCreate
from tests.backend.cases.conftest import Bureaus
from tests.backend.workbench.conftest import wb_login
from tests.factories import COUNTY_A, COUNTY_B, make_account, make_intake_job, make_record


def _reported(
    session: Session, bureaus: Bureaus, source: str = "institution", kind: str = "short_weight"
) -> IntegrityRecord:
    record = make_record(session, bureaus.market, kind, verified=False, source=source)
    session.commit()
    return record


def _actions(session: Session, entity_type: str, entity_id: int | str) -> list[str]:
    session.expire_all()
    return list(
        session.exec(
            select(AuditEntry.action)
            .where(col(AuditEntry.entity_type) == entity_type, col(AuditEntry.entity_id) == str(entity_id))
            .order_by(col(AuditEntry.id))
        )
    )


def test_the_landing_page_counts_each_queue(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    _reported(session, bureaus)
    _reported(session, bureaus, "supervisor")
    make_record(session, bureaus.market, "short_weight", verified=False, source="staff")  # not a report
    session.commit()
    wb_login(client, bureaus.county_a)
    page = client.get("/workbench/reviews")
    assert page.status_code == 200
    assert 'href="/workbench/reviews/records"' in page.text and "2 项待办" in page.text
    # County B's staff see none of county A's reports.
    wb_login(client, bureaus.county_b)
    assert "2 项待办" not in client.get("/workbench/reviews").text


def test_a_reported_record_is_verified_and_another_dismissed(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    first = _reported(session, bureaus, kind="instrument_failed_verification")
    second = _reported(session, bureaus, "association")
    csrf = wb_login(client, bureaus.county_a)
    page = client.get("/workbench/reviews/records")
    assert page.status_code == 200
    assert f'action="/workbench/records/{first.id}/verify"' in page.text
    # Only the finding each kind can carry is asked for.
    assert f'id="verify-use-{first.id}"' in page.text and f'id="verify-use-{second.id}"' not in page.text
    listed = session.exec(
        select(AuditEntry).where(col(AuditEntry.action) == "record.list").order_by(col(AuditEntry.id).desc())
    ).first()
    assert listed is not None and set(listed.after["record_ids"]) == {first.id, second.id}

    resp = client.post(
        f"/workbench/records/{first.id}/verify",
        data={"csrf": csrf, "reason": "现场复核属实", "instrument_still_in_use": "1"},
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/workbench/reviews/records?done=verify"
    # Dismissing needs a reason: the service's refusal shows in place and nothing changes.
    refused = client.post(f"/workbench/records/{second.id}/dismiss", data={"csrf": csrf, "reason": ""})
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    session.expire_all()
    still = session.get(IntegrityRecord, second.id)
    assert still is not None and still.state is RecordState.REPORTED
    ok = client.post(
        f"/workbench/records/{second.id}/dismiss",
        data={"csrf": csrf, "reason": "无法证实"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    session.expire_all()
    verified, dismissed = session.get(IntegrityRecord, first.id), session.get(IntegrityRecord, second.id)
    assert verified is not None and verified.state is RecordState.VERIFIED
    assert verified.instrument_still_in_use is True
    assert dismissed is not None and dismissed.state is RecordState.DISMISSED
    assert "record.verify" in _actions(session, "integrity_record", first.id or 0)
    assert "record.dismiss" in _actions(session, "integrity_record", second.id or 0)
    # A verified record is no longer in the queue; a second verify is the service's conflict, shown in place.
    again = client.post(f"/workbench/records/{first.id}/verify", data={"csrf": csrf})
    assert again.status_code == 409 and 'role="alert"' in again.text


def test_records_out_of_scope_and_forged_forms_are_refused(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    record = _reported(session, bureaus)
    csrf = wb_login(client, bureaus.county_b)
    assert client.post(f"/workbench/records/{record.id}/verify", data={"csrf": csrf}).status_code == 404
    wb_login(client, bureaus.county_a)
    assert client.post(f"/workbench/records/{record.id}/verify", data={"csrf": "forged"}).status_code == 400
    session.expire_all()
    fresh = session.get(IntegrityRecord, record.id)
    assert fresh is not None and fresh.state is RecordState.REPORTED


def _correction(session: Session, bureaus: Bureaus) -> CorrectionRequest:
    record = make_record(session, bureaus.market, "short_weight")
    row = corrections.request(
        session,
        record=record,
        data=CorrectionCreate(action=CorrectionAction.revoke, reasons="复称所用砝码未经检定"),
        actor=bureaus.market_user,
    )
    session.commit()
    return row


def test_a_correction_request_is_decided_with_reasons(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    row = _correction(session, bureaus)
    csrf = wb_login(client, bureaus.county_a)
    page = client.get("/workbench/reviews/corrections")
    assert page.status_code == 200 and "复称所用砝码未经检定" in page.text
    assert "correction.list" in _actions(session, "correction_request", "*")
    # No decision chosen: the schema's refusal in place, the request still pending.
    bad = client.post(f"/workbench/corrections/{row.id}/decide", data={"csrf": csrf, "reasons": "理由"})
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    resp = client.post(
        f"/workbench/corrections/{row.id}/decide",
        data={"csrf": csrf, "decision": "reject", "reasons": "砝码检定证书有效"},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    session.expire_all()
    decided = session.get(CorrectionRequest, row.id)
    assert decided is not None and decided.status is CorrectionStatus.rejected
    assert decided.decision_reasons == "砝码检定证书有效" and decided.decided_by_id == bureaus.county_a.id
    assert "correction.decide" in _actions(session, "correction_request", row.id or 0)
    assert session.exec(
        select(OutboxEvent).where(col(OutboxEvent.dedupe_key) == f"correction.decided:{row.id}")
    ).first()
    # Deciding twice is the service's 409, in place.
    twice = client.post(
        f"/workbench/corrections/{row.id}/decide",
        data={"csrf": csrf, "decision": "reject", "reasons": "再次"},
    )
    assert twice.status_code == 409
    wb_login(client, bureaus.county_b)
    assert client.get("/workbench/reviews/corrections").text.count("砝码") == 0


def _job(session: Session, code: str, state: JobState = JobState.running) -> IntakeJob:
    job = make_intake_job(session, make_account(session, Role.institution, code), state=state)
    session.commit()
    return job


def test_intake_jobs_show_progress_and_their_error_report(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    job = _job(session, COUNTY_A)
    other = _job(session, COUNTY_B)
    wb_login(client, bureaus.county_a)
    listing = client.get("/workbench/reviews/intake")
    assert listing.status_code == 200
    assert f'href="/workbench/intake/{job.id}"' in listing.text
    assert f'href="/workbench/intake/{other.id}"' not in listing.text
    page = client.get(f"/workbench/intake/{job.id}")
    assert page.status_code == 200
    # Without JavaScript: a link that reloads the page; with it, the script polls this JSON.
    assert f'href="/workbench/intake/{job.id}" data-field="refresh"' in page.text
    assert 'value="25.0"' in page.text and "未找到该出厂编号的计量器具" in page.text
    progress = client.get(f"/workbench/intake/{job.id}/progress.json").json()
    assert progress == {
        "state": "running",
        "done": 50,
        "total": 200,
        "percent": 25.0,
        "imported": 45,
        "duplicates": 0,
        "rejected": 5,
        "records_created": 0,
        "live": True,
    }
    report = client.get(f"/workbench/intake/{job.id}/errors.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert report.text.startswith("\ufeff") and "instrument_unknown" in report.text
    # Another county's job is a 404 in our error shape, on the page and the JSON alike.
    assert client.get(f"/workbench/intake/{other.id}").status_code == 404
    missing = client.get(f"/workbench/intake/{other.id}/progress.json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # A finished job's page has no refresh link and is not polled.
    done = _job(session, COUNTY_A, JobState.succeeded)
    finished = client.get(f"/workbench/intake/{done.id}").text
    assert "data-progress-url" not in finished and 'data-field="refresh"' not in finished
