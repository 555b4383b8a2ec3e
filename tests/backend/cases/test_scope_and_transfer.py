"""Jurisdiction scope on every case route (Art. 6, 20), the work list and its filters, and transfers that both
bureaus keep seeing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.cases.models import CaseAction, CaseEvent
from tests.backend.cases.conftest import PROVINCE_A, Bureaus, complaint_of, file_and_route, location, outbox
from tests.factories import CITY_A, COUNTY_A, COUNTY_B

Headers = dict[str, dict[str, str]]

#: 上城区 (330102), by the Qiantang river.
SHANGCHENG = (120.17, 30.25)


def test_staff_of_another_county_get_404_by_id_and_the_city_sees_both(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    in_a = file_and_route(client, session, headers["filer"])
    in_b = file_and_route(client, session, headers["filer"], location=location(*SHANGCHENG))
    assert (in_a.jurisdiction_code, in_b.jurisdiction_code) == (COUNTY_A, COUNTY_B)
    for path in ("", "/accept"):
        method = client.get if not path else client.post
        resp = method(f"/api/v1/cases/{in_a.id}{path}", headers=headers["county_b"])
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/cases/{in_a.id}", headers=headers["other_province"]).status_code == 404
    assert client.get(f"/api/v1/cases/{in_a.id}", headers=headers["city"]).status_code == 200
    assert client.get(f"/api/v1/cases/{in_b.id}", headers=headers["province"]).status_code == 200
    listed = {
        name: [c["id"] for c in client.get("/api/v1/cases", headers=headers[name]).json()["items"]]
        for name in ("county_a", "county_b", "city", "other_province")
    }
    assert listed == {
        "county_a": [in_a.id],
        "county_b": [in_b.id],
        "city": [in_b.id, in_a.id],
        "other_province": [],
    }


def test_non_staff_are_refused(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"])
    for name in ("filer", "market"):
        assert client.get("/api/v1/cases", headers=headers[name]).status_code == 403
        assert client.get(f"/api/v1/cases/{case.id}", headers=headers[name]).status_code == 403
    assert client.get("/api/v1/cases").status_code == 401


def test_work_list_filters_and_pages(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    first = file_and_route(client, session, headers["filer"])
    second = file_and_route(client, session, headers["filer"])
    other = file_and_route(client, session, headers["filer"], location=location(*SHANGCHENG))
    client.post(f"/api/v1/cases/{second.id}/accept", headers=headers["county_a"])
    h = headers["city"]

    def ids(**params: object) -> list[int]:
        return [c["id"] for c in client.get("/api/v1/cases", params=params, headers=h).json()["items"]]

    assert ids(status="accepted") == [second.id]
    assert ids(status="routed") == [other.id, first.id]
    assert ids(jurisdiction=COUNTY_B) == [other.id]
    assert ids(jurisdiction=CITY_A) == [other.id, second.id, first.id]
    assert ids(overdue=True) == [] and ids(escalated=False) == [other.id, second.id, first.id]
    page = client.get("/api/v1/cases", params={"limit": 1, "offset": 1}, headers=h).json()
    assert (page["total"], [c["id"] for c in page["items"]]) == (3, [second.id])
    assert page["items"][0]["category"] == "short_weight" and page["items"][0]["due_on"]
    bad = client.get("/api/v1/cases", params={"jurisdiction": "999999"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_jurisdiction"
    # A filter outside the scope finds nothing rather than revealing anything.
    assert [
        c["id"]
        for c in client.get(
            "/api/v1/cases", params={"jurisdiction": COUNTY_B}, headers=headers["county_a"]
        ).json()["items"]
    ] == []


def test_summaries_carry_no_filer_data(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    file_and_route(client, session, headers["filer"], contact={"name": "王五", "phone": "13700002222"})
    text = client.get("/api/v1/cases", headers=headers["county_a"]).text
    assert "王五" not in text and "13700002222" not in text and "30.2795" not in text


def test_case_read_is_audited(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], contact={"name": "王五", "phone": "13700002222"})
    detail = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()
    assert detail["complaint"]["contact"]["phone"] == "13700002222"  # staff handle it, so staff see it
    entry = session.execute(
        select(AuditEntry).where(
            col(AuditEntry.action) == "case.read", col(AuditEntry.entity_id) == str(case.id)
        )
    ).scalar_one()
    assert entry.actor_id == bureaus.county_a.id


# ---- transfers ----------------------------------------------------------------------------------------------


def test_transfer_reassigns_and_both_bureaus_see_it(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"])
    client.post(f"/api/v1/cases/{case.id}/accept", headers=headers["county_a"])
    resp = client.post(
        f"/api/v1/cases/{case.id}/transfer",
        json={"jurisdiction_code": COUNTY_B, "reason": "经营者实际经营地在上城区"},
        headers=headers["county_a"],
    )
    assert resp.status_code == 200, resp.text
    moved = resp.json()
    assert (moved["jurisdiction_code"], moved["state"], moved["assignee_id"]) == (COUNTY_B, "routed", None)
    by_key = [(d["key"], d["ended_by"]) for d in moved["deadlines"]]
    assert by_key == [
        ("complaint_acceptance_decision", "accepted"),
        ("complaint_mediation_end", "transferred"),
        ("complaint_acceptance_decision", None),
    ]
    # The new bureau has it; the old one no longer reaches it by id…
    assert client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).status_code == 404
    detail = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_b"]).json()
    [moved_step] = [e for e in detail["history"] if e["action"] == "transferred"]
    assert (moved_step["from_jurisdiction"], moved_step["to_jurisdiction"]) == (COUNTY_A, COUNTY_B)
    assert (
        moved_step["reason"] == "经营者实际经营地在上城区" and moved_step["actor_id"] == bureaus.county_a.id
    )
    # …but both keep the transfer in their history, each from its side.
    for name, direction in (("county_a", "out"), ("county_b", "in"), ("city", "within")):
        page = client.get("/api/v1/cases/transfers", headers=headers[name]).json()
        assert [(t["case_id"], t["direction"]) for t in page["items"]] == [(case.id, direction)], name
    assert client.get("/api/v1/cases/transfers", headers=headers["other_province"]).json()["total"] == 0
    # The complaint follows, the filer is told, the new bureau's staff are notified, and it is audited.
    complaint = complaint_of(session, case)
    assert complaint.jurisdiction_code == COUNTY_B
    timeline = client.get(f"/api/v1/complaints/{case.complaint_id}", headers=headers["filer"]).json()[
        "timeline"
    ]
    assert timeline[-1]["note"] == "已移送上城区市场监督管理局办理"
    assigned = outbox(session, "case.assigned")
    assert [e.payload["jurisdiction_code"] for e in assigned] == [COUNTY_A, COUNTY_B]
    entry = session.execute(
        select(AuditEntry).where(
            col(AuditEntry.action) == "case.transfer", col(AuditEntry.entity_id) == str(case.id)
        )
    ).scalar_one()
    assert entry.after is not None and entry.after["reason"] == "经营者实际经营地在上城区"


@pytest.mark.parametrize(
    ("code", "error"), [("999999", "unknown_jurisdiction"), (COUNTY_A, "same_jurisdiction")]
)
def test_transfer_refuses_an_unknown_or_the_same_jurisdiction(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, code: str, error: str
) -> None:
    case = file_and_route(client, session, headers["filer"])
    resp = client.post(
        f"/api/v1/cases/{case.id}/transfer",
        json={"jurisdiction_code": code, "reason": "x"},
        headers=headers["county_a"],
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == error


def test_transfer_by_staff_out_of_scope_is_404(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"])
    resp = client.post(
        f"/api/v1/cases/{case.id}/transfer",
        json={"jurisdiction_code": COUNTY_B, "reason": "抢案"},
        headers=headers["county_b"],
    )
    assert resp.status_code == 404
    assert (
        session.execute(select(CaseEvent).where(col(CaseEvent.action) == CaseAction.transferred)).first()
        is None
    )


def test_province_triage_is_worked_by_transferring_to_the_county(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(122.9, 30.0))
    assert case.jurisdiction_code == PROVINCE_A and case.triage
    moved = client.post(
        f"/api/v1/cases/{case.id}/transfer",
        json={"jurisdiction_code": COUNTY_A, "reason": "投诉人电话确认在西湖区"},
        headers=headers["province"],
    ).json()
    assert moved["triage"] is False and moved["jurisdiction_code"] == COUNTY_A
    assert complaint_of(session, case).routing_status == "routed"
    assert client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).status_code == 200


def test_admin_routes_a_national_triage_case_by_transfer(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(124.5, 29.0))
    assert case.jurisdiction_code is None
    resp = client.post(
        f"/api/v1/cases/{case.id}/transfer",
        json={"jurisdiction_code": COUNTY_A, "reason": "据投诉人补充的地址"},
        headers=headers["admin"],
    )
    assert resp.status_code == 200, resp.text
    [moved] = client.get("/api/v1/cases/transfers", headers=headers["county_a"]).json()["items"]
    assert (moved["from_jurisdiction"], moved["to_jurisdiction"], moved["direction"]) == (
        None,
        COUNTY_A,
        "in",
    )
    assert [e.payload["jurisdiction_code"] for e in outbox(session, "case.assigned")] == [COUNTY_A]
