"""/me/supervisor-reports is one list: a patrol report filed with photos through /complaints is in it beside the
reports filed through /supervisor-reports, newest first, paged as one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Role
from backend.cases.models import Case, CaseKind, CaseOutcome
from backend.complaints.models import Complaint, ComplaintCategory, ComplaintSource, PatrolFinding
from backend.records import patrol_reports
from backend.records.rules import RecordState
from backend.records.service import bureau_today
from tests.backend.complaints.conftest import Market
from tests.factories import complaint_json, login, make_account, post_complaint


def test_a_patrol_report_filed_as_a_complaint_is_in_the_supervisors_list(
    client: TestClient, session: Session, market: Market, photo_bytes: bytes
) -> None:
    today = bureau_today()
    supervisor = make_account(
        session,
        Role.supervisor,
        market.market.jurisdiction_code,
        term=(today - timedelta(days=10), today + timedelta(days=300)),
    )
    headers = login(client, supervisor)
    filed = post_complaint(
        client,
        headers,
        complaint_json(
            category="unverified_instrument",
            finding="instrument_without_valid_mark",
            operator_id=market.market.id,
            description="A12 摊位电子秤无检定标识",
            photo_kinds=["scale_display"],
        ),
        [photo_bytes],
    )
    assert filed.status_code == 201, filed.text
    reported = client.post(
        "/api/v1/supervisor-reports",
        json={
            "operator_id": market.market.id,
            "kind": "instrument_overdue",
            "fact_date": (today - timedelta(days=1)).isoformat(),
            "summary": "电子秤检定标志已过期，仍在使用",
            "instrument_still_in_use": True,
        },
        headers=headers,
    )
    assert reported.status_code == 201, reported.text

    page = client.get("/api/v1/me/supervisor-reports", headers=headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 2
    by_source = {item["source"]: item for item in body["items"]}
    assert set(by_source) == {"record", "complaint"}
    patrol = by_source["complaint"]
    assert patrol["id"] == patrol["complaint_id"] == filed.json()["id"]
    assert patrol["finding"] == "instrument_without_valid_mark" and patrol["kind"] is None
    assert patrol["kind_label_zh"] == "器具无有效检定标识" and patrol["state"] == "reported"
    assert patrol["operator_name"] == market.market.name and patrol["summary"] == "A12 摊位电子秤无检定标识"
    assert (
        by_source["record"]["id"] == reported.json()["id"]
        and by_source["record"]["kind"] == "instrument_overdue"
    )

    # Paged as one list: two pages of one, together the same two reports.
    first = client.get("/api/v1/me/supervisor-reports?limit=1", headers=headers).json()
    second = client.get("/api/v1/me/supervisor-reports?limit=1&offset=1", headers=headers).json()
    assert first["total"] == second["total"] == 2
    paged = {(i["source"], i["id"]) for i in first["items"] + second["items"]}
    assert paged == {(i["source"], i["id"]) for i in body["items"]}


def test_the_case_decision_is_the_reports_state() -> None:
    now = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    complaint = Complaint(
        id=7,
        account_id=1,
        filer_role=Role.supervisor,
        source=ComplaintSource.supervisor,
        category=ComplaintCategory.unverified_instrument,
        finding=PatrolFinding.suspected_cheating,
        operator_id=3,
        created_at=now,
        updated_at=now,
    )
    expected = {
        None: RecordState.REPORTED,
        CaseOutcome.substantiated: RecordState.VERIFIED,
        CaseOutcome.not_substantiated: RecordState.DISMISSED,
        CaseOutcome.not_accepted: RecordState.DISMISSED,
        CaseOutcome.terminated: RecordState.DISMISSED,
    }
    for outcome, state in expected.items():
        case = Case(
            case_no="TS20260501000007",
            complaint_id=7,
            kind=CaseKind.tip_off,
            received_at=now,
            outcome=outcome,
        )
        read = patrol_reports._read(complaint, "西溪农贸市场", case)
        assert read.state is state and read.case_no == "TS20260501000007", outcome
    assert patrol_reports._read(complaint, "西溪农贸市场", None).state is RecordState.REPORTED
