"""Statutory deadlines stored on cases (working days with 调休, legal basis, exactness) and the sweep that marks
overdue cases, escalates them to the parent jurisdiction and tells its staff once per deadline."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.cases.deadlines import PACKAGE_LAST_YEAR
from backend.cases.models import Case, CaseDeadline
from backend.cases.service import aware
from backend.cases.sweep import sweep_deadlines
from backend.complaints.models import Complaint
from backend.notices import handlers as notification_handlers
from tests.backend.cases.conftest import (
    PROVINCE_A,
    Bureaus,
    complaint_of,
    file_complaint,
    location,
    outbox,
    route,
)
from tests.factories import CITY_A, COUNTY_A, login, make_account

Headers = dict[str, dict[str, str]]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _received_at(session: Session, complaint_id: int, at: datetime) -> None:
    complaint = session.get(Complaint, complaint_id)
    assert complaint is not None
    complaint.created_at = at.astimezone(UTC)  # stored in UTC, as intake does
    session.add(complaint)
    session.commit()


def _deadlines(session: Session, case: Case) -> list[CaseDeadline]:
    session.expire_all()
    return list(
        session.execute(
            select(CaseDeadline).where(col(CaseDeadline.case_id) == case.id).order_by(col(CaseDeadline.id))
        ).scalars()
    )


def _sweep(session: Session, now: datetime) -> int:
    marked = sweep_deadlines(now, unit_of_work=lambda: nullcontext(session))
    session.commit()
    return marked


def test_acceptance_deadline_counts_working_days_across_the_national_day_tiaoxiu(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    complaint_id = file_complaint(client, headers["filer"])
    # Friday 26 Sep 2025: Sunday 28 Sep was a working day (调休), 1-8 Oct a holiday, Saturday 11 Oct worked.
    _received_at(session, complaint_id, datetime(2025, 9, 26, 10, 0, tzinfo=SHANGHAI))
    case = route(session, complaint_id)
    [deadline] = _deadlines(session, case)
    assert (deadline.key, deadline.start_date, deadline.due_on) == (
        "complaint_acceptance_decision",
        date(2025, 9, 26),
        date(2025, 10, 13),
    )
    assert deadline.working_days == 7 and deadline.calendar_exact and not deadline.basis_superseded
    assert "第二十号" in deadline.legal_basis_zh or "第20号" in deadline.legal_basis_zh
    assert "Order No. 20" in deadline.legal_basis_en
    assert aware(deadline.due_before).astimezone(SHANGHAI) == datetime(2025, 10, 14, 0, 0, tzinfo=SHANGHAI)
    assert case.due_on == date(2025, 10, 13)


def test_a_year_without_a_published_calendar_is_flagged_inexact(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    complaint_id = file_complaint(client, headers["filer"])
    _received_at(session, complaint_id, datetime(PACKAGE_LAST_YEAR + 1, 3, 2, 10, 0, tzinfo=SHANGHAI))
    [deadline] = _deadlines(session, route(session, complaint_id))
    assert deadline.calendar_exact is False
    assert deadline.basis_superseded is True  # Order No. 20 was replaced on 2026-04-15: staff must check


def test_acceptance_opens_the_45_day_handling_deadline(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = route(session, file_complaint(client, headers["filer"]))
    client.post(f"/api/v1/cases/{case.id}/accept", headers=headers["county_a"])
    first, second = _deadlines(session, case)
    assert first.ended_by == "accepted" and second.key == "complaint_mediation_end"
    assert first.ended_at is not None and second.working_days == 45
    assert second.start_date == aware(first.ended_at).astimezone(SHANGHAI).date()
    assert "第二十一条" in second.legal_basis_zh


def test_a_patrol_report_gets_the_tip_off_filing_deadline(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    supervisor = make_account(session, Role.supervisor, COUNTY_A)
    session.commit()
    complaint_id = file_complaint(
        client,
        login(client, supervisor),
        operator_id=bureaus.market.id,
        finding="instrument_without_valid_mark",
        category="unverified_instrument",
    )
    [deadline] = _deadlines(session, route(session, complaint_id))
    assert (deadline.key, deadline.working_days) == ("tip_off_case_filing_decision", 15)
    assert "行政处罚程序规定" in deadline.legal_basis_zh


def test_overdue_cases_are_escalated_to_the_parent_once(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    late = route(session, file_complaint(client, headers["filer"]))
    on_time = route(session, file_complaint(client, headers["filer"]))
    client.post(f"/api/v1/cases/{on_time.id}/accept", headers=headers["county_a"])
    [deadline] = _deadlines(session, late)
    assert _sweep(session, deadline.due_before - timedelta(seconds=1)) == 0
    after = deadline.due_before + timedelta(minutes=5)
    assert _sweep(session, after) == 1
    session.expire_all()
    case = session.get(Case, late.id)
    assert case is not None and case.overdue and case.escalated and case.escalated_to == CITY_A
    [event] = outbox(session, "case.overdue")
    assert event.payload == {
        "case_id": late.id,
        "case_no": late.case_no,
        "jurisdiction_code": CITY_A,
        "due_on": deadline.due_on.isoformat(),
    }
    assert event.dedupe_key == f"case.overdue:{late.id}:{deadline.due_on.isoformat()}"
    [notice] = notification_handlers.notices_for(session, event)
    assert notice.kind == "case_overdue" and notice.recipients == (bureaus.city.id,)
    # Sweeping again changes nothing and tells nobody twice.
    assert _sweep(session, after + timedelta(hours=1)) == 0 and len(outbox(session, "case.overdue")) == 1
    # The city lists it as escalated; the county and the city both see it overdue.
    for name in ("county_a", "city"):
        overdue = client.get("/api/v1/cases/overdue", headers=headers[name]).json()
        assert [c["id"] for c in overdue["items"]] == [late.id], name
    escalated = client.get("/api/v1/cases", params={"escalated": True}, headers=headers["city"]).json()
    assert [(c["id"], c["escalated_to"]) for c in escalated["items"]] == [(late.id, CITY_A)]
    assert client.get("/api/v1/cases/overdue", headers=headers["county_b"]).json()["total"] == 0
    history = client.get(f"/api/v1/cases/{late.id}", headers=headers["county_a"]).json()["history"]
    assert history[-1]["action"] == "escalated" and history[-1]["to_jurisdiction"] == CITY_A


def test_acting_on_an_overdue_case_ends_its_escalation(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = route(session, file_complaint(client, headers["filer"]))
    [deadline] = _deadlines(session, case)
    _sweep(session, deadline.due_before + timedelta(minutes=1))
    accepted = client.post(f"/api/v1/cases/{case.id}/accept", headers=headers["county_a"]).json()
    assert (accepted["overdue"], accepted["escalated"]) == (False, False)
    assert accepted["escalated_at"] is not None  # when it happened stays on the case
    assert accepted["deadlines"][0]["overdue_at"] and accepted["deadlines"][0]["ended_by"] == "accepted"
    assert client.get("/api/v1/cases/overdue", headers=headers["city"]).json()["total"] == 0


def test_an_overdue_triage_case_at_province_level_alerts_the_province_itself(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = route(session, file_complaint(client, headers["filer"], location=location(122.9, 30.0)))
    [deadline] = _deadlines(session, case)
    _sweep(session, deadline.due_before + timedelta(minutes=1))
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and fresh.overdue and not fresh.escalated
    [event] = outbox(session, "case.overdue")
    assert event.payload["jurisdiction_code"] == PROVINCE_A
    assert complaint_of(session, case).jurisdiction_code == PROVINCE_A
