"""Reading complaints: the filer's view and timeline, the own list, staff reads (audited), photos, similar counts."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Account, Role
from backend.complaints.models import Complaint, ComplaintPhoto, ComplaintStatus, RoutingStatus
from backend.complaints.photos import process_photo
from backend.complaints.service import add_event
from backend.db import utcnow
from backend.media.processing import is_metadata_free_jpeg
from geo import CoordSystem, from_wgs84
from tests.backend.complaints.conftest import Market
from tests.factories import (
    COUNTY_A,
    COUNTY_B,
    complaint_json,
    login,
    make_account,
    post_complaint,
)
from tests.fixtures.media_images import jpeg, make_exif, photo_like


def _file(
    client: TestClient, headers: dict[str, str], photos: list[bytes] | None = None, **overrides: object
) -> int:
    resp = post_complaint(client, headers, complaint_json(**overrides), photos or [])
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _route(session: Session, complaint_id: int, code: str = COUNTY_A) -> Complaint:
    complaint = session.get(Complaint, complaint_id)
    assert complaint is not None
    complaint.jurisdiction_code, complaint.routing_status = code, RoutingStatus.routed
    session.add(complaint)
    session.commit()
    return complaint


def _process_all(session: Session, complaint_id: int) -> list[ComplaintPhoto]:
    photos = session.exec(select(ComplaintPhoto).where(ComplaintPhoto.complaint_id == complaint_id)).all()
    for photo in photos:
        process_photo(photo.id or 0, unit_of_work=lambda: nullcontext(session))
    session.commit()
    return list(photos)


def test_filer_sees_the_complaint_with_its_timeline(
    client: TestClient, session: Session, device_headers: dict[str, str], market: Market
) -> None:
    complaint_id = _file(
        client, device_headers, stall_id=market.stall.id, contact={"name": "李", "phone": "13900001111"}
    )
    complaint = session.get(Complaint, complaint_id)
    assert complaint is not None
    add_event(
        session, complaint, ComplaintStatus.routed, "已分派至西湖区市场监管局", "Routed to the Xihu bureau"
    )
    session.commit()
    body = client.get(f"/api/v1/complaints/{complaint_id}", headers=device_headers).json()
    assert body["subject"]["operator_name"] == "西溪农贸市场" and body["subject"]["stall_number"] == "A12"
    assert body["contact"] == {"name": "李", "phone": "13900001111"}
    assert [(e["status"], e["note"]) for e in body["timeline"]] == [
        ("received", "投诉已收到，正在转交属地市场监管部门"),
        ("routed", "已分派至西湖区市场监管局"),
    ]
    english = client.get(f"/api/v1/complaints/{complaint_id}?lang=en", headers=device_headers).json()
    assert english["timeline"][1]["note"] == "Routed to the Xihu bureau"
    assert all(e["at"].endswith("Z") for e in body["timeline"])


def test_others_get_404(
    client: TestClient, session: Session, device_headers: dict[str, str], market: Market
) -> None:
    complaint_id = _file(client, device_headers)
    stranger = make_account(session, Role.consumer_device)
    assert (
        client.get(f"/api/v1/complaints/{complaint_id}", headers=login(client, stranger)).status_code == 404
    )
    # Staff use the staff endpoint; the filer's endpoint knows only the filer.
    assert (
        client.get(f"/api/v1/complaints/{complaint_id}", headers=login(client, market.staff)).status_code
        == 404
    )
    assert client.get("/api/v1/complaints/999999", headers=device_headers).status_code == 404


def test_my_complaints_are_paged_newest_first(
    client: TestClient, session: Session, device_headers: dict[str, str], market: Market, photo_bytes: bytes
) -> None:
    ids = [_file(client, device_headers, [photo_bytes], operator_id=market.market.id) for _ in range(3)]
    other = make_account(session, Role.consumer_device)
    _file(client, login(client, other))
    page = client.get("/api/v1/me/complaints?limit=2", headers=device_headers).json()
    assert page["total"] == 3 and [i["id"] for i in page["items"]] == ids[::-1][:2]
    assert page["items"][0]["operator_name"] == "西溪农贸市场" and page["items"][0]["photo_count"] == 1
    rest = client.get("/api/v1/me/complaints?limit=2&offset=2", headers=device_headers).json()
    assert [i["id"] for i in rest["items"]] == [ids[0]]


def test_staff_read_is_scoped_and_audited(
    client: TestClient, session: Session, device: Account, device_headers: dict[str, str], market: Market
) -> None:
    complaint_id = _file(client, device_headers, contact={"name": "李", "phone": "13900001111"})
    staff_headers = login(client, market.staff)
    admin = make_account(session, Role.admin)
    neighbour = make_account(session, Role.staff, COUNTY_B)
    session.commit()
    # Before routing only admins may read it.
    assert client.get(f"/api/v1/staff/complaints/{complaint_id}", headers=staff_headers).status_code == 404
    assert (
        client.get(f"/api/v1/staff/complaints/{complaint_id}", headers=login(client, admin)).status_code
        == 200
    )
    _route(session, complaint_id)
    resp = client.get(f"/api/v1/staff/complaints/{complaint_id}", headers=staff_headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["filer"]["account_id"] == device.id and body["filer"]["role"] == "consumer_device"
    assert body["contact"]["phone"] == "13900001111" and body["location"]["original_lon"] == 120.1052
    reads = session.exec(
        select(AuditEntry)
        .where(AuditEntry.action == "complaint.read", AuditEntry.entity_id == str(complaint_id))
        .order_by(col(AuditEntry.seq))
    ).all()
    assert [r.actor_id for r in reads] == [admin.id, market.staff.id]
    neighbour = make_account(session, Role.staff, COUNTY_B)
    assert (
        client.get(f"/api/v1/staff/complaints/{complaint_id}", headers=login(client, neighbour)).status_code
        == 404
    )
    assert client.get(f"/api/v1/staff/complaints/{complaint_id}", headers=device_headers).status_code == 403


def test_photos_flow_to_filer_and_staff_originals_to_staff_only(
    client: TestClient, session: Session, device_headers: dict[str, str], market: Market
) -> None:
    original = jpeg(photo_like(900, 600, seed=5), exif=make_exif(latitude=30.28, longitude=120.1))
    complaint_id = _file(client, device_headers, [original], photo_kinds=["receipt"])
    [photo] = session.exec(select(ComplaintPhoto).where(ComplaintPhoto.complaint_id == complaint_id)).all()
    base = f"/api/v1/complaints/{complaint_id}/photos/{photo.id}"
    not_ready = client.get(f"{base}/display", headers=device_headers)
    assert not_ready.status_code == 409 and not_ready.json()["error"]["code"] == "photo_not_ready"
    _process_all(session, complaint_id)
    for rendition in ("display", "thumbnail"):
        resp = client.get(f"{base}/{rendition}", headers=device_headers)
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
        assert is_metadata_free_jpeg(resp.content)
    filer_view = client.get(f"/api/v1/complaints/{complaint_id}", headers=device_headers).json()
    assert filer_view["photos"][0]["display_url"] == f"{base}/display"
    assert "evidence" not in filer_view["photos"][0] and "original_url" not in filer_view["photos"][0]
    stranger = make_account(session, Role.consumer_device)
    assert client.get(f"{base}/display", headers=login(client, stranger)).status_code == 404
    original_url = f"/api/v1/staff/complaints/{complaint_id}/photos/{photo.id}/original"
    assert client.get(original_url, headers=device_headers).status_code == 403
    staff_headers = login(client, market.staff)
    assert client.get(original_url, headers=staff_headers).status_code == 404  # not routed yet
    _route(session, complaint_id)
    assert client.get(f"{base}/thumbnail", headers=staff_headers).status_code == 200
    resp = client.get(original_url, headers=staff_headers)
    assert resp.status_code == 200 and resp.content == original
    assert "attachment" in resp.headers["content-disposition"]
    staff_view = client.get(f"/api/v1/staff/complaints/{complaint_id}", headers=staff_headers).json()
    evidence = staff_view["photos"][0]["evidence"]
    assert evidence["gps"]["latitude"] == pytest.approx(30.28, abs=1e-4) and evidence["make"] == "Xiaomi"
    assert staff_view["photos"][0]["original_sha256"] == photo.original_sha256
    # Every staff view of the photo is audited (Art. 20), the thumbnail as much as the original; the filer's
    # own views are not.
    audited = session.exec(
        select(AuditEntry).where(AuditEntry.action == "complaint_photo.read").order_by(col(AuditEntry.seq))
    ).all()
    assert [(a.entity_id, a.actor_id, (a.after or {})["rendition"]) for a in audited] == [
        (str(photo.id), market.staff.id, "thumbnail"),
        (str(photo.id), market.staff.id, "original"),
    ]


def test_rejected_photo_says_why(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    from backend.media.factory import media_storage

    complaint_id = _file(client, device_headers, [photo_bytes])
    [photo] = session.exec(select(ComplaintPhoto).where(ComplaintPhoto.complaint_id == complaint_id)).all()
    photo.original_key = "complaint-originals/missing/file.jpeg"
    session.add(photo)
    session.commit()
    assert not media_storage().exists(photo.original_key)
    _process_all(session, complaint_id)
    body = client.get(f"/api/v1/complaints/{complaint_id}?lang=en", headers=device_headers).json()
    assert body["status"] == "received"  # the complaint stands
    assert (
        body["photos"][0]["status"] == "rejected" and body["photos"][0]["reject_reason"] == "original_missing"
    )
    assert "kept" in body["photos"][0]["reject_message"]
    resp = client.get(f"/api/v1/complaints/{complaint_id}/photos/{photo.id}/display", headers=device_headers)
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "photo_rejected"


# ---- similar ---------------------------------------------------------------------------------------------


def _offset(lon: float, lat: float, metres_north: float) -> tuple[float, float]:
    return lon, lat + metres_north / 111_195.0


def test_similar_counts_by_operator(
    client: TestClient, session: Session, device_headers: dict[str, str], market: Market
) -> None:
    others = [login(client, make_account(session, Role.consumer_device)) for _ in range(3)]
    _file(client, others[0], operator_id=market.market.id)
    _file(client, others[1], stall_id=market.stall.id)
    _file(client, others[2], operator_id=market.market.id, category="instrument_cheating")
    mine = _file(client, device_headers, operator_id=market.market.id)
    old = _file(client, others[0], operator_id=market.market.id)
    complaint = session.get(Complaint, old)
    assert complaint is not None
    complaint.created_at = utcnow() - timedelta(days=8)
    session.add(complaint)
    session.commit()
    url = f"/api/v1/complaints/similar?operator_id={market.market.id}"
    assert client.get(url, headers=device_headers).json() == {
        "basis": "operator",
        "category": None,
        "days": 7,
        "radius_m": None,
        "count": 3,
    }
    assert client.get(f"{url}&category=short_weight", headers=device_headers).json()["count"] == 2
    assert mine  # the caller's own complaint is not "others"


def test_similar_counts_within_250_m(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    centre = (120.1052, 30.2795)
    for metres in (0, 120, 240, 260, 1000):
        lon, lat = _offset(*centre, metres)
        other = login(client, make_account(session, Role.consumer_device))
        _file(client, other, location={"lon": lon, "lat": lat, "coord_system": "wgs84"})
    resp = client.get(f"/api/v1/complaints/similar?lon={centre[0]}&lat={centre[1]}", headers=device_headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"basis": "area", "category": None, "days": 7, "radius_m": 250, "count": 3}
    gcj = from_wgs84(*centre, CoordSystem.GCJ02)
    in_gcj = client.get(
        f"/api/v1/complaints/similar?lon={gcj[0]}&lat={gcj[1]}&coord_system=gcj02&category=short_weight",
        headers=device_headers,
    )
    assert in_gcj.json()["count"] == 3


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "similar_basis_required"),
        ("lon=120.1", "similar_basis_required"),
        ("lon=120.1&lat=95", "invalid_coordinates"),
        ("lon=nan&lat=30", "invalid_coordinates"),
        ("lon=120.1&lat=30&coord_system=mercator", "invalid_coord_system"),
        ("operator_id=1&category=bogus", "validation_error"),
    ],
)
def test_similar_bad_queries(
    client: TestClient, device_headers: dict[str, str], query: str, code: str
) -> None:
    resp = client.get(f"/api/v1/complaints/similar?{query}", headers=device_headers)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == code


def test_similar_needs_sign_in(client: TestClient) -> None:
    assert client.get("/api/v1/complaints/similar?operator_id=1").status_code == 401
