"""The review queues in real Chromium (Debian's): the landing page with its counts, a reported record verified,
a correction request decided, an intake job's progress updated live by the polling script (and readable with
the script off); axe-core finds no serious or critical violation; screenshots kept under var/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from backend.auth.models import Role
from backend.intake.models import IntakeJob
from backend.records import corrections
from backend.records.models import CorrectionAction, CorrectionRequest, CorrectionStatus, IntegrityRecord
from backend.records.rules import RecordState
from backend.records.schemas import CorrectionCreate
from tests.factories import COUNTY_A, make_account, make_intake_job, make_record
from tests.support.workbench_browser import (
    WIDTHS,
    axe_violations,
    needs_axe,
    shoot,
    sign_in,
    staff_and_market,
    watched_page,
)

pytestmark = [pytest.mark.browser]


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/workbench/reviews")
    sign_in(page, username, landed="ul.queues")


@needs_axe
def test_staff_work_the_review_queues_in_chromium(
    live_server: str, committed_session: Session, browser: Any
) -> None:
    session = committed_session
    staff, market = staff_and_market(session)
    market_user = make_account(session, Role.operator, operator_id=market.id)
    institution = make_account(session, Role.institution, COUNTY_A)
    institution.organisation = "杭州市计量检定测试院"
    session.add(institution)
    reported = make_record(
        session, market, "instrument_failed_verification", verified=False, source="institution"
    )
    disputed = make_record(session, market, "short_weight")
    correction = corrections.request(
        session,
        record=disputed,
        data=CorrectionCreate(
            action=CorrectionAction.revoke, reasons="复称所用电子秤当日已经检定合格，附检定证书"
        ),
        actor=market_user,
    )
    job = make_intake_job(
        session,
        institution,
        filename="2026年12月检定结果.csv",
        total_rows=400,
        rows_done=100,
        imported=96,
        rejected=4,
        error_row=12,
    )
    session.commit()

    problems: list[str] = []
    violations: list[str] = []
    for width_name, (width, height) in WIDTHS.items():
        context, page = watched_page(browser, width, height, problems)
        _sign_in(page, live_server, staff.username)
        violations += axe_violations(page, f"reviews-home@{width_name}")
        shoot(page, f"reviews_home_{width_name}")
        for path, name in (
            ("/workbench/reviews/records", "review_records"),
            ("/workbench/reviews/corrections", "review_corrections"),
            ("/workbench/reviews/intake", "review_intake"),
            (f"/workbench/intake/{job.id}", "intake_job"),
        ):
            page.goto(f"{live_server}{path}")
            violations += axe_violations(page, f"{name}@{width_name}")
            shoot(page, f"{name}_{width_name}")
        context.close()

    # The actions, once, at desktop width.
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN", bypass_csp=True)
    page = context.new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    _sign_in(page, live_server, staff.username)
    page.goto(f"{live_server}/workbench/reviews/records")
    page.select_option(f"#verify-use-{reported.id}", "1")
    page.fill(f"#verify-reason-{reported.id}", "现场复核，检定不合格的电子秤仍在使用")
    with page.expect_navigation():
        page.click(f"#verify-{reported.id} button[type=submit]")
    assert "done=verify" in page.url and page.locator("p.ok").count() == 1
    page.goto(f"{live_server}/workbench/reviews/corrections")
    page.check(f"#decide-{correction.id} input[value=reject]")
    page.fill(f"#decide-reasons-{correction.id}", "检定证书所列电子秤与涉案电子秤出厂编号不符")
    with page.expect_navigation():
        page.click(f"#decide-{correction.id} button[type=submit]")
    assert "done=decide" in page.url
    violations += axe_violations(page, "correction-decided@desktop")
    shoot(page, "review_corrections_decided_desktop")

    # Live progress: the page polls the JSON and moves the bar without a reload.
    page.goto(f"{live_server}/workbench/intake/{job.id}")
    assert page.get_attribute("progress", "value") == "25.0"
    session.expire_all()
    running = session.get(IntakeJob, job.id)
    assert running is not None
    running.rows_done = 300
    running.imported = 290
    session.add(running)
    session.commit()
    page.wait_for_function("document.querySelector('progress').value === 75", timeout=10_000)
    assert "300 / 400" in page.inner_text("[data-field=rows]")
    shoot(page, "intake_job_progress_desktop")
    signed_in = context.storage_state()
    context.close()

    # With JavaScript off (the same signed-in browser) the page still reads and offers the refresh link.
    context = browser.new_context(
        viewport={"width": 820, "height": 1180},
        locale="zh-CN",
        java_script_enabled=False,
        storage_state=signed_in,
    )
    page = context.new_page()
    page.goto(f"{live_server}/workbench/intake/{job.id}")
    assert page.locator("a[data-field=refresh]").count() == 1 and "300 / 400" in page.content()
    shoot(page, "intake_job_nojs_tablet")
    context.close()

    session.expire_all()
    verified = session.get(IntegrityRecord, reported.id)
    decided = session.get(CorrectionRequest, correction.id)
    assert verified is not None and verified.state is RecordState.VERIFIED
    assert decided is not None and decided.status is CorrectionStatus.rejected
    assert not violations, "\n".join(violations)
    assert not problems, problems
