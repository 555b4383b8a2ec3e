"""The workbench in real Chromium (Debian's): a staff member signs in, filters the queue, opens a case, views a
photo and its audited original, and works the case to its end; axe-core checks every page, screenshots at
desktop (1366 px) and tablet (820 px) width are kept under var/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.cases import service as case_service
from backend.cases.models import Case, CaseState
from backend.publication.models import PublicationStatus, RecordPublication
from tests.factories import CITY_A, make_account
from tests.fixtures.media_images import jpeg, make_exif, photo_like
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
def test_staff_work_a_case_in_chromium(live_server: str, committed_session: Session, browser: Any) -> None:
    session = committed_session
    staff, market = staff_and_market(session)
    filer = make_account(session, Role.consumer_device)
    reviewer = make_account(session, Role.staff, CITY_A)
    session.commit()
    photo = jpeg(photo_like(800, 600, seed=5), exif=make_exif(latitude=30.2795, longitude=120.1052))
    case = file_case(session, filer, photo, market.id or 0)
    other = file_case(session, filer, None, market.id or 0)
    case_service.accept(session, other, actor=staff)
    session.commit()

    problems: list[str] = []
    violations: list[str] = []
    for width_name, (width, height) in WIDTHS.items():
        context, page = watched_page(browser, width, height, problems)
        page.goto(f"{live_server}/workbench/")
        assert "/workbench/login" in page.url
        violations += axe_violations(page, f"login@{width_name}")
        shoot(page, f"login_{width_name}")
        sign_in(page, staff.username)
        assert case.case_no in page.content() and other.case_no in page.content()
        violations += axe_violations(page, f"queue@{width_name}")
        shoot(page, f"queue_{width_name}")
        # Filtering: the select applies itself (JavaScript); the accepted case leaves the list.
        # Filtering: the select applies itself (JavaScript). Desktop runs first and closes the case at its end.
        wanted, unwanted = (case, other) if width_name == "desktop" else (other, case)
        with page.expect_navigation():
            page.select_option("#f-status", "routed" if width_name == "desktop" else "accepted")
        assert wanted.case_no in page.content() and unwanted.case_no not in page.content()
        if width_name == "tablet":
            for path, name in (
                (f"/workbench/cases/{case.id}", "case"),
                ("/workbench/dashboard", "dashboard"),
            ):
                page.goto(f"{live_server}{path}")
                violations += axe_violations(page, f"{name}@{width_name}")
                shoot(page, f"{name}_{width_name}")
            page.goto(f"{live_server}/workbench/map")
            page.wait_for_selector(".leaflet-marker-icon", timeout=20_000)
            shoot(page, f"map_{width_name}")
            context.close()
            continue
        page.click(f"text={case.case_no}")
        page.wait_for_selector("#h-complaint")
        assert "复称只有一斤七两" in page.content()
        violations += axe_violations(page, f"case@{width_name}")
        shoot(page, f"case_{width_name}")
        # The display copy, then the original one click away: an audited read.
        page.click("a.thumb")
        page.wait_for_load_state()
        assert page.url.endswith("/display")
        page.go_back()
        with page.expect_response(lambda r: r.url.endswith("/original")) as original:
            page.click("a.original")
        assert original.value.status == 200 and original.value.body() == photo
        page.goto(f"{live_server}/workbench/cases/{case.id}")
        # Every step by keyboard-reachable forms: accept, investigate, substantiate, close.
        page.fill("#accept-note", "材料齐全")
        page.click("#step-accept button[type=submit]")
        page.wait_for_selector("p.ok")
        # A step the service refuses shows its error in place.
        page.click("#step-investigate button[type=submit]")
        page.wait_for_selector("#step-substantiate")
        page.click("#step-substantiate button[type=submit]")  # required findings: the browser stops it
        assert page.locator("#sub-findings:invalid").count() == 1
        page.fill("#sub-findings", "现场复称，电子秤短称 150 克")
        page.check("input[name=record_kinds][value=short_weight]")
        page.click("#step-substantiate button[type=submit]")
        page.wait_for_selector("p.ok")
        violations += axe_violations(page, f"case-substantiated@{width_name}")
        shoot(page, f"case_substantiated_{width_name}")
        page.focus("#close-reason")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("p.ok")
        assert "已办结" in page.content()
        shoot(page, f"case_closed_{width_name}")
        # Publication, first pair of eyes: request it for the short-weight record the finding made.
        page.click("#h-records ~ ul form button[type=submit]")
        page.wait_for_selector("p.ok")
        page.goto(f"{live_server}/workbench/reviews/publication")
        assert page.locator(".four-eyes").count() >= 1 and page.locator("form[id^=approve-]").count() == 0
        violations += axe_violations(page, f"reviews@{width_name}")
        page.goto(f"{live_server}/workbench/dashboard")
        assert page.locator("svg.chart").count() == 4  # no case is overdue: that one is a sentence
        violations += axe_violations(page, f"dashboard@{width_name}")
        shoot(page, f"dashboard_{width_name}")
        page.goto(f"{live_server}/workbench/map")
        page.wait_for_selector(".leaflet-marker-icon", timeout=20_000)
        page.wait_for_selector("path.leaflet-interactive, .leaflet-overlay-pane path", timeout=20_000)
        violations += axe_violations(page, f"map@{width_name}")
        shoot(page, f"map_{width_name}")
        page.click("form.inline button.link")  # sign out
        page.wait_for_selector("#username")
        # Second pair of eyes: a city colleague approves the publication.
        sign_in(page, reviewer.username)
        page.goto(f"{live_server}/workbench/reviews/publication")
        form = page.locator("form[id^=approve-]").first
        for box in form.locator("input[type=checkbox]").all():
            box.check()
        form.locator("button[type=submit]").click()
        page.wait_for_selector("p.ok")
        shoot(page, f"reviews_approved_{width_name}")
        context.close()

    assert violations == [], violations
    # Every failed response of the pages is listed by URL above; Chromium's own favicon probe (outside the page's
    # requests) logs a bare "Failed to load resource" that names none.
    assert [p for p in problems if not p.startswith("Failed to load resource")] == [], problems
    session.expire_all()
    done = session.get(Case, case.id)
    assert done is not None and done.state is CaseState.closed and len(done.record_ids) == 2
    reads = session.exec(
        select(AuditEntry)
        .where(col(AuditEntry.action) == "complaint_photo.read")
        .where(col(AuditEntry.actor_id) == staff.id)
    ).all()
    assert len(reads) == 1
    published = session.exec(
        select(RecordPublication).where(col(RecordPublication.record_id).in_(done.record_ids))
    ).all()
    assert [(p.status, p.requested_by_id, p.reviewed_by_id) for p in published] == [
        (PublicationStatus.published, staff.id, reviewer.id)
    ]
