"""The operator file: search in scope, the file's sections and its audited reads, every action as a form with
the service's refusal shown in place, the QR sheet, and county B's staff kept out."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Account
from backend.demo import DEMO_PASSWORD, seed
from backend.operators.models import Operator, Sector
from backend.records.models import IntegrityRecord
from backend.records.rules import RecordState
from backend.supervision.models import Interview, InterviewStatus
from tests.backend.cases.conftest import Bureaus
from tests.backend.workbench.conftest import wb_login
from tests.factories import make_instrument, make_operator, make_record, make_stall


def _audit_actions(session: Session, since: int) -> list[str]:
    session.expire_all()
    return [
        a.action
        for a in session.exec(
            select(AuditEntry).where(col(AuditEntry.seq) > since).order_by(col(AuditEntry.seq))
        )
    ]


def _last_seq(session: Session) -> int:
    rows = session.exec(select(AuditEntry.seq).order_by(col(AuditEntry.seq).desc()).limit(1)).all()
    return int(rows[0]) if rows else 0


def _market(session: Session, bureaus: Bureaus) -> tuple[Operator, IntegrityRecord]:
    market = bureaus.market
    stall = make_stall(session, market, number="A02", holder_name="李秀英")
    make_instrument(session, market, stall=stall, verified_on=date.today() - timedelta(days=400))
    make_instrument(session, market, verified_on=date.today() - timedelta(days=20))
    record = make_record(session, market, "short_weight", verified=False, source="supervisor")
    session.commit()
    return market, record


def test_search_finds_operators_in_scope_by_name_code_and_stall(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    market, _ = _market(session, bureaus)
    elsewhere = make_operator(session, bureaus.county_b, county="330102", name="上城菜场")
    station = make_operator(session, bureaus.county_a, sector=Sector.fuel_station, name="西湖加油站")
    session.commit()
    wb_login(client, bureaus.county_a)
    page = client.get("/workbench/operators")
    assert page.status_code == 200
    assert market.name in page.text and station.name in page.text and elsewhere.name not in page.text
    by_name = client.get("/workbench/operators", params={"q": "加油"}).text
    assert station.name in by_name and market.name not in by_name
    by_code = client.get("/workbench/operators", params={"q": market.uscc.lower()}).text
    assert market.name in by_code and station.name not in by_code
    by_stall = client.get("/workbench/operators", params={"stall": "a02"}).text
    assert market.name in by_stall and station.name not in by_stall
    by_holder = client.get("/workbench/operators", params={"stall": "秀英"}).text
    assert market.name in by_holder and station.name not in by_holder
    assert client.get("/workbench/operators", params={"sector": "bakery"}).status_code == 422
    assert "西湖加油站" in client.get("/workbench/operators", params={"sector": "fuel_station"}).text
    # Audited as GET /api/v1/operators: the filters and the operators shown.
    entry = session.exec(
        select(AuditEntry)
        .where(col(AuditEntry.action) == "operator.list")
        .order_by(col(AuditEntry.seq).desc())
    ).first()
    assert entry is not None and entry.after is not None
    assert entry.after["filters"]["q"] is None and entry.after["operator_ids"] == [station.id]
    wb_login(client, bureaus.county_b)
    assert (
        f'/workbench/operators/{market.id}"'
        not in client.get("/workbench/operators", params={"q": market.name}).text
    )


def test_the_file_shows_every_section_and_audits_its_reads(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    market, record = _market(session, bureaus)
    wb_login(client, bureaus.county_a)
    since = _last_seq(session)
    page = client.get(f"/workbench/operators/{market.id}")
    assert page.status_code == 200, page.text
    text = page.text
    for expected in (market.uscc, "A02", "李秀英", "超期未检", "有效", "待核实", "诚信等级", "提醒与约谈"):
        assert expected in text, expected
    assert f'action="/workbench/operators/{market.id}/records/{record.id}/verify"' in text
    assert f'action="/workbench/operators/{market.id}/records/{record.id}/revoke"' in text
    assert f"/workbench/operators/{market.id}/qr-sheet.pdf" in text
    assert 'name="csrf"' in text and "<script>" not in text
    # The same audited reads the API's routes log for the same data.
    assert _audit_actions(session, since) == [
        "operator.read",
        "stall.list",
        "record.list",
        "rating.read",
        "interview.list",
        "notice_reach.list",
    ]
    english = client.get(f"/workbench/operators/{market.id}?lang=en").text
    assert "Integrity class" in english and "Overdue" in english


def test_county_b_gets_404_on_county_a_operator_and_its_actions(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    market, record = _market(session, bureaus)
    csrf = wb_login(client, bureaus.county_b)
    assert client.get(f"/workbench/operators/{market.id}").status_code == 404
    assert client.get(f"/workbench/operators/{market.id}/qr-sheet.pdf").status_code == 404
    resp = client.post(
        f"/workbench/operators/{market.id}/records/{record.id}/dismiss", data={"csrf": csrf, "reason": "x"}
    )
    assert resp.status_code == 404
    session.expire_all()
    assert session.get(IntegrityRecord, record.id).state is RecordState.REPORTED  # type: ignore[union-attr]


def test_schedule_an_interview_and_record_its_outcome(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    market, _ = _market(session, bureaus)
    csrf = wb_login(client, bureaus.county_a)
    when = (date.today() + timedelta(days=3)).isoformat() + "T09:30"
    # The schema's refusal (an interview needs a place) shows in place, the form keeps what was typed.
    refused = client.post(
        f"/workbench/operators/{market.id}/interviews",
        data={"csrf": csrf, "kind": "interview", "scheduled_at": when, "subject": "计量器具超期未检"},
    )
    assert (
        refused.status_code == 422 and "计量器具超期未检" in refused.text and 'class="error"' in refused.text
    )
    assert session.exec(select(Interview)).first() is None
    resp = client.post(
        f"/workbench/operators/{market.id}/interviews",
        data={
            "csrf": csrf,
            "kind": "interview",
            "scheduled_at": when,
            "place": "西湖区市场监管局 302 室",
            "subject": "计量器具超期未检",
        },
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    session.expire_all()
    interview = session.exec(select(Interview)).one()
    assert interview.place == "西湖区市场监管局 302 室"
    at = interview.scheduled_at
    assert at is not None
    # 09:30 in Beijing is 01:30 UTC.
    assert (at.hour, at.minute) == (1, 30)
    page = client.get(resp.headers["location"]).text
    assert "已安排" in page and "09:30" in page
    empty = client.post(
        f"/workbench/operators/{market.id}/interviews/{interview.id}/outcome", data={"csrf": csrf}
    )
    assert empty.status_code == 422
    done = client.post(
        f"/workbench/operators/{market.id}/interviews/{interview.id}/outcome",
        data={"csrf": csrf, "outcome": "经营者承诺一周内送检"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    session.expire_all()
    held = session.get(Interview, interview.id)
    assert held is not None and held.status is InterviewStatus.held
    # A second outcome: the service's 409 shows in place (the page no longer offers the form).
    again = client.post(
        f"/workbench/operators/{market.id}/interviews/{interview.id}/cancel",
        data={"csrf": csrf, "reason": "重复"},
    )
    assert again.status_code == 409 and "不能执行该操作" in again.text
    assert (
        client.post(
            f"/workbench/operators/{market.id}/interviews", data={"csrf": "wrong", "subject": "x"}
        ).status_code
        == 400
    )


def test_record_actions_call_the_records_service(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    market, record = _market(session, bureaus)
    csrf = wb_login(client, bureaus.county_a)
    base = f"/workbench/operators/{market.id}/records/{record.id}"
    no_reason = client.post(f"{base}/dismiss", data={"csrf": csrf})
    assert no_reason.status_code == 422
    finding = client.post(f"{base}/verify", data={"csrf": csrf, "instrument_still_in_use": "true"})
    # The service refuses a finding this kind cannot carry; the record is untouched.
    assert finding.status_code == 422 and "继续使用" in finding.text
    assert (
        client.post(
            f"{base}/verify", data={"csrf": csrf, "reason": "现场核实"}, follow_redirects=False
        ).status_code
        == 303
    )
    session.expire_all()
    assert session.get(IntegrityRecord, record.id).state is RecordState.VERIFIED  # type: ignore[union-attr]
    stale = client.post(f"{base}/dismiss", data={"csrf": csrf, "reason": "不成立"})
    assert stale.status_code == 409 and "不能执行该操作" in stale.text
    corrected = client.post(
        f"{base}/correct",
        data={"csrf": csrf, "summary": "复称短缺 80 克", "reason": "更正摘要", "kind": "short_weight"},
        follow_redirects=False,
    )
    assert corrected.status_code == 303, corrected.text
    session.expire_all()
    fresh = session.get(IntegrityRecord, record.id)
    assert fresh is not None and fresh.summary == "复称短缺 80 克" and fresh.version == 3
    nothing = client.post(f"{base}/correct", data={"csrf": csrf, "reason": "再次", "kind": "short_weight"})
    assert nothing.status_code == 422 and "更正内容与现有记录相同" in nothing.text
    assert (
        client.post(
            f"{base}/revoke", data={"csrf": csrf, "reason": "撤销"}, follow_redirects=False
        ).status_code
        == 303
    )
    other = make_operator(session, bureaus.county_a, name="别家")
    session.commit()
    # A record under another operator's address is not found.
    assert (
        client.post(
            f"/workbench/operators/{other.id}/records/{record.id}/revoke", data={"csrf": csrf, "reason": "x"}
        ).status_code
        == 404
    )


def test_the_qr_sheet_is_a_pdf_of_the_market_or_one_stall(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    market, _ = _market(session, bureaus)
    station = make_operator(session, bureaus.county_a, sector=Sector.fuel_station)
    session.commit()
    wb_login(client, bureaus.county_a)
    sheet = client.get(f"/workbench/operators/{market.id}/qr-sheet.pdf")
    assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF")
    assert sheet.headers["content-type"] == "application/pdf"
    stall_id = session.exec(select(Operator.id)).first()
    assert stall_id is not None
    from backend.operators.models import Stall

    stall = session.exec(select(Stall).where(col(Stall.market_id) == market.id)).one()
    one = client.get(f"/workbench/operators/{market.id}/qr-sheet.pdf", params={"stall": stall.id})
    assert one.status_code == 200 and one.content.startswith(b"%PDF")
    assert (
        client.get(f"/workbench/operators/{market.id}/qr-sheet.pdf", params={"stall": 999999}).status_code
        == 404
    )
    assert client.get(f"/workbench/operators/{station.id}/qr-sheet.pdf").status_code == 404


def test_the_demo_case_operator_has_a_file_worth_opening(client: TestClient, session: Session) -> None:
    seed(session)
    session.commit()
    staff = session.exec(select(Account).where(col(Account.username) == "staff_xihu")).one()
    wb_login(client, staff, DEMO_PASSWORD)
    queue = client.get("/workbench/").text
    found = re.search(r'href="/workbench/operators/(\d+)"', queue)
    assert found is not None, "the queue links the demo case's operator"
    case = re.search(r'href="/workbench/cases/(\d+)"', queue)
    assert case is not None
    assert (
        f'href="/workbench/operators/{found.group(1)}"'
        in client.get(f"/workbench/cases/{case.group(1)}").text
    )
    page = client.get(f"/workbench/operators/{found.group(1)}").text
    # Instruments in several states, a verified record with the class it brings, a report to verify, a reminder.
    for expected in ("超期未检", "检定不合格", "已核实", "待核实", "依据", "等级变化", "提醒", "签署"):
        assert expected in page, expected
    assert "/records/" in page and "/verify" in page
    assert "等级未曾变化" not in page
