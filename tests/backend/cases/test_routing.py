"""Routing rules 1-6 through the routing task's code path, on the real county boundaries; triage, GCJ-02,
address-only reports, idempotency, and what staff and the bureau's inbox are told."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.cases.models import CaseEvent, CaseState
from backend.cases.routing import GeocoderRetry
from backend.complaints.models import Complaint, ComplaintEvent, ComplaintStatus, RoutingStatus
from backend.config import get_settings
from backend.jurisdictions import locator
from backend.notices import handlers as notification_handlers
from geo import from_wgs84
from tests.backend.cases.conftest import (
    MARKET_AT,
    PROVINCE_A,
    XIHU,
    Bureaus,
    complaint_of,
    file_and_route,
    file_complaint,
    location,
    outbox,
    route,
)
from tests.factories import COUNTY_A, COUNTY_B

Headers = dict[str, dict[str, str]]

#: A vertex shared by 拱墅区 (330105), 西湖区 (330106) and 余杭区 (330110) in the boundary data.
TRIPLE_POINT = (120.080819, 30.333503)
#: The Yellow Sea about 5 km off Qingdao's 市南区 (370202).
OFF_QINGDAO = (120.45, 36.02)
#: The East China Sea east of Zhoushan: no county within 10 km, Zhejiang within 50 km.
OFF_ZHOUSHAN = (122.9, 30.0)
#: Far out in the East China Sea: no county near at all.
OFFSHORE = (124.5, 29.0)


def complaint_of_id(session: Session, complaint_id: int) -> RoutingStatus:
    """A complaint's routing status, fresh."""
    session.expire_all()
    complaint = session.get(Complaint, complaint_id)
    assert complaint is not None
    return complaint.routing_status


