"""The case queue and the case page: scope, filters, paging, audited reads, every step as a form."""

from __future__ import annotations

from contextlib import nullcontext
from itertools import pairwise

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.cases.models import Case, CaseState
from backend.complaints.models import ComplaintPhoto
from backend.complaints.photos import process_photo
from backend.workbench import queue
from tests.backend.cases.conftest import Bureaus, file_and_route
from tests.backend.workbench.conftest import wb_login
from tests.factories import post_complaint
from tests.fixtures.media_images import jpeg, make_exif, photo_like


def _state(session: Session, case: Case) -> CaseState:
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None
    return fresh.state


def _audits(session: Session, action: str, entity_id: int) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.exec(
            select(AuditEntry)
            .where(col(AuditEntry.action) == action)
            .where(col(AuditEntry.entity_id) == str(entity_id))
            .order_by(col(AuditEntry.seq))
        ).all()
    )


def test_queue_lists_the_scope_with_counts_and_filters(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    first = file_and_route(client, session, headers["filer"])
    second = file_and_route(client, session, headers["filer"], category="unverified_instrument")
    client.post(f"/api/v1/cases/{second.id}/accept", headers=headers["county_a"])
    wb_login(client, bureaus.county_a)
    page = client.get("/workbench/")
    assert page.status_code == 200
    assert first.case_no in page.text and second.case_no in page.text
    # The working-days badge; a geotagged complaint names no operator until the investigation finds one.
    assert "个工作日" in page.text and "未确定经营者" in page.text
    only_routed = client.get("/workbench/?status=routed").text
    assert first.case_no in only_routed and second.case_no not in only_routed
    by_category = client.get("/workbench/?category=unverified_instrument").text
    assert second.case_no in by_category and first.case_no not in by_category
    assert first.case_no not in client.get("/workbench/?overdue=1").text
    assert first.case_no in client.get("/workbench/?due_within=60").text
    assert first.case_no not in client.get("/workbench/?due_within=0").text
    assert first.case_no not in client.get("/workbench/?county=330102").text
    # Blank fields from the form mean "any"; nonsense is a 422 on the page, never a 500.
    assert client.get("/workbench/?status=&category=&overdue=").status_code == 200
    bad = client.get("/workbench/?status=nope&due_within=x&county=999999")
    assert bad.status_code == 422 and "填写有误" in bad.text
    # County B sees none of county A's cases; the city sees them.
    wb_login(client, bureaus.county_b)
    assert first.case_no not in client.get("/workbench/").text
    wb_login(client, bureaus.city)
    assert first.case_no in client.get("/workbench/").text


def test_queue_counts_per_status_and_pages_by_keyset(
    client: TestClient,
    session: Session,
    bureaus: Bureaus,
    headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [file_and_route(client, session, headers["filer"]) for _ in range(3)]
    client.post(f"/api/v1/cases/{cases[0].id}/accept", headers=headers["county_a"])
    wb_login(client, bureaus.county_a)
    monkeypatch.setattr(queue, "PAGE_SIZE", 2)
    from backend.cases.service import local_date
    from backend.db import utcnow
    from backend.workbench.auth import scope_of

    scope = scope_of(session, bureaus.county_a)
    assert scope is not None
    today = local_date(utcnow())
    first = queue.load(session, scope, queue.QueueFilter(), after=None, today=today)
    assert first.counts == {CaseState.routed: 2, CaseState.accepted: 1} and first.total == 3
    assert len(first.lines) == 2 and first.next_after is not None
    second = queue.load(
        session, scope, queue.QueueFilter(), after=queue.parse_cursor(first.next_after), today=today
    )
    assert len(second.lines) == 1 and second.next_after is None
    seen = [line.case.id for line in first.lines + second.lines]
    assert sorted(seen) == sorted(c.id for c in cases)
    # Sorted by deadline: no line's due date is before the previous one's.
    dues = [line.case.due_on for line in first.lines + second.lines]
    assert all(a is not None and b is not None and a <= b for a, b in pairwise(dues))
    html = client.get("/workbench/").text
    assert 'rel="next"' in html
    assert queue.parse_cursor("garbage") is None and queue.parse_cursor(None) is None


def test_queue_puts_undated_cases_last_and_caps_its_counts(
    client: TestClient,
    session: Session,
    bureaus: Bureaus,
    headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [file_and_route(client, session, headers["filer"]) for _ in range(4)]
    # Two cases without an open deadline: after every dated one, by id, and the keyset pages across the seam.
    for undated in (cases[0], cases[2]):
        row = session.get(Case, undated.id)
        assert row is not None
        row.due_on = None
        session.add(row)
    session.commit()
    monkeypatch.setattr(queue, "PAGE_SIZE", 1)
    monkeypatch.setattr(queue, "COUNT_CAP", 2)
    monkeypatch.setattr(queue, "EXACT_BELOW", 3)
    from backend.cases.service import local_date
    from backend.db import utcnow
    from backend.workbench.auth import scope_of

    scope = scope_of(session, bureaus.county_a)
    assert scope is not None
    today = local_date(utcnow())
    seen: list[int] = []
    after = None
    for _ in range(6):
        page = queue.load(session, scope, queue.QueueFilter(), after=after, today=today)
        seen += [line.case.id for line in page.lines]
        # Four routed cases over a cap of two: "2+", and the total is a lower bound.
        assert page.counts == {CaseState.routed: 3} and page.capped and page.overall == 2
        if page.next_after is None:
            break
        after = queue.parse_cursor(page.next_after)
    assert seen == [cases[1].id, cases[3].id, cases[0].id, cases[2].id]
    assert queue.parse_cursor(f"{queue.NO_DEADLINE.isoformat()}.7") == (None, 7)
    wb_login(client, bureaus.county_a)
    assert "<strong>2+</strong>" in client.get("/workbench/").text
    # Fewer matches than EXACT_BELOW: one grouped scan answers, with the same cap.
    monkeypatch.setattr(queue, "EXACT_BELOW", 5)
    page = queue.load(session, scope, queue.QueueFilter(), after=None, today=today)
    assert page.counts == {CaseState.routed: 3} and page.capped and page.overall == 2
    # Under the cap the counts are exact either way.
    monkeypatch.setattr(queue, "COUNT_CAP", 10)
    monkeypatch.setattr(queue, "EXACT_BELOW", 3)
    page = queue.load(session, scope, queue.QueueFilter(), after=None, today=today)
    assert page.counts == {CaseState.routed: 4} and not page.capped and page.overall == 4


def test_case_page_is_scoped_and_audited(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case = file_and_route(client, session, headers["filer"])
    wb_login(client, bureaus.county_b)
    assert client.get(f"/workbench/cases/{case.id}").status_code == 404
    assert client.get("/workbench/cases/999999").status_code == 404
    assert _audits(session, "case.read", case.id or 0) == []
    wb_login(client, bureaus.county_a)
    page = client.get(f"/workbench/cases/{case.id}")
    assert page.status_code == 200
    assert "称了两斤苹果" in page.text and case.case_no in page.text
    assert f'action="/workbench/cases/{case.id}/accept"' in page.text
    assert f'action="/workbench/cases/{case.id}/substantiate"' not in page.text  # not from "routed"
    reads = _audits(session, "case.read", case.id or 0)
    assert len(reads) == 1 and reads[0].actor_id == bureaus.county_a.id


def test_every_step_is_a_form_and_errors_show_in_place(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case = file_and_route(client, session, headers["filer"])
    csrf = wb_login(client, bureaus.county_a)
    url = f"/workbench/cases/{case.id}"
    # No CSRF token: refused, nothing changes.
    assert client.post(f"{url}/accept", data={"note": "x"}).status_code == 400
    assert _state(session, case) is CaseState.routed
    # A step the state does not allow: the service's 409, shown on the page, nothing changes.
    refused = client.post(f"{url}/substantiate", data={"csrf": csrf, "findings": "属实"})
    assert refused.status_code == 409 and "未能办理" in refused.text
    assert _state(session, case) is CaseState.routed
    # A form the schema refuses: 422 in place.
    invalid = client.post(f"{url}/reject", data={"csrf": csrf, "reason": "because"})
    assert invalid.status_code == 422 and "reason" in invalid.text
    done = client.post(f"{url}/accept", data={"csrf": csrf, "note": "受理"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"{url}?done=accept"
    assert _state(session, case) is CaseState.accepted
    assert "已办理：受理" in client.get(done.headers["location"]).text
    for step, data, state in (
        ("investigate", {}, CaseState.investigating),
        (
            "substantiate",
            {
                "findings": "现场复称短缺 100 克",
                "record_kinds": ["short_weight"],
                "operator_id": str(bureaus.market.id),
            },
            CaseState.substantiated,
        ),
        ("close", {}, CaseState.closed),
        ("reopen", {"reason": "复核"}, CaseState.investigating),
    ):
        resp = client.post(f"{url}/{step}", data={"csrf": csrf, **data}, follow_redirects=False)
        assert resp.status_code == 303, resp.text
        assert _state(session, case) is state
    # County B cannot act on county A's case: 404 before anything is looked at.
    csrf_b = wb_login(client, bureaus.county_b)
    assert client.post(f"{url}/close", data={"csrf": csrf_b}).status_code == 404
    assert client.post(f"{url}/launch", data={"csrf": csrf_b}).status_code == 422


def test_transfer_and_reject_forms(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case = file_and_route(client, session, headers["filer"])
    other = file_and_route(client, session, headers["filer"])
    csrf = wb_login(client, bureaus.county_a)
    resp = client.post(
        f"/workbench/cases/{case.id}/transfer",
        data={"csrf": csrf, "jurisdiction_code": "330102", "reason": "经营者在上城区"},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    session.expire_all()
    moved = session.get(Case, case.id)
    assert moved is not None and moved.jurisdiction_code == "330102"
    resp = client.post(
        f"/workbench/cases/{other.id}/reject",
        data={"csrf": csrf, "reason": "not_metrology", "note": "价格问题"},
        follow_redirects=False,
    )
    assert resp.status_code == 303 and _state(session, other) is CaseState.not_accepted


def test_photos_display_copies_and_the_audited_original(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    from tests.backend.cases.conftest import route

    original = jpeg(photo_like(640, 480, seed=3), exif=make_exif(latitude=30.2795, longitude=120.1052))
    resp = post_complaint(client, headers["filer"], photos=[original])
    assert resp.status_code == 201, resp.text
    case = route(session, int(resp.json()["id"]))
    wb_login(client, bureaus.county_a)
    photo = session.exec(
        select(ComplaintPhoto).where(col(ComplaintPhoto.complaint_id) == case.complaint_id)
    ).one()
    queue_page = client.get("/workbench/").text
    assert "照片处理中" in queue_page
    pending = client.get(f"/workbench/cases/{case.id}/photos/{photo.id}/display")
    assert pending.status_code == 409
    process_photo(photo.id or 0, unit_of_work=lambda: nullcontext(session))
    session.commit()
    page = client.get(f"/workbench/cases/{case.id}").text
    assert f"/workbench/cases/{case.id}/photos/{photo.id}/thumbnail" in page
    display = client.get(f"/workbench/cases/{case.id}/photos/{photo.id}/display")
    assert display.status_code == 200 and display.headers["content-type"] == "image/jpeg"
    assert display.content != original
    assert _audits(session, "complaint_photo.read", photo.id or 0) == []
    got = client.get(f"/workbench/cases/{case.id}/photos/{photo.id}/original")
    assert got.status_code == 200 and got.content == original
    assert got.headers["cache-control"] == "no-store"
    reads = _audits(session, "complaint_photo.read", photo.id or 0)
    assert len(reads) == 1 and reads[0].actor_id == bureaus.county_a.id
    wb_login(client, bureaus.county_b)
    assert client.get(f"/workbench/cases/{case.id}/photos/{photo.id}/original").status_code == 404
    assert client.get(f"/workbench/cases/{case.id}/photos/{photo.id}/display").status_code == 404
    assert len(_audits(session, "complaint_photo.read", photo.id or 0)) == 1
