"""What the workbench's browser tests share: a case filed as the app files one, signing in through the form, a
page whose errors are collected, axe-core's serious findings and the screenshots kept under var/screenshots/.

The ``browser`` and ``live_server`` fixtures are in ``tests/backend/workbench/conftest.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.cases import service as case_service
from backend.cases.models import Case
from backend.complaints import service as complaint_service
from backend.complaints.models import ComplaintPhoto, PhotoKind
from backend.complaints.photos import process_photo
from backend.complaints.schemas import ComplaintSubmission
from backend.complaints.service import IncomingPhoto
from backend.media.factory import media_storage
from backend.media.processing import ImageFormat
from backend.operators.models import Operator
from tests.factories import COUNTY_A, PASSWORD, make_account, make_operator

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": (1366, 900), "tablet": (820, 1180)}

#: The accessibility checks need axe-core (``npm ci --prefix tests/browser``); without it the test skips.
needs_axe = pytest.mark.skipif(
    not AXE.exists(), reason="axe-core is not installed: npm ci --prefix tests/browser"
)


def staff_and_market(session: Session) -> tuple[Account, Operator]:
    """A 西湖区 staff member (with the name the pages show) and the market the tests work on."""
    staff = make_account(session, Role.staff, COUNTY_A)
    staff.display_name = "西湖区市场监管局 王科员"
    session.add(staff)
    market = make_operator(session, staff, name="西溪农贸市场", location=(120.1052, 30.2795))
    return staff, market


def file_case(session: Session, filer: Account, photo: bytes | None, operator_id: int) -> Case:
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


def watched_page(
    browser: Any, width: int, height: int, problems: list[str], *, refused_forms: bool = False
) -> tuple[Any, Any]:
    """A new context (zh-CN, this viewport) and its page; console errors, failed responses and script errors are
    appended to ``problems``. With ``refused_forms`` a POST answered 422 (a form refused on purpose) is none."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="zh-CN", bypass_csp=True
    )
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not (refused_forms and r.request.method == "POST" and r.status == 422)
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    return context, page


def sign_in(page: Any, username: str, landed: str = "table.queue") -> None:
    """Sign in through the form the page shows, then wait for ``landed`` on the page it goes on to."""
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(landed)


def axe_violations(page: Any, name: str) -> list[str]:
    """Serious and critical axe-core violations on the page, named."""
    page.add_script_tag(path=str(AXE))
    found: list[str] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => v.id + ' ' + v.nodes.map(n => n.target.join(' ')).join(', '))"""
    )
    return [f"{name}: {v}" for v in found]


def shoot(page: Any, name: str) -> None:
    """A full-page screenshot, var/screenshots/workbench_<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"workbench_{name}.png"), full_page=True)
