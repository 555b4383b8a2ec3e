"""The operator file in real Chromium (Debian's): a staff member opens it from a case, schedules an interview,
records its outcome and verifies a reported record; axe-core checks the operator pages, screenshots at desktop
and tablet width are kept under var/screenshots/ (workbench_operator_*.png)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.records.models import IntegrityRecord
from backend.records.rules import RecordState
from backend.supervision.models import Interview, InterviewStatus
from tests.factories import (
    make_account,
    make_instrument,
    make_record,
    make_stall,
)
from tests.support.workbench_browser import (
    WIDTHS,
    axe_violations,
    file_case,
    needs_axe,
    shoot,
    sign_in,
    staff_and_market,
    watched_page,
)

pytestmark = [pytest.mark.browser]


@needs_axe
def test_staff_work_an_operator_file_in_chromium(
    live_server: str, committed_session: Session, browser: Any
) -> None:
    session = committed_session
    staff, market = staff_and_market(session)
    stall = make_stall(session, market, number="A02", name="李秀英水果摊", holder_name="李秀英")
    make_stall(session, market, number="B01", name="王大海水产摊", holder_name="王大海")
    make_instrument(session, market, stall=stall, verified_on=date.today() - timedelta(days=400))
    make_instrument(session, market, verified_on=date.today() - timedelta(days=20))
    make_instrument(session, market)
    record = make_record(session, market, "short_weight", verified=False, source="supervisor")
    filer = make_account(session, Role.consumer_device)
    session.commit()
    case = file_case(session, filer, None, market.id or 0)
    session.commit()
    when = (date.today() + timedelta(days=3)).isoformat() + "T09:30"

    problems: list[str] = []
    violations: list[str] = []
    for width_name, (width, height) in WIDTHS.items():
        # A refused form answers 422 on purpose (below); any other failed response is a problem.
        context, page = watched_page(browser, width, height, problems, refused_forms=True)
        page.goto(f"{live_server}/workbench/login")
        sign_in(page, staff.username)
        # From the case to its operator's file.
        page.goto(f"{live_server}/workbench/cases/{case.id}")
        page.click("a.operator-file")
        page.wait_for_selector("#h-rating")
        assert page.url.endswith(f"/workbench/operators/{market.id}")
        # Desktop runs first and verifies the record; the tablet pass sees it verified.
        assert "超期未检" in page.content()
        assert ("待核实" if width_name == "desktop" else "已核实") in page.content()
        violations += axe_violations(page, f"operator@{width_name}")
        shoot(page, f"operator_{width_name}")
        page.goto(f"{live_server}/workbench/operators?stall=A02")
        page.wait_for_selector("table.queue")
        assert market.name in page.content()
        violations += axe_violations(page, f"operators@{width_name}")
        shoot(page, f"operators_{width_name}")
        # The printable sheet of one stall's sticker, from the file's link.
        page.goto(f"{live_server}/workbench/operators/{market.id}")
        href = page.get_attribute(f"a[href$='stall={stall.id}']", "href")
        sheet = page.request.get(f"{live_server}{href}")
        assert sheet.status == 200 and sheet.headers["content-type"] == "application/pdf"
        if width_name == "tablet":
            context.close()
            continue
        # Schedule an interview: the browser itself asks for the subject first.
        page.select_option("#schedule-kind", "interview")
        page.fill("#schedule-at", when)
        page.click("#schedule button[type=submit]")
        assert page.locator("#schedule-subject:invalid").count() == 1
        page.fill("#schedule-subject", "B01 摊位电子秤超期未检")
        # No place: the schema refuses, the error shows in place and what was typed stays.
        page.click("#schedule button[type=submit]")
        page.wait_for_selector("#schedule .error")
        assert page.input_value("#schedule-subject") == "B01 摊位电子秤超期未检"
        shoot(page, f"operator_refused_{width_name}")
        page.fill("#schedule-place", "西湖区市场监管局 302 室")
        page.click("#schedule button[type=submit]")
        page.wait_for_selector("p.ok")
        assert "09:30" in page.content()
        shoot(page, f"operator_scheduled_{width_name}")
        # Its outcome, then a record verified: both by keyboard-reachable forms.
        outcome = page.locator("form[id$='-outcome']").first
        outcome.locator("textarea").fill("经营者承诺一周内送检并停用该秤")
        outcome.locator("button[type=submit]").click()
        page.wait_for_selector("p.ok")
        page.click(f"#record-{record.id} summary")
        page.fill(f"#record-{record.id}-verify-reason", "现场复称核实")
        page.focus(f"#record-{record.id}-verify-reason")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("p.ok")
        assert "记录已核实" in page.content()
        violations += axe_violations(page, f"operator-worked@{width_name}")
        shoot(page, f"operator_worked_{width_name}")
        context.close()

    assert violations == [], violations
    assert [p for p in problems if not p.startswith("Failed to load resource")] == [], problems
    session.expire_all()
    interview = session.exec(select(Interview).where(col(Interview.operator_id) == market.id)).one()
    assert interview.status is InterviewStatus.held and interview.place == "西湖区市场监管局 302 室"
    verified = session.get(IntegrityRecord, record.id)
    assert verified is not None and verified.state is RecordState.VERIFIED
    # Every open of the file was an audited read of the operator.
    reads = session.exec(
        select(AuditEntry)
        .where(col(AuditEntry.action) == "operator.read")
        .where(col(AuditEntry.actor_id) == staff.id)
    ).all()
    assert len(reads) >= 4
