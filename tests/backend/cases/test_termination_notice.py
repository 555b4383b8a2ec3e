"""Telling the operator that mediation was terminated (SAMR Order No. 20, Art. 21: both parties are told of the
decision within 7 working days).

An operator with the app is told by its notice when the case is closed (``test_handling``). An operator without
an active account cannot be: closing opens the 7-working-day deadline on the case, staff record how they told
it (``POST /cases/{id}/operator-notified``), and a deadline nobody met is swept and escalated like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.cases import service
from backend.cases.deadlines import MEDIATION_TERMINATION_NOTICE, compute_deadline
from backend.cases.models import Case, CaseDeadline, CaseEvent
from backend.cases.service import aware
from backend.cases.sweep import sweep_deadlines
from tests.backend.cases.conftest import Bureaus, file_and_route

Headers = dict[str, dict[str, str]]
KEY = MEDIATION_TERMINATION_NOTICE.key
CLOSE = {"reason": "投诉人撤回投诉"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """The instant case steps are taken at (service.utcnow), settable by the test."""
    now = [datetime(2026, 9, 7, 2, 0, tzinfo=UTC)]  # Monday 10:00 in Beijing
    monkeypatch.setattr(service, "utcnow", lambda: now[0])
    yield now


def _without_app(session: Session, bureaus: Bureaus) -> None:
    bureaus.market_user.is_active = False
    session.add(bureaus.market_user)
    session.commit()


def _terminated(client: TestClient, session: Session, bureaus: Bureaus, headers: Headers) -> Case:
    case = file_and_route(client, session, headers["filer"], operator_id=bureaus.market.id)
    for step, body in (("accept", {}), ("close", CLOSE)):
        resp = client.post(f"/api/v1/cases/{case.id}/{step}", json=body, headers=headers["county_a"])
        assert resp.status_code == 200, resp.text
    return case


def _notice(session: Session, case: Case) -> CaseDeadline | None:
    session.expire_all()
    return session.exec(
        select(CaseDeadline).where(col(CaseDeadline.case_id) == case.id, col(CaseDeadline.key) == KEY)
    ).one_or_none()


def test_terminating_with_an_operator_without_the_app_opens_the_notice_deadline(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, clock: list[datetime]
) -> None:
    _without_app(session, bureaus)
    case = _terminated(client, session, bureaus, headers)
    deadline = _notice(session, case)
    assert deadline is not None and deadline.ended_at is None
    expected = compute_deadline(MEDIATION_TERMINATION_NOTICE, clock[0], "Asia/Shanghai")
    assert deadline.due_on == expected.due_date and deadline.working_days == 7
    detail = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()
    assert (detail["state"], detail["outcome"], detail["due_on"]) == (
        "closed",
        "terminated",
        expected.due_date.isoformat(),
    )
    [running] = [d for d in detail["deadlines"] if d["ended_at"] is None]
    assert running["key"] == KEY and "第二十一条" in running["legal_basis"]
    closing = session.exec(
        select(CaseEvent).where(col(CaseEvent.case_id) == case.id, col(CaseEvent.action) == "closed")
    ).one()
    assert closing.details["operator_told"] == "by_staff"


def test_staff_record_how_they_told_the_operator(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, clock: list[datetime]
) -> None:
    _without_app(session, bureaus)
    case = _terminated(client, session, bureaus, headers)
    url = f"/api/v1/cases/{case.id}/operator-notified"
    h = headers["county_a"]
    # Bad input changes nothing.
    for body in (
        {},
        {"method": "pigeon"},
        {"method": "phone", "note": "x" * 2001},
        {"method": "phone", "x": 1},
    ):
        resp = client.post(url, json=body, headers=h)
        assert resp.status_code == 422 and "error" in resp.json(), body
    assert _notice(session, case) is not None and _notice(session, case).ended_at is None  # type: ignore[union-attr]
    # Another county's staff cannot see the case at all.
    assert client.post(url, json={"method": "phone"}, headers=headers["county_b"]).status_code == 404

    clock[0] += timedelta(days=2)
    resp = client.post(url, json={"method": "letter", "note": "挂号信 XA123456789CN 已签收"}, headers=h)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["state"], resp.json()["due_on"]) == ("closed", None)
    deadline = _notice(session, case)
    assert deadline is not None and deadline.ended_by == "operator_notified"
    assert aware(deadline.ended_at) == clock[0]  # type: ignore[arg-type]
    event = session.exec(
        select(CaseEvent).where(
            col(CaseEvent.case_id) == case.id, col(CaseEvent.action) == "operator_notified"
        )
    ).one()
    assert (
        event.details == {"method": "letter", "late": False} and event.reason == "挂号信 XA123456789CN 已签收"
    )
    assert event.actor_id == bureaus.county_a.id
    audited = session.exec(
        select(AuditEntry).where(
            col(AuditEntry.action) == "case.operator_notified", col(AuditEntry.entity_id) == str(case.id)
        )
    ).one()
    assert audited.actor_id == bureaus.county_a.id
    # Once told, there is nothing left to record.
    again = client.post(url, json={"method": "phone"}, headers=h)
    assert again.status_code == 409 and again.json()["error"]["code"] == "no_notice_due"


def test_nothing_to_record_when_the_app_told_the_operator(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, clock: list[datetime]
) -> None:
    case = _terminated(client, session, bureaus, headers)
    assert _notice(session, case) is None
    resp = client.post(
        f"/api/v1/cases/{case.id}/operator-notified", json={"method": "phone"}, headers=headers["county_a"]
    )
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "no_notice_due"


def test_reopening_ends_the_notice_deadline(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, clock: list[datetime]
) -> None:
    _without_app(session, bureaus)
    case = _terminated(client, session, bureaus, headers)
    resp = client.post(
        f"/api/v1/cases/{case.id}/reopen", json={"reason": "投诉人补充新证据"}, headers=headers["county_a"]
    )
    assert resp.status_code == 200, resp.text
    deadline = _notice(session, case)
    assert deadline is not None and deadline.ended_by == "reopened"


def test_an_operator_nobody_told_in_time_makes_the_case_overdue(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, clock: list[datetime]
) -> None:
    _without_app(session, bureaus)
    case = _terminated(client, session, bureaus, headers)
    deadline = _notice(session, case)
    assert deadline is not None
    due_before = aware(deadline.due_before)
    assert sweep_deadlines(due_before - timedelta(seconds=1), unit_of_work=lambda: nullcontext(session)) == 0
    assert sweep_deadlines(due_before, unit_of_work=lambda: nullcontext(session)) == 1
    session.commit()
    session.expire_all()
    swept = session.get(Case, case.id)
    assert swept is not None and swept.overdue and swept.escalated
    # Told late: recorded as late, and the case is no longer overdue.
    clock[0] = due_before + timedelta(hours=1)
    resp = client.post(
        f"/api/v1/cases/{case.id}/operator-notified",
        json={"method": "in_person"},
        headers=headers["county_a"],
    )
    assert resp.status_code == 200 and resp.json()["overdue"] is False
    event = session.exec(
        select(CaseEvent).where(
            col(CaseEvent.case_id) == case.id, col(CaseEvent.action) == "operator_notified"
        )
    ).one()
    assert event.details["late"] is True
