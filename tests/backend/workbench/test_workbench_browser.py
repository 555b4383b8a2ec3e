"""The workbench in real Chromium (Debian's): a staff member signs in, filters the queue, opens a case, views a
photo and its audited original, and works the case to its end; axe-core checks every page, screenshots at
desktop (1366 px) and tablet (820 px) width are kept under var/screenshots/."""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Account, Role
from backend.cases import service as case_service
from backend.cases.models import Case, CaseState
from backend.complaints import service as complaint_service
from backend.complaints.models import ComplaintPhoto, PhotoKind
from backend.complaints.photos import process_photo
from backend.complaints.schemas import ComplaintSubmission
from backend.complaints.service import IncomingPhoto
from backend.main import create_app
from backend.media.factory import media_storage
from backend.media.processing import ImageFormat
from backend.publication.models import PublicationStatus, RecordPublication
from tests.factories import CITY_A, COUNTY_A, PASSWORD, make_account, make_operator
from tests.fixtures.media_images import jpeg, make_exif, photo_like

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = {"desktop": (1366, 900), "tablet": (820, 1180)}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and shutil.which("chromium") is None,
        reason="Debian's chromium is not installed (apt-get install chromium); browser tests need it",
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(committed_session: Session) -> Iterator[str]:
    """The app served by uvicorn in a thread on 127.0.0.1, with real sessions that commit."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or "")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _file_case(session: Session, filer: Account, photo: bytes | None, operator_id: int) -> Case:
    """A complaint filed through the complaints service and routed as the task does, in this session (SQLite
    takes one writer: the live server's requests must not meet an open transaction of ours)."""
    raw = {
        "category": "short_weight",
        "description": "在西溪农贸市场买了两斤荔枝，复称只有一斤七两",
        "location": {"lon": 120.1052, "lat": 30.2795, "accuracy_m": 12, "coord_system": "wgs84"},
        "weighing": {"declared_g": "1000", "measured_g": "850"},
        "operator_id": operator_id,
    }
    photos = (
        (
            IncomingPhoto(
                photo, hashlib.sha256(photo).hexdigest(), ImageFormat.JPEG, 800, 600, PhotoKind.other
            ),
        )
        if photo
        else ()
    )
    submission = complaint_service.Submission(
        ComplaintSubmission.model_validate(raw),
        photos,
        complaint_service.request_hash(raw, [p.sha256 for p in photos]),
    )
    complaint = complaint_service.create(
        session, account=filer, submission=submission, storage=media_storage()
    )
    case = case_service.route_complaint(session, complaint.id or 0)
    assert case is not None
    photo_ids = [
        p.id
        for p in session.exec(select(ComplaintPhoto).where(col(ComplaintPhoto.complaint_id) == complaint.id))
    ]
    session.commit()
    for photo_id in photo_ids:
        process_photo(photo_id or 0)
    return case


def _axe(page: Any, name: str) -> list[str]:
    """Serious and critical axe-core violations on the page, named."""
    page.add_script_tag(path=str(AXE))
    found: list[str] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => v.id + ' ' + v.nodes.map(n => n.target.join(' ')).join(', '))"""
    )
    return [f"{name}: {v}" for v in found]


def _shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"workbench_{name}.png"), full_page=True)


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed: npm ci --prefix tests/browser")
def test_staff_work_a_case_in_chromium(live_server: str, committed_session: Session, browser: Any) -> None:
    session = committed_session
    staff = make_account(session, Role.staff, COUNTY_A)
    staff.display_name = "西湖区市场监管局 王科员"
    session.add(staff)
    market = make_operator(session, staff, name="西溪农贸市场", location=(120.1052, 30.2795))
    filer = make_account(session, Role.consumer_device)
    reviewer = make_account(session, Role.staff, CITY_A)
    session.commit()
    photo = jpeg(photo_like(800, 600, seed=5), exif=make_exif(latitude=30.2795, longitude=120.1052))
    case = _file_case(session, filer, photo, market.id or 0)
    other = _file_case(session, filer, None, market.id or 0)
    case_service.accept(session, other, actor=staff)
    session.commit()

    problems: list[str] = []
    violations: list[str] = []
    for width_name, (width, height) in WIDTHS.items():
        context = browser.new_context(
            viewport={"width": width, "height": height}, locale="zh-CN", bypass_csp=True
        )
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{live_server}/workbench/")
        assert "/workbench/login" in page.url
        violations += _axe(page, f"login@{width_name}")
        _shoot(page, f"login_{width_name}")
        page.fill("#username", staff.username)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("table.queue")
        assert case.case_no in page.content() and other.case_no in page.content()
        violations += _axe(page, f"queue@{width_name}")
        _shoot(page, f"queue_{width_name}")
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
                violations += _axe(page, f"{name}@{width_name}")
                _shoot(page, f"{name}_{width_name}")
            page.goto(f"{live_server}/workbench/map")
            page.wait_for_selector(".leaflet-marker-icon", timeout=20_000)
            _shoot(page, f"map_{width_name}")
            context.close()
            continue
        page.click(f"text={case.case_no}")
        page.wait_for_selector("#h-complaint")
        assert "复称只有一斤七两" in page.content()
        violations += _axe(page, f"case@{width_name}")
        _shoot(page, f"case_{width_name}")
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
        violations += _axe(page, f"case-substantiated@{width_name}")
        _shoot(page, f"case_substantiated_{width_name}")
        page.focus("#close-reason")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("p.ok")
        assert "已办结" in page.content()
        _shoot(page, f"case_closed_{width_name}")
        # Publication, first pair of eyes: request it for the short-weight record the finding made.
        page.click("#h-records ~ ul form button[type=submit]")
        page.wait_for_selector("p.ok")
        page.goto(f"{live_server}/workbench/reviews/publication")
        assert page.locator(".four-eyes").count() >= 1 and page.locator("form[id^=approve-]").count() == 0
        violations += _axe(page, f"reviews@{width_name}")
        page.goto(f"{live_server}/workbench/dashboard")
        assert page.locator("svg.chart").count() == 4  # no case is overdue: that one is a sentence
        violations += _axe(page, f"dashboard@{width_name}")
        _shoot(page, f"dashboard_{width_name}")
        page.goto(f"{live_server}/workbench/map")
        page.wait_for_selector(".leaflet-marker-icon", timeout=20_000)
        page.wait_for_selector("path.leaflet-interactive, .leaflet-overlay-pane path", timeout=20_000)
        violations += _axe(page, f"map@{width_name}")
        _shoot(page, f"map_{width_name}")
        page.click("form.inline button.link")  # sign out
        page.wait_for_selector("#username")
        # Second pair of eyes: a city colleague approves the publication.
        page.fill("#username", reviewer.username)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("table.queue")
        page.goto(f"{live_server}/workbench/reviews/publication")
        form = page.locator("form[id^=approve-]").first
        for box in form.locator("input[type=checkbox]").all():
            box.check()
        form.locator("button[type=submit]").click()
        page.wait_for_selector("p.ok")
        _shoot(page, f"reviews_approved_{width_name}")
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
