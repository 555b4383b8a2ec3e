"""The QR page in real Chromium (Debian's, never a downloaded browser): it renders under its CSP, and a phone
user files a complaint with a camera photo and the browser's geolocation, which lands in the database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.complaints.models import Complaint, ComplaintPhoto, IdempotencyKey
from backend.main import create_app
from backend.qr import service as qr_service
from tests.factories import COUNTY_A, make_account, make_instrument, make_operator, make_stall
from tests.fixtures.media_images import jpeg, photo_like
from tests.support.browser import CHROMIUM_ARGS, require_chromium
from tests.support.live_server import serve

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
POSITION = {"latitude": 30.2795, "longitude": 120.1052, "accuracy": 15}

pytestmark = [pytest.mark.browser]


@pytest.fixture(autouse=True, scope="module")
def chromium() -> Path:
    """Checked before any server starts: skip without Chromium, or fail in CI (GONGPING_REQUIRE_BROWSER=1)."""
    return require_chromium()


@pytest.fixture
def live_server(committed_session: Session) -> Iterator[str]:
    """The app served by uvicorn in a thread on 127.0.0.1, with real sessions that commit."""
    with serve(create_app()) as url:
        yield url


@pytest.fixture
def stall_token(committed_session: Session) -> str:
    staff = make_account(committed_session, Role.staff, COUNTY_A)
    market = make_operator(committed_session, staff, name="西溪农贸市场（浏览器测试）")
    stall = make_stall(committed_session, market, number="B7", name="阿明水果", holder_name="李明")
    make_instrument(committed_session, market, stall=stall, verified_on=date.today() - timedelta(days=20))
    committed_session.commit()
    return qr_service.code_of(stall).token


@pytest.fixture
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def test_a_phone_user_files_a_complaint_with_photo_and_location(
    live_server: str, stall_token: str, committed_session: Session, browser: Any
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        geolocation=POSITION,
    )
    context.grant_permissions(["geolocation"], origin=live_server)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(f"{live_server}/q/{stall_token}")
    assert page.locator("h1").inner_text() == "阿明水果"
    assert "李**" in page.content() and "李明" not in page.content()
    assert page.locator("#integrity-class strong").inner_text() == "基本守信"

    page.select_option("#category", "short_weight")
    page.fill("#description", "买了两斤荔枝，复称只有一斤七两")
    page.click("#locate")
    page.wait_for_function(
        "document.getElementById('location-status').textContent.includes('已附上位置')", timeout=15_000
    )
    photo = jpeg(photo_like(800, 600, seed=11))
    page.set_input_files(
        "#photos", files=[{"name": "receipt.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    page.click("#submit")
    page.wait_for_selector("#result.ok", timeout=30_000)
    message = page.locator("#result").inner_text()
    complaint_id = int(page.locator("#result").get_attribute("data-complaint-id") or 0)
    # The receipt quotes the case number the notices carry (TS, the year, the zero-padded id), not the row id.
    case_no = page.locator("#result").get_attribute("data-case-no") or ""
    assert re.fullmatch(rf"TS20\d\d{complaint_id:08d}", case_no), case_no
    assert f"投诉编号：{case_no}" in message and "已登记" in message
    assert f"编号：{complaint_id}；" not in message

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "qr_page_complaint_submitted.png"), full_page=True)
    stored = page.evaluate("JSON.parse(localStorage.getItem('gongping.device'))")
    context.close()
    assert problems == [], problems

    committed_session.expire_all()
    complaint = committed_session.get(Complaint, complaint_id)
    assert complaint is not None and complaint.via_qr and complaint.category == "short_weight"
    assert complaint.description == "买了两斤荔枝，复称只有一斤七两"
    assert complaint.coord_system == "wgs84" and complaint.accuracy_m == 15
    assert complaint.lat == pytest.approx(30.2795) and complaint.lon == pytest.approx(120.1052)
    photos = committed_session.exec(
        select(ComplaintPhoto).where(col(ComplaintPhoto.complaint_id) == complaint_id)
    ).all()
    assert len(photos) == 1 and photos[0].original_format == "jpeg" and photos[0].original_bytes == len(photo)
    filer = committed_session.get(Account, complaint.account_id)
    assert filer is not None and filer.role == Role.consumer_device and filer.username == stored["device_id"]
    key = committed_session.exec(
        select(IdempotencyKey).where(col(IdempotencyKey.complaint_id) == complaint_id)
    ).one()
    assert len(key.key) == 36 and key.key.count("-") == 4  # crypto.randomUUID, made in the page


def test_the_page_switches_language_and_warns_about_forged_codes(
    live_server: str, stall_token: str, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server}/q/{stall_token}")
    page.click("header a")
    page.wait_for_selector("html[lang=en]")
    assert "How to complain" in page.content()

    response = page.goto(f"{live_server}/q/{stall_token[:-4]}AAAA")
    assert response is not None and response.status == 404
    assert "可能是伪造" in page.locator("#warning h1").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "qr_page_forged_warning.png"), full_page=True)
    # Without a location or a place the report is refused in the page, before anything is sent.
    page.click("#submit")
    page.wait_for_selector("#result.err")
    assert "请附上位置或填写地点" in page.locator("#result").inner_text()
    context.close()
    # The 404 of the forged page itself is the only error the console may show.
    assert all("404" in p for p in problems), problems
