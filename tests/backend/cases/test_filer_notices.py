"""Every step a filer is promised reaches them (inbox and push, in their language, naming the case number), and
one decision about an operator is one notice to it however many record kinds it makes (issue 14, item 4)."""

from __future__ import annotations

import re
from contextlib import nullcontext
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.cases.models import Case
from backend.cases.sweep import sweep_deadlines
from backend.db import utcnow
from backend.notices import delivery as delivery
from backend.notices.delivery import resolve_context
from backend.notices.handlers import Notice, notices_for
from backend.notices.models import InboxNotification, PushDelivery
from backend.outbox.models import OutboxEvent
from notifications.templates import render
from tests.backend.cases.conftest import Bureaus, complaint_of, file_and_route, outbox
from tests.backend.cases.test_handling import drive, step
from tests.factories import COUNTY_A, login, make_account, make_device

Headers = dict[str, dict[str, str]]


def _told(session: Session, topic: str) -> list[Notice]:
    session.expire_all()
    return [n for event in outbox(session, topic) for n in notices_for(session, event)]


def _texts(notice: Notice) -> dict[str, str]:
    """The notice as the filer reads it, in each language."""
    texts = {}
    for locale in ("zh-CN", "en"):
        rendered = render(notice.kind, locale, resolve_context(notice.context, locale, "Asia/Shanghai"))
        texts[locale] = f"{rendered.title} {rendered.body}"
    return texts


def _names_the_case_not_the_id(text: str, case: Case) -> None:
    assert case.case_no in text
    # Once the case number is taken out, the internal id is nowhere (no "编号12", no "ref. 12").
    assert not re.search(rf"(?<!\d){case.complaint_id}(?!\d)", text.replace(case.case_no, ""))


def _market_case(client: TestClient, session: Session, bureaus: Bureaus, headers: Headers) -> Case:
    return file_and_route(client, session, headers["filer"], operator_id=bureaus.market.id)


