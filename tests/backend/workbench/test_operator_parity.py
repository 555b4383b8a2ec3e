"""The operator file's actions and the matching API calls leave identical rows, audit entries and outbox events:
scheduling an interview, recording its outcome, and verifying then revoking a record."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.records.models import IntegrityRecord, IntegrityRecordVersion
from backend.supervision.models import Interview
from tests.backend.cases.conftest import Bureaus
from tests.backend.workbench.conftest import wb_login
from tests.factories import make_record
from tests.support.traces import marks, norm, written_since


def _interview_trace(session: Session, interview_id: int, since: tuple[int, int]) -> dict[str, Any]:
    session.expire_all()
    row = session.get(Interview, interview_id)
    assert row is not None
    kept = row.model_dump(exclude={"id", "created_at", "updated_at", "decided_at"})
    return {"row": kept, **written_since(session, since)}


def test_scheduling_an_interview_and_its_outcome_match_the_api(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    market_id = bureaus.market.id or 0
    day = (date.today() + timedelta(days=5)).isoformat()
    body = {"kind": "interview", "place": "西湖区市场监管局 302 室", "subject": "计量器具超期未检"}

    since_api = marks(session)
    made = client.post(
        "/api/v1/interviews",
        json={**body, "operator_id": market_id, "scheduled_at": f"{day}T09:30:00+08:00"},
        headers=headers["county_a"],
    )
    assert made.status_code == 201, made.text
    api_id = int(made.json()["id"])
    held = client.post(
        f"/api/v1/interviews/{api_id}/outcome",
        json={"outcome": "经营者承诺一周内送检"},
        headers=headers["county_a"],
    )
    assert held.status_code == 200, held.text
    api = _interview_trace(session, api_id, since_api)

    csrf = wb_login(client, bureaus.county_a)
    since_workbench = marks(session)
    resp = client.post(
        f"/workbench/operators/{market_id}/interviews",
        data={"csrf": csrf, **body, "scheduled_at": f"{day}T09:30"},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    session.expire_all()
    wb_id = max(i.id or 0 for i in session.exec(select(Interview)))
    assert wb_id != api_id
    resp = client.post(
        f"/workbench/operators/{market_id}/interviews/{wb_id}/outcome",
        data={"csrf": csrf, "outcome": "经营者承诺一周内送检"},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    workbench = _interview_trace(session, wb_id, since_workbench)

    assert [a["action"] for a in api["audit"]] == ["interview.schedule", "interview.outcome"]
    assert [o["topic"] for o in api["outbox"]] == ["interview.scheduled"]
    assert workbench == api


def _record_trace(session: Session, record_id: int, since: tuple[int, int]) -> dict[str, Any]:
    session.expire_all()
    row = session.get(IntegrityRecord, record_id)
    assert row is not None
    versions = [
        norm(v.model_dump(exclude={"id", "record_id", "at"}))
        for v in session.exec(
            select(IntegrityRecordVersion)
            .where(col(IntegrityRecordVersion.record_id) == record_id)
            .order_by(col(IntegrityRecordVersion.version))
        )
    ]
    kept = norm(row.model_dump(exclude={"id", "created_at", "updated_at"}))
    return {"row": kept, "versions": versions, **written_since(session, since)}


def test_verifying_and_revoking_a_record_match_the_api(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    market = bureaus.market
    by_api = make_record(session, market, "short_weight", verified=False, source="supervisor")
    by_workbench = make_record(session, market, "short_weight", verified=False, source="supervisor")
    session.commit()
    steps = [("verify", {"reason": "现场复称核实"}), ("revoke", {"reason": "当事人提供新证据，予以撤销"})]

    since_api = marks(session)
    for action, body in steps:
        resp = client.post(f"/api/v1/records/{by_api.id}/{action}", json=body, headers=headers["county_a"])
        assert resp.status_code == 200, resp.text
    api = _record_trace(session, by_api.id or 0, since_api)

    csrf = wb_login(client, bureaus.county_a)
    since_workbench = marks(session)
    for action, body in steps:
        resp = client.post(
            f"/workbench/operators/{market.id}/records/{by_workbench.id}/{action}",
            data={"csrf": csrf, **body},
            follow_redirects=False,
        )
        assert resp.status_code == 303, resp.text
    workbench = _record_trace(session, by_workbench.id or 0, since_workbench)

    assert [a["action"] for a in api["audit"]] == ["record.verify", "record.revoke"]
    assert api["outbox"]
    assert workbench == api
