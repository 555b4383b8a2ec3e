"""The mediation deadline (SAMR Order No. 20, Art. 21): mediation ends within 45 working days of acceptance.

Computed on acceptance on the 调休 calendar, shown on the case with its legal basis, swept when it passes and
escalated to the parent jurisdiction like every other deadline (the filer told on their timeline); tested at
the edges where 调休 days decide. Also the list of reasons for not accepting that staff pick from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.cases import service
from backend.cases.deadlines import MEDIATION_END, compute_deadline, working_days_between
from backend.cases.models import Case, CaseDeadline
from backend.cases.service import aware
from backend.cases.sweep import sweep_deadlines
from tests.backend.cases.conftest import Bureaus, file_complaint, outbox, route
from tests.factories import CITY_A

Headers = dict[str, dict[str, str]]
SHANGHAI = ZoneInfo("Asia/Shanghai")
KEY = MEDIATION_END.key


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """The instant case steps are taken at (service.utcnow), settable by the test."""
    now = [datetime.now(UTC)]
    monkeypatch.setattr(service, "utcnow", lambda: now[0])
    yield now


def _mediation(session: Session, case: Case) -> CaseDeadline:
    session.expire_all()
    return session.exec(
        select(CaseDeadline).where(col(CaseDeadline.case_id) == case.id, col(CaseDeadline.key) == KEY)
    ).one()


def _sweep(session: Session, now: datetime) -> int:
    marked = sweep_deadlines(now, unit_of_work=lambda: nullcontext(session))
    session.commit()
    return marked


def _accepted_at(
    client: TestClient, session: Session, headers: Headers, clock: list[datetime], at: datetime
) -> Case:
    case = route(session, file_complaint(client, headers["filer"]))
    clock[0] = at.astimezone(UTC)
    resp = client.post(f"/api/v1/cases/{case.id}/accept", headers=headers["county_a"])
    assert resp.status_code == 200, resp.text
    return case


@pytest.mark.parametrize(
    ("accepted", "due"),
    [
        # The 45th working day is Saturday 11 Oct 2025, a 调休 working day after the National Day holiday.
        (datetime(2025, 8, 4, 9, 30, tzinfo=SHANGHAI), date(2025, 10, 11)),
        # …and Sunday 28 Sep 2025, the 调休 day before it.
        (datetime(2025, 7, 28, 16, 0, tzinfo=SHANGHAI), date(2025, 9, 28)),
        # Accepted on the last working day before the holiday, on the holiday itself, or on its last day:
        # counting starts on 9 Oct, the first working day after each, so all three end on the same day.
        (datetime(2025, 9, 30, 17, 0, tzinfo=SHANGHAI), date(2025, 12, 9)),
        (datetime(2025, 10, 2, 10, 0, tzinfo=SHANGHAI), date(2025, 12, 9)),
        (datetime(2025, 10, 8, 23, 59, tzinfo=SHANGHAI), date(2025, 12, 9)),
    ],
)
def test_mediation_due_date_counts_tiaoxiu_days(
    client: TestClient,
    session: Session,
    bureaus: Bureaus,
    headers: Headers,
    clock: list[datetime],
    accepted: datetime,
    due: date,
) -> None:
    case = _accepted_at(client, session, headers, clock, accepted)
    deadline = _mediation(session, case)
    assert (deadline.start_date, deadline.due_on, deadline.working_days) == (accepted.date(), due, 45)
    assert working_days_between(accepted.date(), due) == 45
    assert compute_deadline(MEDIATION_END, accepted).due_date == due
    assert aware(deadline.due_before).astimezone(SHANGHAI) == datetime.combine(
        due + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI
    )
    # Shown on the case, with its legal basis in the reader's language.
    body = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()
    [shown] = [d for d in body["deadlines"] if d["key"] == KEY]
    assert shown["due_on"] == due.isoformat() and shown["ended_at"] is None
    assert "第二十一条" in shown["legal_basis"] and body["due_on"] == due.isoformat()


def test_mediation_past_its_45th_working_day_is_swept_and_escalated_at_the_exact_edge(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, clock: list[datetime]
) -> None:
    case = _accepted_at(client, session, headers, clock, datetime(2025, 8, 4, 9, 30, tzinfo=SHANGHAI))
    client.post(f"/api/v1/cases/{case.id}/investigate", headers=headers["county_a"])
    deadline = _mediation(session, case)
    # The last day is the 调休 Saturday 11 Oct: all of it still counts (Civil Code Art. 203), Friday 10th too.
    last_minute = datetime(2025, 10, 11, 23, 59, 59, tzinfo=SHANGHAI)
    assert _sweep(session, datetime(2025, 10, 10, 23, 59, tzinfo=SHANGHAI)) == 0
    assert _sweep(session, last_minute) == 0
    assert _sweep(session, datetime(2025, 10, 12, 0, 0, tzinfo=SHANGHAI)) == 1
    session.expire_all()
    swept = session.get(Case, case.id)
    assert swept is not None and swept.overdue and swept.escalated and swept.escalated_to == CITY_A
    assert _mediation(session, case).overdue_at is not None and deadline.ended_at is None
    [event] = outbox(session, "case.overdue")
    assert event.payload["due_on"] == "2025-10-11" and event.payload["jurisdiction_code"] == CITY_A
    # Listed for the county and the escalation's target; history names the deadline.
    for name in ("county_a", "city"):
        listed = client.get("/api/v1/cases/overdue", headers=headers[name]).json()
        assert [c["id"] for c in listed["items"]] == [case.id], name
    history = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()["history"]
    assert history[-1]["action"] == "escalated" and history[-1]["details"]["deadline"] == KEY
    # The filer is told on their timeline, without any staff identity; the status stays what it was.
    mine = client.get(f"/api/v1/complaints/{case.complaint_id}", headers=headers["filer"]).json()
    assert mine["timeline"][-1]["status"] == "investigating"
    assert "已超过法定期限（2025-10-11）" in mine["timeline"][-1]["note"]
    assert "督办" in mine["timeline"][-1]["note"]
    # Ending the handling (mediation failed: closed without a finding) ends the deadline and the escalation.
    clock[0] = datetime(2025, 10, 13, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
    resp = client.post(
        f"/api/v1/cases/{case.id}/close",
        json={"reason": "调解期满未达成协议，终止调解"},
        headers=headers["county_a"],
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["overdue"] is False and resp.json()["escalated"] is False
    assert _mediation(session, case).ended_by == "closed"


def test_an_agreement_on_the_last_day_ends_the_deadline_before_the_sweep(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, clock: list[datetime]
) -> None:
    case = _accepted_at(client, session, headers, clock, datetime(2025, 7, 28, 16, 0, tzinfo=SHANGHAI))
    # Agreement on Sunday 28 Sep 2025 (调休 working day, the 45th), late in the evening.
    clock[0] = datetime(2025, 9, 28, 22, 0, tzinfo=SHANGHAI).astimezone(UTC)
    resp = client.post(
        f"/api/v1/cases/{case.id}/mediate", json={"agreement": "退还差价"}, headers=headers["county_a"]
    )
    assert resp.status_code == 200, resp.text
    deadline = _mediation(session, case)
    assert deadline.ended_by == "mediated" and deadline.overdue_at is None
    assert _sweep(session, datetime(2025, 9, 29, 0, 0, tzinfo=SHANGHAI)) == 0
    assert outbox(session, "case.overdue") == []


def test_staff_read_the_list_of_reasons_for_not_accepting(
    client: TestClient, bureaus: Bureaus, headers: Headers
) -> None:
    body = client.get("/api/v1/cases/rejection-reasons", headers=headers["county_a"]).json()
    assert [r["reason"] for r in body] == [
        "out_of_time",
        "contact_missing",
        "handled_elsewhere",
        "not_metrology",
        "duplicate",
    ]
    by_reason = {r["reason"]: r for r in body}
    assert by_reason["not_metrology"]["label"] == "不属于计量监督管理事项"
    assert [b["handled_by"] for b in by_reason["handled_elsewhere"]["handled_by"]] == [
        "court",
        "arbitration",
        "consumer_association",
    ]
    assert by_reason["duplicate"]["cites_case"] and not by_reason["out_of_time"]["cites_case"]
    assert all(not r["handled_by"] for r in body if r["reason"] != "handled_elsewhere")
    english = client.get("/api/v1/cases/rejection-reasons?lang=en", headers=headers["county_a"]).json()
    assert english[3]["label"] == "not a metrology supervision matter"
    assert client.get("/api/v1/cases/rejection-reasons", headers=headers["filer"]).status_code == 403