def test_the_receipt_names_the_case_number(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    [notice] = _told(session, "complaint.created")
    assert notice.kind == "complaint_received" and notice.context["case_no"] == case.case_no
    texts = _texts(notice)
    _names_the_case_not_the_id(texts["zh-CN"].split("已于")[0], case)
    assert case.case_no in texts["en"]


def test_acceptance_is_told_to_the_filer(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    assert _told(session, "case.progress") == []
    drive(client, headers["county_a"], case.id or 0, ["accept"])
    [notice] = _told(session, "case.progress")
    assert notice.kind == "filing_accepted" and notice.recipients == (bureaus.filer.id,)
    texts = _texts(notice)
    assert "投诉已受理" in texts["zh-CN"] and "西湖区市场监督管理局" in texts["zh-CN"]
    assert "accepted" in texts["en"]
    for text in texts.values():
        _names_the_case_not_the_id(text, case)


@pytest.mark.parametrize(
    ("body", "zh", "en"),
    [
        ({"reason": "not_metrology"}, "不属于计量监督管理事项", "not a metrology supervision matter"),
        (
            {"reason": "handled_elsewhere", "handled_by": "court"},
            "已由人民法院受理或处理",
            "already accepted or handled by a court",
        ),
    ],
)
def test_a_rejection_is_told_with_its_reason(
    client: TestClient,
    session: Session,
    bureaus: Bureaus,
    headers: Headers,
    body: dict[str, str],
    zh: str,
    en: str,
) -> None:
    case = _market_case(client, session, bureaus, headers)
    assert step(client, headers["county_a"], case.id or 0, "reject", body).status_code == 200
    # One notice: the refusal with its reason (not a bare "outcome: not accepted" beside it).
    [notice] = _told(session, "case.outcome")
    assert notice.kind == "filing_rejected" and notice.recipients == (bureaus.filer.id,)
    texts = _texts(notice)
    assert f"理由：{zh}" in texts["zh-CN"] and f"Reason: {en}" in texts["en"]
    for text in texts.values():
        _names_the_case_not_the_id(text, case)


def test_a_rejection_reconsidered_before_it_was_told_is_not_told(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["reject", "reopen"])
    assert _told(session, "case.outcome") == []


def test_a_transfer_is_told_with_the_new_bureau(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept", "transfer"])
    told = {n.kind: n for n in _told(session, "case.progress")}
    assert set(told) == {"filing_accepted", "filing_transferred"}
    texts = _texts(told["filing_transferred"])
    assert "已移送上城区市场监督管理局办理" in texts["zh-CN"] and "transferred" in texts["en"]
    for text in texts.values():
        _names_the_case_not_the_id(text, case)


def test_an_escalation_is_told_once(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    later = utcnow() + timedelta(days=60)
    assert sweep_deadlines(later, unit_of_work=lambda: nullcontext(session)) == 1
    assert sweep_deadlines(later, unit_of_work=lambda: nullcontext(session)) == 0
    [notice] = _told(session, "case.progress")
    assert notice.kind == "filing_escalated" and notice.recipients == (bureaus.filer.id,)
    fresh = session.get(Case, case.id)
    assert fresh is not None
    texts = _texts(notice)
    # The city bureau above 西湖区 supervises the handling now.
    assert "杭州市" in texts["zh-CN"] and fresh.case_no in texts["zh-CN"] and "supervise" in texts["en"]


def test_results_name_the_case_number(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate", "unsubstantiate"])
    [notice] = _told(session, "case.outcome")
    assert notice.kind == "complaint_outcome"
    for text in _texts(notice).values():
        _names_the_case_not_the_id(text, case)


def test_a_supervisor_is_told_of_their_report_like_a_consumer(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    supervisor = make_account(session, Role.supervisor, COUNTY_A)
    session.commit()
    report = file_and_route(
        client,
        session,
        login(client, supervisor),
        operator_id=bureaus.market.id,
        finding="suspected_cheating",
        category="instrument_cheating",
    )
    drive(client, headers["county_a"], report.id or 0, ["accept"])
    [accepted] = _told(session, "case.progress")
    assert accepted.kind == "filing_accepted" and accepted.recipients == (supervisor.id,)
    texts = _texts(accepted)
    assert "监督报告已受理" in texts["zh-CN"] and "supervision report" in texts["en"]
    assert report.case_no.startswith("JB") and report.case_no in texts["zh-CN"]
    drive(client, headers["county_a"], report.id or 0, ["investigate", "unsubstantiate"])
    [outcome] = _told(session, "case.outcome")
    assert outcome.kind == "supervisor_report_outcome"
    for text in _texts(outcome).values():
        _names_the_case_not_the_id(text, report)


def test_the_filer_gets_it_in_the_inbox_and_by_push_in_their_language(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    filer = session.get(Account, bureaus.filer.id)
    assert filer is not None
    filer.locale = "en"
    session.add(filer)
    device = make_device(session, filer, token="filer_" + "f" * 140, locale="en")
    session.commit()
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept"])
    [event] = outbox(session, "case.progress")
    delivery.dispatch(event.id or 0, push_enabled=True, unit_of_work=lambda: nullcontext(session))
    [inbox] = session.exec(select(InboxNotification).where(col(InboxNotification.event_id) == event.id)).all()
    assert (inbox.recipient_id, inbox.kind, inbox.locale) == (filer.id, "filing_accepted", "en")
    assert case.case_no in inbox.body and "accepted" in inbox.title
    [push] = session.exec(select(PushDelivery).where(col(PushDelivery.event_id) == event.id)).all()
    assert push.device_id == device.id and case.case_no in push.body


def test_one_finding_is_one_notice_to_the_operator_however_many_kinds(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate"])
    body = {
        "findings": "复称短少 120 克，电子秤内置作弊程序",
        "record_kinds": ["short_weight", "metrology_cheating"],
    }
    assert step(client, headers["county_a"], case.id or 0, "substantiate", body).status_code == 200
    # Three records (the complaint, short weight, cheating), each re-rating the operator...
    assert len(outbox(session, "record.changed")) == 3
    to_operator = [
        n
        for topic in ("record.changed", "finding.decided")
        for n in _told(session, topic)
        if n.recipients == (bureaus.market_user.id,)
    ]
    # ...and one notice naming all three.
    [notice] = to_operator
    assert notice.kind == "findings_against_operator"
    texts = _texts(notice)
    assert "消费者投诉经查属实、缺斤短两、计量作弊" in texts["zh-CN"]
    assert "short weight" in texts["en"] and "metrology cheating" in texts["en"]
    # Nothing of the complainant reaches the operator (Art. 18).
    complaint = complaint_of(session, case)
    for private in (bureaus.filer.username, complaint.description, body["findings"]):
        assert all(private not in text for text in texts.values())


def test_a_finding_revoked_before_it_was_told_is_not_told(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = _market_case(client, session, bureaus, headers)
    drive(client, headers["county_a"], case.id or 0, ["accept", "investigate", "substantiate", "reopen"])
    assert step(client, headers["county_a"], case.id or 0, "unsubstantiate").status_code == 200
    [event] = session.exec(select(OutboxEvent).where(col(OutboxEvent.topic) == "finding.decided")).all()
    session.expire_all()
    assert notices_for(session, event) == []
