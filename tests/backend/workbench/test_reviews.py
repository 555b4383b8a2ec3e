"""Publication review in the workbench: four eyes — the page never offers approval to the record's author."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.cases.models import Case
from backend.publication.models import PublicationStatus, RecordPublication
from tests.backend.cases.conftest import Bureaus, file_and_route
from tests.backend.workbench.conftest import wb_login


def _substantiated(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> tuple[Case, int]:
    case = file_and_route(client, session, headers["filer"])
    for step, body in (
        ("accept", None),
        ("investigate", None),
        (
            "substantiate",
            {"findings": "复称短缺", "record_kinds": ["short_weight"], "operator_id": bureaus.market.id},
        ),
    ):
        assert (
            client.post(f"/api/v1/cases/{case.id}/{step}", json=body, headers=headers["county_a"]).status_code
            == 200
        )
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and fresh.record_ids
    return fresh, fresh.record_ids[0]


def _publication(session: Session, record_id: int) -> RecordPublication | None:
    session.expire_all()
    return session.exec(
        select(RecordPublication)
        .where(col(RecordPublication.record_id) == record_id)
        .order_by(col(RecordPublication.id).desc())
    ).first()


def test_a_record_is_published_by_two_different_staff(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case, record_id = _substantiated(client, session, bureaus, headers)
    csrf = wb_login(client, bureaus.county_a)
    page = client.get(f"/workbench/cases/{case.id}").text
    assert f'action="/workbench/records/{record_id}/publication/request"' in page
    resp = client.post(
        f"/workbench/records/{record_id}/publication/request",
        data={"csrf": csrf, "case_id": str(case.id)},
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == f"/workbench/cases/{case.id}?done=publish"
    pending = _publication(session, record_id)
    assert pending is not None and pending.status is PublicationStatus.pending
    # The author sees the request but no approval form, and approving anyway is refused by the service.
    own = client.get("/workbench/reviews/publication").text
    assert f"review-{record_id}" in own and f"approve-{record_id}" not in own and "另一名工作人员" in own
    forced = client.post(
        f"/workbench/records/{record_id}/publication/approve",
        data={
            "csrf": csrf,
            "no_state_or_trade_secret": "1",
            "no_personal_data": "1",
            "no_undisclosed_information_of_other_organs": "1",
        },
    )
    assert forced.status_code in (403, 409) and "未能办理" in forced.text
    assert _publication(session, record_id).status is PublicationStatus.pending  # type: ignore[union-attr]
    listed = session.exec(
        select(AuditEntry).where(col(AuditEntry.action) == "publication.list").order_by(col(AuditEntry.seq))
    ).all()
    assert listed and listed[-1].actor_id == bureaus.county_a.id
    # A second staff member over the county reviews: the checks are required, then it is published.
    csrf_city = wb_login(client, bureaus.city)
    other = client.get("/workbench/reviews/publication").text
    assert f"approve-{record_id}" in other
    unchecked = client.post(f"/workbench/records/{record_id}/publication/approve", data={"csrf": csrf_city})
    assert unchecked.status_code == 422
    approved = client.post(
        f"/workbench/records/{record_id}/publication/approve",
        data={
            "csrf": csrf_city,
            "no_state_or_trade_secret": "1",
            "no_personal_data": "1",
            "no_undisclosed_information_of_other_organs": "1",
        },
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    published = _publication(session, record_id)
    assert published is not None and published.status is PublicationStatus.published
    assert published.reviewed_by_id == bureaus.city.id
    # County B cannot touch county A's record.
    csrf_b = wb_login(client, bureaus.county_b)
    assert (
        client.post(f"/workbench/records/{record_id}/publication/refuse", data={"csrf": csrf_b}).status_code
        == 404
    )
    assert f"review-{record_id}" not in client.get("/workbench/reviews/publication").text