def test_rule1_known_operator_goes_to_its_registered_jurisdiction(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    # The geotag is 60 m from the market's registered location.
    case = file_and_route(
        client,
        session,
        headers["filer"],
        operator_id=bureaus.market.id,
        location=location(MARKET_AT[0] + 0.0006, MARKET_AT[1], accuracy_m=15),
    )
    complaint = complaint_of(session, case)
    assert (case.jurisdiction_code, complaint.routing_rule) == (COUNTY_A, 1)
    assert complaint.routing_reason_code == "operator_jurisdiction"
    assert complaint.location_mismatch is False
    assert complaint.operator_distance_m is not None and 50 < complaint.operator_distance_m < 70
    assert complaint.routing_status == RoutingStatus.routed and not case.triage


def test_rule1_far_geotag_is_flagged_but_the_operator_still_wins(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    # A geotag in 上城区, kilometres from the market: routed by the operator, flagged for staff.
    case = file_and_route(
        client, session, headers["filer"], operator_id=bureaus.market.id, location=location(120.17, 30.25)
    )
    complaint = complaint_of(session, case)
    assert case.jurisdiction_code == COUNTY_A and complaint.routing_rule == 1
    assert complaint.location_mismatch is True
    assert complaint.operator_distance_m is not None and complaint.operator_distance_m > 500
    assert complaint.routing_reason_code == "location_mismatch"
    assert "超过500米" in (complaint.routing_reason_zh or "")
    staff_view = client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).json()
    assert staff_view["location_mismatch"] is True and staff_view["routing"]["rule"] == 1


def test_rule1_threshold_is_the_setting(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "routing_mismatch_m", 30.0)
    case = file_and_route(
        client,
        session,
        headers["filer"],
        operator_id=bureaus.market.id,
        location=location(MARKET_AT[0] + 0.0006, MARKET_AT[1]),
    )
    assert complaint_of(session, case).location_mismatch is True


def test_rule2_point_inside_a_county(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(*XIHU, accuracy_m=20))
    complaint = complaint_of(session, case)
    assert (case.jurisdiction_code, complaint.routing_rule, complaint.routing_reason_code) == (
        COUNTY_A,
        2,
        "in_county",
    )
    assert complaint.routing_low_confidence is False and complaint.location_mismatch is None
    assert case.state == CaseState.routed and complaint.status == ComplaintStatus.routed


def test_rule3_shared_border_takes_the_lowest_code_and_records_the_others(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(*TRIPLE_POINT))
    complaint = complaint_of(session, case)
    assert (case.jurisdiction_code, complaint.routing_rule) == ("330105", 3)
    assert complaint.routing_reason_code == "shared_border_lowest_code"
    assert [c["code"] for c in complaint.routing_candidates or []] == ["330105", "330106", "330110"]
    assert complaint.routing_low_confidence is True


def test_rule4_point_off_the_coast_goes_to_the_nearest_county(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(*OFF_QINGDAO))
    complaint = complaint_of(session, case)
    assert (case.jurisdiction_code, complaint.routing_rule) == ("370202", 4)
    nearest = (complaint.routing_candidates or [])[0]
    assert nearest["code"] == "370202" and 4_000 < nearest["distance_m"] < 6_000
    assert complaint.routing_low_confidence is True and not case.triage


def test_rule5_unroutable_goes_to_the_province_triage_queue(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(*OFF_ZHOUSHAN))
    complaint = complaint_of(session, case)
    assert (case.jurisdiction_code, complaint.routing_rule) == (PROVINCE_A, 5)
    assert complaint.routing_reason_code == "unroutable_province_guess"
    assert case.triage and complaint.routing_status == RoutingStatus.needs_review
    # The province's staff work the queue; the county's do not see it.
    assert client.get(f"/api/v1/cases/{case.id}", headers=headers["province"]).status_code == 200
    assert client.get(f"/api/v1/cases/{case.id}", headers=headers["county_a"]).status_code == 404
    listed = client.get("/api/v1/cases", params={"triage": True}, headers=headers["province"]).json()
    assert [c["id"] for c in listed["items"]] == [case.id]


def test_rule5_far_offshore_goes_to_the_national_queue(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(*OFFSHORE))
    complaint = complaint_of(session, case)
    assert (case.jurisdiction_code, complaint.routing_rule, complaint.routing_reason_code) == (
        None,
        5,
        "unroutable",
    )
    assert case.triage and complaint.routing_status == RoutingStatus.needs_review
    assert client.get(f"/api/v1/cases/{case.id}", headers=headers["admin"]).status_code == 200
    assert client.get(f"/api/v1/cases/{case.id}", headers=headers["province"]).status_code == 404
    # Nobody is bound to the national queue, so nobody is sent a case.assigned notice.
    assert outbox(session, "case.assigned") == []


def test_rule6_accuracy_circle_across_counties_takes_the_largest_overlap(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(*XIHU, accuracy_m=8_000))
    complaint = complaint_of(session, case)
    assert (case.jurisdiction_code, complaint.routing_rule) == (COUNTY_A, 6)
    assert complaint.routing_reason_code == "accuracy_circle_largest_overlap"
    candidates = complaint.routing_candidates or []
    assert candidates[0]["code"] == COUNTY_A and COUNTY_B in {c["code"] for c in candidates}
    shares = [c["overlap_share"] for c in candidates]
    assert shares == sorted(shares, reverse=True) and complaint.routing_low_confidence is True


def test_gcj02_geotag_is_converted_before_locating(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    wgs = (120.1556, 30.2533)  # in 西湖区, a few hundred metres from 上城区
    gcj = from_wgs84(*wgs, "gcj02")
    # Taken as WGS-84, the map SDK's figures would land in the wrong county: the test means something.
    assert locator.locate(*gcj).code == COUNTY_B and locator.locate(*wgs).code == COUNTY_A
    case = file_and_route(client, session, headers["filer"], location=location(*gcj, system="gcj02"))
    assert case.jurisdiction_code == COUNTY_A and complaint_of(session, case).routing_rule == 2


def test_routing_is_idempotent(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    complaint_id = file_complaint(client, headers["filer"])
    first = route(session, complaint_id)
    again = route(session, complaint_id)
    assert first.id == again.id
    routed_steps = session.execute(
        select(CaseEvent).where(col(CaseEvent.case_id) == first.id, col(CaseEvent.action) == "routed")
    ).all()
    timeline = session.execute(
        select(ComplaintEvent).where(
            col(ComplaintEvent.complaint_id) == complaint_id,
            col(ComplaintEvent.status) == ComplaintStatus.routed,
        )
    ).all()
    audits = session.execute(
        select(AuditEntry).where(
            col(AuditEntry.action) == "case.route", col(AuditEntry.entity_id) == str(first.id)
        )
    ).all()
    assert (len(routed_steps), len(timeline), len(audits), len(outbox(session, "case.assigned"))) == (
        1,
        1,
        1,
        1,
    )


def test_assignment_tells_the_county_staff_in_the_handlers_contract(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"])
    [event] = outbox(session, "case.assigned")
    assert event.payload == {
        "case_id": case.id,
        "case_no": case.case_no,
        "jurisdiction_code": COUNTY_A,
        "due_on": case.due_on.isoformat() if case.due_on else None,
    }
    assert event.dedupe_key == f"case.assigned:{case.id}:routed"
    [notice] = notification_handlers.notices_for(session, event)
    assert notice.kind == "case_assigned" and notice.recipients == (bureaus.county_a.id,)


def test_filer_sees_where_it_went_and_staff_see_why(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"])
    mine = client.get(f"/api/v1/complaints/{case.complaint_id}", headers=headers["filer"]).json()
    assert mine["status"] == "routed"
    assert mine["routing"] == {"status": "routed", "jurisdiction_code": COUNTY_A}
    assert mine["timeline"][-1]["note"] == "已转交西湖区市场监督管理局办理"
    staff = client.get(
        f"/api/v1/staff/complaints/{case.complaint_id}", headers=headers["county_a"], params={"lang": "en"}
    ).json()
    assert staff["routing"]["rule"] == 2 and staff["routing"]["reason_code"] == "in_county"
    assert staff["routing"]["reason"].startswith("The point lies inside") and staff["routing"]["routed_at"]


def test_case_number_and_kind_follow_the_filer(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"])
    assert (
        case.kind == "complaint"
        and case.case_no.startswith("TS")
        and case.case_no.endswith(f"{case.complaint_id:08d}")
    )


# ---- address-only reports -----------------------------------------------------------------------------------


def test_address_only_without_a_geocoder_goes_to_triage(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "geocoder_url", None)
    case = file_and_route(client, session, headers["filer"], location=None, address="杭州市西湖区文三路菜场")
    complaint = complaint_of(session, case)
    assert complaint.address == "杭州市西湖区文三路菜场"
    assert (case.jurisdiction_code, complaint.routing_reason_code) == (None, "address_only_no_geocoder")
    assert case.triage and complaint.routing_status == RoutingStatus.needs_review


class _Nominatim(BaseHTTPRequestHandler):
    """A stand-in Nominatim that knows one address (by the West Lake)."""

    def do_GET(self) -> None:
        found = "%E8%A5%BF%E6%B9%96" in self.path  # 西湖
        body = [{"lat": str(XIHU[1]), "lon": str(XIHU[0]), "display_name": "西湖, 杭州市", "place_id": 1}]
        payload = json.dumps(body if found else []).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def nominatim(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Nominatim)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(get_settings(), "geocoder_url", url)
    yield url
    server.shutdown()


def test_address_only_is_geocoded_when_a_geocoder_is_configured(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, nominatim: str
) -> None:
    case = file_and_route(client, session, headers["filer"], location=None, address="杭州西湖边的菜场")
    complaint = complaint_of(session, case)
    assert (case.jurisdiction_code, complaint.routing_rule) == (COUNTY_A, 2)
    assert (complaint.routing_reason_zh or "").startswith("按地址解析定位")
    assert complaint.lon is None  # the geocoded point is not passed off as the filer's geotag


def test_address_the_geocoder_cannot_find_goes_to_triage(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, nominatim: str
) -> None:
    case = file_and_route(client, session, headers["filer"], location=None, address="不存在的地方")
    assert case.triage and complaint_of(session, case).routing_reason_code == "address_not_found"


def test_geocoder_outage_retries_then_triages_on_the_last_attempt(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "geocoder_url", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(get_settings(), "geocoder_timeout_s", 0.5)
    complaint_id = file_complaint(client, headers["filer"], location=None, address="杭州西湖")
    with pytest.raises(GeocoderRetry):
        route(session, complaint_id)
    assert complaint_of_id(session, complaint_id) == RoutingStatus.pending
    case = route(session, complaint_id, final_attempt=True)
    assert case.triage and complaint_of(session, case).routing_reason_code == "geocoder_unavailable"


def test_route_audits_the_decision(
    client: TestClient, session: Session, bureaus: Bureaus, headers: Headers
) -> None:
    case = file_and_route(client, session, headers["filer"], location=location(*TRIPLE_POINT))
    entry = session.execute(
        select(AuditEntry).where(
            col(AuditEntry.action) == "case.route", col(AuditEntry.entity_id) == str(case.id)
        )
    ).scalar_one()
    assert entry.actor_role == "system"
    assert entry.after is not None and entry.after["routing"]["rule"] == 3
    assert entry.after["routing"]["candidates"][1]["code"] == "330106"
