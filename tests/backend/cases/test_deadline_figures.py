"""Deadline figures as data (issue 14 item 7): every figure overridable per deployment (settings) and per bureau
(``deadline_rule``), the case view naming the basis that applies, and the tip-off deadline's extension and its
pause for testing or appraisal time applied by staff, on the case history and audited."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.cases import figures
from backend.cases.deadlines import (
    CORRECTION_DECISION,
    add_working_days,
    paused_due_date,
)
from backend.cases.models import Case, CaseDeadline
from backend.cases.sweep import sweep_deadlines
from backend.config import Settings, get_settings
from backend.records.service import bureau_today
from tests.backend.cases.conftest import Bureaus, file_complaint, route
from tests.factories import COUNTY_A, login, make_account, make_record

Headers = dict[str, dict[str, str]]
RULE = {
    "working_days": 10,
    "extension_working_days": 0,
    "legal_basis_zh": "投诉处理规程（市监〔2026〕1号）",
    "legal_basis_en": "Complaint handling rules (No. 1 of 2026)",
}


def _deadlines(session: Session, case: Case) -> list[CaseDeadline]:
    session.expire_all()
    return list(
        session.execute(
            select(CaseDeadline).where(col(CaseDeadline.case_id) == case.id).order_by(col(CaseDeadline.id))
        ).scalars()
    )


def _tip_off(client: TestClient, session: Session, bureaus: Bureaus) -> Case:
    supervisor = make_account(session, Role.supervisor, COUNTY_A)
    session.commit()
    complaint_id = file_complaint(
        client,
        login(client, supervisor),
        operator_id=bureaus.market.id,
        finding="instrument_without_valid_mark",
        category="unverified_instrument",
    )
    return route(session, complaint_id)


def _audit_actions(session: Session, case: Case) -> list[str]:
    return list(
        session.execute(
            select(col(AuditEntry.action)).where(
                col(AuditEntry.entity_type) == "case", col(AuditEntry.entity_id) == str(case.id)
            )
        ).scalars()
    )


def test_the_case_view_names_the_statutory_basis_by_default(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = route(session, file_complaint(client, headers["filer"]))
    body = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()
    [deadline] = body["deadlines"]
    assert deadline["basis_source"] == "statute"
    assert deadline["working_days"] == 7 and "第20号" in deadline["legal_basis"]
    assert (deadline["extension_working_days"], deadline["pausable"], deadline["pauses"]) == (0, False, [])


def test_a_deployment_setting_overrides_a_figure(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "deadline_working_days", {"complaint_acceptance_decision": 5})
    case = route(session, file_complaint(client, headers["filer"]))
    [deadline] = _deadlines(session, case)
    assert deadline.working_days == 5 and deadline.basis_source == "deployment"
    assert deadline.due_on == add_working_days(deadline.start_date, 5)
    assert "本系统部署配置：5个工作日" in deadline.legal_basis_zh and "第20号" in deadline.legal_basis_zh
    # A configured figure is the deployment's current decision, not Order No. 20's superseded one.
    assert deadline.basis_superseded is False
    en = client.get(f"/api/v1/cases/{case.id}", headers={**headers["county_a"], "Accept-Language": "en"})
    assert en.json()["deadlines"][0]["legal_basis"].startswith(
        "This deployment's configuration: 5 working days"
    )


def test_settings_refuse_unknown_keys_and_impossible_figures() -> None:
    with pytest.raises(ValueError, match="no_such_deadline"):
        figures.check_deployment_figures(Settings(deadline_working_days={"no_such_deadline": 5}))
    with pytest.raises(ValidationError):
        Settings(deadline_working_days={"complaint_acceptance_decision": 0})
    assert Settings(deadline_extension_working_days={"tip_off_case_filing_decision": 0})


def test_a_bureau_rule_wins_in_its_jurisdiction_and_below_only(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "deadline_working_days", {"complaint_acceptance_decision": 5})
    # The city bureau sets 10 working days for 杭州市 and everything below it, 西湖区 included.
    resp = client.put(
        "/api/v1/jurisdictions/330100/deadline-rules/complaint_acceptance_decision",
        headers=headers["city"],
        json=RULE,
    )
    assert resp.status_code == 200, resp.text
    case = route(session, file_complaint(client, headers["filer"]))
    [deadline] = _deadlines(session, case)
    assert deadline.working_days == 10 and deadline.basis_source == "bureau"
    assert deadline.legal_basis_zh.startswith(
        "杭州市市场监督管理局规定（投诉处理规程（市监〔2026〕1号））：10个工作日"
    )
    figures = client.get("/api/v1/deadline-figures", headers=headers["county_a"]).json()
    acceptance = next(f for f in figures if f["key"] == "complaint_acceptance_decision")
    assert (acceptance["working_days"], acceptance["basis_source"], acceptance["rule_jurisdiction"]) == (
        10,
        "bureau",
        "330100",
    )
    # A neighbouring province knows nothing of it: the deployment's figure applies there.
    other = client.get("/api/v1/deadline-figures", headers=headers["other_province"]).json()
    assert (
        next(f for f in other if f["key"] == "complaint_acceptance_decision")["basis_source"] == "deployment"
    )
    # County staff cannot set the city's rule (outside their scope: 404), and the change is audited.
    refused = client.put(
        "/api/v1/jurisdictions/330100/deadline-rules/complaint_acceptance_decision",
        headers=headers["county_a"],
        json=RULE,
    )
    assert refused.status_code == 404
    assert (
        session.execute(select(AuditEntry).where(col(AuditEntry.action) == "deadline_rule.set")).first()
        is not None
    )
    # Removing it brings the deployment's figure back for deadlines opened afterwards.
    gone = client.delete(
        "/api/v1/jurisdictions/330100/deadline-rules/complaint_acceptance_decision", headers=headers["city"]
    )
    assert gone.status_code == 204
    [later] = _deadlines(session, route(session, file_complaint(client, headers["filer"])))
    assert later.working_days == 5 and later.basis_source == "deployment"


def test_a_bureau_rule_is_checked(client: TestClient, bureaus: Bureaus, headers: Headers) -> None:
    unknown = client.put(
        "/api/v1/jurisdictions/330106/deadline-rules/no_such_deadline", headers=headers["county_a"], json=RULE
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_deadline"
    not_extendable = client.put(
        "/api/v1/jurisdictions/330106/deadline-rules/complaint_acceptance_decision",
        headers=headers["county_a"],
        json={**RULE, "extension_working_days": 5},
    )
    assert not_extendable.status_code == 422 and not_extendable.json()["error"]["code"] == "not_extendable"


def test_the_correction_period_follows_the_bureau_rule(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    resp = client.put(
        "/api/v1/jurisdictions/330106/deadline-rules/correction_decision",
        headers=headers["county_a"],
        json=RULE,
    )
    assert resp.status_code == 200, resp.text
    record = make_record(session, bureaus.market, "instrument_unverified")
    session.commit()
    filed = client.post(
        f"/api/v1/records/{record.id}/corrections",
        headers=headers["market"],
        json={"action": "revoke", "reasons": "当日秤经检定合格"},
    )
    assert filed.status_code == 201, filed.text
    assert filed.json()["due_on"] == add_working_days(bureau_today(), 10).isoformat()
    assert CORRECTION_DECISION.working_days == 15  # the built-in figure is unchanged


def test_staff_extend_the_tip_off_deadline_once(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _tip_off(client, session, bureaus)
    [before] = _deadlines(session, case)
    assert before.extension_working_days == 15 and before.pausable
    start = before.start_date
    resp = client.post(
        f"/api/v1/cases/{case.id}/deadlines/extend",
        headers=headers["county_a"],
        json={"reason": "经局长批准（批件 2026-12）"},
    )
    assert resp.status_code == 200, resp.text
    [after] = _deadlines(session, case)
    assert after.extended and after.working_days == 30
    assert after.due_on == add_working_days(start, 30)
    assert resp.json()["due_on"] == after.due_on.isoformat()
    history = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()["history"]
    assert history[-1]["action"] == "deadline_extended"
    assert history[-1]["details"]["due_on"] == after.due_on.isoformat()
    assert "case.deadline_extended" in _audit_actions(session, case)
    again = client.post(
        f"/api/v1/cases/{case.id}/deadlines/extend", headers=headers["county_a"], json={"reason": "再次延长"}
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_extended"


def test_a_complaint_deadline_cannot_be_extended_or_paused(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = route(session, file_complaint(client, headers["filer"]))
    key = {"key": "complaint_acceptance_decision"}
    extend = client.post(
        f"/api/v1/cases/{case.id}/deadlines/extend", headers=headers["county_a"], json={**key, "reason": "x"}
    )
    assert extend.status_code == 422 and extend.json()["error"]["code"] == "not_extendable"
    day = add_working_days(_deadlines(session, case)[0].start_date, 1).isoformat()
    pause = client.post(
        f"/api/v1/cases/{case.id}/deadlines/pause",
        headers=headers["county_a"],
        json={**key, "first_day": day, "last_day": day, "cause": "testing", "reason": "x"},
    )
    assert pause.status_code == 422 and pause.json()["error"]["code"] == "not_pausable"
    # Without a key the only candidates are extendable/pausable deadlines: a complaint has none.
    none = client.post(
        f"/api/v1/cases/{case.id}/deadlines/extend", headers=headers["county_a"], json={"reason": "x"}
    )
    assert none.status_code == 409 and none.json()["error"]["code"] == "no_deadline_running"


def test_testing_time_is_left_out_of_the_tip_off_deadline(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _tip_off(client, session, bureaus)
    [before] = _deadlines(session, case)
    start, due = before.start_date, before.due_on  # the same row object is refreshed below
    first = add_working_days(start, 2)
    last = add_working_days(start, 4)
    resp = client.post(
        f"/api/v1/cases/{case.id}/deadlines/pause",
        headers=headers["county_a"],
        json={
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "cause": "appraisal",
            "reason": "送检",
        },
    )
    assert resp.status_code == 200, resp.text
    [after] = _deadlines(session, case)
    # Three working days inside the pause do not count: the due date moves three working days on.
    assert after.due_on == add_working_days(due, 3)
    assert after.due_on == paused_due_date(start, 15, [(first, last)])
    assert after.pauses == [
        {"first_day": first.isoformat(), "last_day": last.isoformat(), "cause": "appraisal"}
    ]
    shown = resp.json()["deadlines"][0]["pauses"]
    assert shown == [{"first_day": first.isoformat(), "last_day": last.isoformat(), "cause": "appraisal"}]
    history = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()["history"]
    assert history[-1]["action"] == "deadline_paused" and history[-1]["reason"] == "送检"
    assert "case.deadline_paused" in _audit_actions(session, case)
    overlapping = client.post(
        f"/api/v1/cases/{case.id}/deadlines/pause",
        headers=headers["county_a"],
        json={"first_day": last.isoformat(), "last_day": last.isoformat(), "cause": "testing", "reason": "x"},
    )
    assert overlapping.status_code == 409 and overlapping.json()["error"]["code"] == "pause_overlaps"
    backwards = client.post(
        f"/api/v1/cases/{case.id}/deadlines/pause",
        headers=headers["county_a"],
        json={
            "first_day": last.isoformat(),
            "last_day": first.isoformat(),
            "cause": "testing",
            "reason": "x",
        },
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "invalid_pause"


def test_an_extension_lifts_an_overdue_mark_and_its_escalation(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _tip_off(client, session, bureaus)
    [deadline] = _deadlines(session, case)
    first_due = deadline.due_on
    # Swept the morning after the 15th working day: overdue and escalated to the city.
    late = datetime(deadline.due_on.year, deadline.due_on.month, deadline.due_on.day, 23, 0, tzinfo=UTC)
    assert sweep_deadlines(late, unit_of_work=lambda: nullcontext(session)) == 1
    session.commit()
    session.expire_all()
    assert session.get(Case, case.id).escalated  # type: ignore[union-attr]
    resp = client.post(
        f"/api/v1/cases/{case.id}/deadlines/extend", headers=headers["county_a"], json={"reason": "经批准"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["overdue"], body["escalated"]) == (False, False)
    assert date.fromisoformat(body["due_on"]) > first_due
