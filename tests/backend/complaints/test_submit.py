"""POST /api/v1/complaints: the contract, subjects, geotags, weighing, supervisors, and every bad input."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from backend.auth.models import Account, Role
from backend.complaints.models import (
    Complaint,
    ComplaintEvent,
    ComplaintPhoto,
    ComplaintSource,
    IdempotencyKey,
    PhotoStatus,
)
from backend.config import get_settings
from backend.dates import bureau_date
from backend.media.storage import LocalMediaStorage
from backend.outbox.models import OutboxEvent
from backend.qr import service as qr_service
from geo import CoordSystem, from_wgs84
from tests.backend.complaints.conftest import Market
from tests.factories import complaint_json, login, make_account, post_complaint
from tests.fixtures.media_images import (
    HTML,
    SVG,
    encode,
    jpeg,
    jpeg_with_declared_size,
    make_exif,
    photo_like,
    png_bomb,
    zip_archive,
)

_TABLES = (Complaint, ComplaintPhoto, ComplaintEvent, IdempotencyKey, OutboxEvent)


def _counts(session: Session) -> dict[str, int]:
    counts = {m.__name__: session.exec(select(func.count()).select_from(m)).one() for m in _TABLES}
    media = get_settings().media_dir
    counts["files"] = sum(1 for p in Path(media).rglob("*") if p.is_file()) if media.exists() else 0
    return counts


def test_contract_201_with_photos(
    client: TestClient, session: Session, device: Account, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    resp = post_complaint(
        client,
        device_headers,
        complaint_json(photo_kinds=["receipt", "scale_display"]),
        [photo_bytes, jpeg(photo_like(320, 240, seed=9))],
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"id", "case_no", "status", "created_at", "photos", "routing"}
    assert body["status"] == "received" and body["created_at"].endswith("Z")
    # The number to quote: the one its case will carry and the receipt notice names (TS, year, padded id).
    assert (
        body["case_no"] == f"TS{bureau_date(datetime.fromisoformat(body['created_at'])).year}{body['id']:08d}"
    )
    assert [(p["kind"], p["status"]) for p in body["photos"]] == [
        ("receipt", "pending"),
        ("scale_display", "pending"),
    ]
    assert body["routing"] == {"status": "pending", "jurisdiction_code": None}
    complaint = session.get(Complaint, body["id"])
    assert (
        complaint is not None
        and complaint.account_id == device.id
        and complaint.source == ComplaintSource.consumer
    )
    photos = session.exec(select(ComplaintPhoto).where(ComplaintPhoto.complaint_id == complaint.id)).all()
    storage = LocalMediaStorage(get_settings().media_dir)
    assert storage.get(photos[0].original_key) == photo_bytes  # the original, byte for byte, before commit
    # The original keeps its GPS: neither it nor its folders are readable by other users of the machine.
    original = storage.root.joinpath(*photos[0].original_key.split("/"))
    assert stat.S_IMODE(original.stat().st_mode) in (0o600, 0o640)
    assert stat.S_IMODE(original.parent.stat().st_mode) in (0o700, 0o750)
    event = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "complaint.created")).one()
    assert event.payload == {"complaint_id": complaint.id, "photo_ids": [p.id for p in photos]}
    timeline = session.exec(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id)).all()
    assert [e.status for e in timeline] == ["received"]


def test_photo_kinds_default_to_other(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    resp = post_complaint(client, device_headers, complaint_json(), [photo_bytes])
    assert resp.status_code == 201
    assert resp.json()["photos"][0]["kind"] == "other"


def test_no_photos_is_fine(client: TestClient, device_headers: dict[str, str]) -> None:
    resp = post_complaint(client, device_headers, complaint_json())
    assert resp.status_code == 201 and resp.json()["photos"] == []


def test_json_part_may_be_a_file_part(client: TestClient, device_headers: dict[str, str]) -> None:
    part = json.dumps(complaint_json()).encode()
    resp = client.post(
        "/api/v1/complaint-form",
        files=[("complaint", ("complaint.json", part, "application/json"))],
        headers={**device_headers, "Idempotency-Key": "file-part"},
    )
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("system", [CoordSystem.GCJ02, CoordSystem.BD09])
def test_geotag_is_stored_as_sent_and_in_wgs84(
    client: TestClient, session: Session, device_headers: dict[str, str], system: CoordSystem
) -> None:
    wgs = (120.1052, 30.2795)
    sent = from_wgs84(*wgs, system)
    location = {"lon": sent[0], "lat": sent[1], "accuracy_m": 8, "coord_system": system.value}
    resp = post_complaint(client, device_headers, complaint_json(location=location))
    assert resp.status_code == 201, resp.text
    complaint = session.get(Complaint, resp.json()["id"])
    assert complaint is not None and complaint.coord_system == system
    assert (complaint.original_lon, complaint.original_lat) == sent
    assert complaint.lon == pytest.approx(wgs[0], abs=1e-6) and complaint.lat == pytest.approx(
        wgs[1], abs=1e-6
    )


def test_captured_at_keeps_its_instant(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    resp = post_complaint(client, device_headers, complaint_json())
    read = client.get(f"/api/v1/complaints/{resp.json()['id']}", headers=device_headers).json()
    assert read["location"]["captured_at"] == "2026-05-01T02:20:30Z"  # 10:20:30+08:00


def test_qr_token_resolves_stall_and_market(
    client: TestClient, session: Session, device_headers: dict[str, str], market: Market
) -> None:
    token = qr_service.code_of(market.stall).token
    resp = post_complaint(client, device_headers, complaint_json(qr_token=token, location=None))
    assert resp.status_code == 201, resp.text
    complaint = session.get(Complaint, resp.json()["id"])
    assert complaint is not None and complaint.via_qr
    assert (complaint.operator_id, complaint.stall_id) == (market.market.id, market.stall.id)


def test_instrument_id_implies_its_stall_and_operator(
    client: TestClient, session: Session, device_headers: dict[str, str], market: Market
) -> None:
    resp = post_complaint(client, device_headers, complaint_json(instrument_id=market.scale.id))
    complaint = session.get(Complaint, resp.json()["id"])
    assert complaint is not None
    assert (complaint.operator_id, complaint.stall_id, complaint.instrument_id) == (
        market.market.id,
        market.stall.id,
        market.scale.id,
    )


def test_weighing_check_is_stored(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    weighing = {"declared_g": 1000, "measured_g": "940.5", "goods_class": "meat_and_processed"}
    resp = post_complaint(client, device_headers, complaint_json(weighing=weighing))
    assert resp.status_code == 201, resp.text
    complaint = session.get(Complaint, resp.json()["id"])
    assert complaint is not None and complaint.short_weight is True
    assert complaint.weighing_result is not None
    assert (
        complaint.weighing_result["shortfall_g"] == "59.5" and complaint.weighing_result["permitted_g"] == "5"
    )
    assert "附表1 第二类" in complaint.weighing_result["table_ref"]
    read = client.get(f"/api/v1/complaints/{complaint.id}?lang=en", headers=device_headers).json()["weighing"]
    assert (
        read["declared_g"] == "1000" and read["measured_g"] == "940.5" and read["within_tolerance"] is False
    )
    assert "short weight" in read["explanation"]


def test_weighing_within_tolerance_and_outside_the_tables(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    ok = post_complaint(
        client, device_headers, complaint_json(weighing={"declared_g": 500, "measured_g": 490})
    )
    assert session.get(Complaint, ok.json()["id"]).short_weight is False  # type: ignore[union-attr]
    big = post_complaint(
        client, device_headers, complaint_json(weighing={"declared_g": 30000, "measured_g": 29000})
    )
    assert big.status_code == 201
    complaint = session.get(Complaint, big.json()["id"])
    assert complaint is not None and complaint.short_weight is None
    assert complaint.weighing_result is not None and complaint.weighing_result["checked"] is False


def test_contact_is_kept_for_staff(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    resp = post_complaint(
        client, device_headers, complaint_json(contact={"name": "李女士", "phone": "13900001111"})
    )
    complaint = session.get(Complaint, resp.json()["id"])
    assert complaint is not None and (complaint.contact_name, complaint.contact_phone) == (
        "李女士",
        "13900001111",
    )


def test_supervisor_patrol_report(
    client: TestClient, session: Session, market: Market, photo_bytes: bytes
) -> None:
    supervisor = make_account(session, Role.supervisor, market.market.jurisdiction_code)
    headers = login(client, supervisor)
    body = complaint_json(
        category="unverified_instrument",
        finding="instrument_without_valid_mark",
        operator_id=market.market.id,
        photo_kinds=["scale_display"],
    )
    resp = post_complaint(client, headers, body, [photo_bytes])
    assert resp.status_code == 201, resp.text
    complaint = session.get(Complaint, resp.json()["id"])
    assert complaint is not None and complaint.source == ComplaintSource.supervisor
    assert complaint.finding == "instrument_without_valid_mark" and complaint.filer_role == Role.supervisor
    # A patrol report becomes a 举报 (tip-off) case: JB, not TS.
    assert resp.json()["case_no"].startswith("JB") and resp.json()["case_no"].endswith(f"{complaint.id:08d}")


def test_supervisor_needs_finding_and_operator(client: TestClient, session: Session, market: Market) -> None:
    headers = login(client, make_account(session, Role.supervisor, market.market.jurisdiction_code))
    no_finding = post_complaint(client, headers, complaint_json(operator_id=market.market.id))
    assert no_finding.json()["error"]["code"] == "finding_required"
    no_operator = post_complaint(client, headers, complaint_json(finding="suspected_cheating"))
    assert no_operator.json()["error"]["code"] == "subject_required"


def test_consumer_may_not_give_a_finding(client: TestClient, device_headers: dict[str, str]) -> None:
    resp = post_complaint(client, device_headers, complaint_json(finding="suspected_cheating"))
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "finding_not_allowed"


@pytest.mark.parametrize("role", [Role.operator, Role.staff, Role.department])
def test_other_roles_may_not_file(client: TestClient, session: Session, market: Market, role: Role) -> None:
    account = make_account(
        session,
        role,
        market.market.jurisdiction_code if role != Role.operator else None,
        operator_id=market.market.id if role == Role.operator else None,
    )
    resp = post_complaint(client, login(client, account), complaint_json())
    assert resp.status_code == 403


def test_unauthenticated_is_401(client: TestClient) -> None:
    assert post_complaint(client, {}, complaint_json()).status_code == 401


def test_registered_consumer_may_file(client: TestClient, session: Session) -> None:
    consumer = make_account(session, Role.consumer)
    assert post_complaint(client, login(client, consumer), complaint_json()).status_code == 201


# ---- bad input: a precise 4xx, never a 500, and nothing half-stored ----------------------------------------


def _truncated(photo: bytes) -> bytes:
    return photo[: len(photo) // 2]


BadCase = Callable[[Market, bytes], tuple[dict[str, Any] | str, list[bytes]]]

BAD_INPUT: dict[str, tuple[BadCase, int, str, str | None]] = {
    "truncated jpeg": (lambda m, p: (complaint_json(), [_truncated(p)]), 422, "media_rejected", "truncated"),
    "html before jpeg bytes": (
        lambda m, p: (complaint_json(), [HTML + p]),
        415,
        "unsupported_media_type",
        None,
    ),
    "jpeg header then garbage": (
        lambda m, p: (complaint_json(), [p[:200] + b"\x00" * 5000]),
        422,
        "media_rejected",
        None,
    ),
    "png bomb": (
        lambda m, p: (complaint_json(), [png_bomb(100_000, 100_000)]),
        422,
        "media_rejected",
        "decompression_bomb",
    ),
    "jpeg declaring 65000x65000": (
        lambda m, p: (complaint_json(), [jpeg_with_declared_size(p, 65_000, 65_000)]),
        422,
        "media_rejected",
        "decompression_bomb",
    ),
    "svg named .jpg": (
        lambda m, p: (complaint_json(), [SVG]),
        415,
        "unsupported_media_type",
        "unsupported_format",
    ),
    "html named .jpg": (
        lambda m, p: (complaint_json(), [HTML]),
        415,
        "unsupported_media_type",
        "unsupported_format",
    ),
    "zip named .jpg": (lambda m, p: (complaint_json(), [zip_archive()]), 415, "unsupported_media_type", None),
    "gif": (
        lambda m, p: (complaint_json(), [encode(photo_like(32, 32), "GIF")]),
        415,
        "unsupported_media_type",
        None,
    ),
    "zero bytes": (lambda m, p: (complaint_json(), [b""]), 415, "unsupported_media_type", "empty"),
    "seven photos": (lambda m, p: (complaint_json(), [p] * 7), 422, "too_many_photos", None),
    "twelve photos": (lambda m, p: (complaint_json(), [p] * 12), 422, "too_many_photos", None),
    "10 MB description": (
        lambda m, p: (complaint_json(description="短" * 3_500_000), [p]),
        413,
        "complaint_too_large",
        None,
    ),
    "10 MB description, no photos (the body limit)": (
        lambda m, p: (complaint_json(description="短" * 3_500_000), []),
        413,
        "payload_too_large",
        None,
    ),
    "2001-character description": (
        lambda m, p: (complaint_json(description="短" * 2001), []),
        422,
        "validation_error",
        None,
    ),
    "NaN longitude": (
        lambda m, p: (json.dumps(complaint_json()).replace("120.1052", "NaN"), []),
        422,
        "invalid_coordinates",
        None,
    ),
    "Infinity latitude": (
        lambda m, p: (json.dumps(complaint_json()).replace("30.2795", "Infinity"), []),
        422,
        "invalid_coordinates",
        None,
    ),
    "latitude 91": (
        lambda m, p: (complaint_json(location={"lon": 120, "lat": 91, "coord_system": "wgs84"}), []),
        422,
        "invalid_coordinates",
        None,
    ),
    "longitude -181": (
        lambda m, p: (complaint_json(location={"lon": -181, "lat": 30, "coord_system": "wgs84"}), []),
        422,
        "invalid_coordinates",
        None,
    ),
    "unknown coordinate system": (
        lambda m, p: (complaint_json(location={"lon": 120, "lat": 30, "coord_system": "cgcs2000x"}), []),
        422,
        "invalid_coord_system",
        None,
    ),
    "coordinate system not a string": (
        lambda m, p: (complaint_json(location={"lon": 120, "lat": 30, "coord_system": 4326}), []),
        422,
        "invalid_coord_system",
        None,
    ),
    "NaN accuracy": (
        lambda m, p: (
            json.dumps(complaint_json()).replace('"accuracy_m": 12.5', '"accuracy_m": NaN'),
            [],
        ),
        422,
        "validation_error",
        None,
    ),
    "invalid QR token": (
        lambda m, p: (complaint_json(qr_token="not-a-real-token"), []),
        422,
        "forged_qr",
        None,
    ),
    "QR token signed with another key": (
        lambda m, p: (complaint_json(qr_token=_foreign_token(m)), []),
        422,
        "forged_qr",
        None,
    ),
    "unknown operator": (
        lambda m, p: (complaint_json(operator_id=999_999_999), []),
        422,
        "unknown_subject",
        None,
    ),
    "stall of another market": (
        lambda m, p: (complaint_json(operator_id=m.market.id + 1000, stall_id=m.stall.id), []),
        422,
        "inconsistent_subject",
        None,
    ),
    "nothing to route by": (
        lambda m, p: (complaint_json(location=None), []),
        422,
        "location_or_subject_required",
        None,
    ),
    "implausible weighing": (
        lambda m, p: (complaint_json(weighing={"declared_g": 1000, "measured_g": 50}), []),
        422,
        "invalid_weighing",
        None,
    ),
    "negative weighing": (
        lambda m, p: (complaint_json(weighing={"declared_g": -5, "measured_g": 50}), []),
        422,
        "validation_error",
        None,
    ),
    "unknown category": (
        lambda m, p: (complaint_json(category="rude_seller"), []),
        422,
        "validation_error",
        None,
    ),
    "unknown field": (lambda m, p: (complaint_json(password="x"), []), 422, "validation_error", None),
    "not JSON": (lambda m, p: ("{category: short_weight", []), 422, "invalid_json", None),
    "JSON array": (lambda m, p: ("[]", []), 422, "invalid_json", None),
    "photo_kinds for two, one photo": (
        lambda m, p: (complaint_json(photo_kinds=["receipt", "goods"]), [p]),
        422,
        "photo_kinds_mismatch",
        None,
    ),
    "unknown photo kind": (
        lambda m, p: (complaint_json(photo_kinds=["selfie"]), [p]),
        422,
        "validation_error",
        None,
    ),
}


def _foreign_token(market: Market) -> str:
    from backend.qr.tokens import QRKeyRing, SubjectKind

    ring = QRKeyRing.from_secret("another-secret-that-is-long-enough-to-derive-keys", active_kid=1)
    return ring.issue(SubjectKind.STALL, market.stall.id or 1, market.stall.qr_serial)


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_is_a_precise_4xx_and_stores_nothing(
    client: TestClient,
    session: Session,
    device_headers: dict[str, str],
    market: Market,
    photo_bytes: bytes,
    case: str,
) -> None:
    make, status, code, reason = BAD_INPUT[case]
    complaint, photos = make(market, photo_bytes)
    before = _counts(session)
    resp = post_complaint(client, device_headers, complaint, photos)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and error["message"]
    if reason is not None:
        assert error["details"]["reason"] == reason
    assert _counts(session) == before


def test_revoked_qr_token_is_refused(
    client: TestClient, session: Session, device_headers: dict[str, str], market: Market
) -> None:
    token = qr_service.code_of(market.stall).token
    market.stall.qr_serial += 1
    session.add(market.stall)
    session.flush()
    resp = post_complaint(client, device_headers, complaint_json(qr_token=token))
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "revoked_qr"


def test_messages_follow_the_locale(client: TestClient, device_headers: dict[str, str]) -> None:
    body = complaint_json(location={"lon": 120, "lat": 30, "coord_system": "utm"})
    zh = post_complaint(client, device_headers, body)
    en = post_complaint(client, {**device_headers, "Accept-Language": "en"}, body, key="en-1")
    assert "坐标系" in zh.json()["error"]["message"]
    assert zh.json()["error"]["code"] == en.json()["error"]["code"] == "invalid_coord_system"
    too_many = post_complaint(
        client, {**device_headers, "Accept-Language": "en"}, complaint_json(), [b"x"] * 7
    )
    assert too_many.json()["error"]["message"] == "at most 6 photos per complaint"


def test_photo_over_the_per_file_limit_is_413(
    client: TestClient,
    session: Session,
    device_headers: dict[str, str],
    photo_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "complaint_photo_max_bytes", len(photo_bytes) - 1)
    before = _counts(session)
    resp = post_complaint(client, device_headers, complaint_json(), [photo_bytes])
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "media_too_large" and resp.json()["error"]["details"]["photo"] == 0
    assert _counts(session) == before


def test_photos_over_the_per_request_limit_are_413(
    client: TestClient,
    session: Session,
    device_headers: dict[str, str],
    photo_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "complaint_request_max_bytes", int(len(photo_bytes) * 2.5))
    before = _counts(session)
    resp = post_complaint(client, device_headers, complaint_json(), [photo_bytes] * 3)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"
    assert _counts(session) == before


def test_body_over_the_upload_limit_is_413_from_the_middleware(
    client: TestClient, device_headers: dict[str, str]
) -> None:
    huge = b"\xff\xd8\xff\xe0" + b"\x00" * (get_settings().max_upload_bytes + 10)
    resp = post_complaint(client, device_headers, complaint_json(), [huge])
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("path", ["/api/v1/complaints", "/api/v1/complaint-form"])
def test_a_body_neither_multipart_nor_json_is_415(
    client: TestClient, device_headers: dict[str, str], path: str
) -> None:
    # JSON is the app's form (photos uploaded ahead, tests/backend/complaints/test_uploads.py); plain text is not.
    resp = client.post(
        path,
        content=json.dumps(complaint_json()).encode(),
        headers={**device_headers, "Idempotency-Key": "text-body", "Content-Type": "text/plain"},
    )
    assert resp.status_code == 415 and resp.json()["error"]["code"] == "unsupported_media_type"


def test_each_path_takes_one_media_type_and_names_the_other(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    # One media type per operation (generated clients type one body): the form and the app's JSON each have a path.
    multipart = client.post(
        "/api/v1/complaints",
        data={"complaint": json.dumps(complaint_json())},
        files=[("photos", ("a.jpg", photo_bytes, "image/jpeg"))],
        headers={**device_headers, "Idempotency-Key": "form-to-json-path"},
    )
    assert multipart.status_code == 415, multipart.text
    error = multipart.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert (
        error["details"]["form_path"] == "/api/v1/complaint-form"
        and "/api/v1/complaint-form" in error["message"]
    )
    as_json = client.post(
        "/api/v1/complaint-form",
        content=json.dumps(complaint_json()).encode(),
        headers={
            **device_headers,
            "Idempotency-Key": "json-to-form-path",
            "Content-Type": "application/json",
        },
    )
    assert (
        as_json.status_code == 415 and as_json.json()["error"]["details"]["json_path"] == "/api/v1/complaints"
    )
    assert session.exec(select(Complaint)).first() is None


def test_missing_complaint_part_and_stray_parts(
    client: TestClient, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    headers = {**device_headers, "Idempotency-Key": "parts"}
    only_photo = client.post(
        "/api/v1/complaint-form", files=[("photos", ("a.jpg", photo_bytes, "image/jpeg"))], headers=headers
    )
    assert only_photo.json()["error"]["code"] == "complaint_part_required"
    stray = client.post(
        "/api/v1/complaint-form",
        data={"complaint": json.dumps(complaint_json())},
        files=[("photo", ("a.jpg", photo_bytes, "image/jpeg"))],
        headers=headers,
    )
    assert stray.status_code == 422 and stray.json()["error"]["code"] == "unexpected_part"


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, "idempotency_key_required"),
        ("", "invalid_idempotency_key"),
        ("k" * 101, "invalid_idempotency_key"),
        ("   ", "invalid_idempotency_key"),
    ],
)
def test_idempotency_key_is_required_and_printable(
    client: TestClient, device_headers: dict[str, str], key: str | None, code: str
) -> None:
    headers = dict(device_headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    resp = client.post(
        "/api/v1/complaint-form", data={"complaint": json.dumps(complaint_json())}, headers=headers
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == code


def test_accepted_formats_by_their_bytes_not_their_names(
    client: TestClient, session: Session, device_headers: dict[str, str], picture: Any
) -> None:
    small = picture.resize((160, 120))
    photos = [
        encode(small, "PNG"),
        encode(small, "WEBP"),
        encode(small, "HEIF"),
        jpeg(small, exif=make_exif(latitude=30.2, longitude=120.1)),
    ]
    resp = post_complaint(
        client, device_headers, complaint_json(), photos, filename="whatever.txt", content_type="text/plain"
    )
    assert resp.status_code == 201, resp.text
    stored = session.exec(
        select(ComplaintPhoto)
        .where(ComplaintPhoto.complaint_id == resp.json()["id"])
        .order_by(col(ComplaintPhoto.position))
    ).all()
    assert [p.original_format for p in stored] == ["png", "webp", "heic", "jpeg"]
    assert all(p.status == PhotoStatus.pending for p in stored)


def test_photo_with_appended_archive_is_accepted_as_phones_append_data(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    # Motion photos append video after the JPEG's end; the renditions are re-encoded, so nothing survives.
    resp = post_complaint(client, device_headers, complaint_json(), [photo_bytes + zip_archive()])
    assert resp.status_code == 201, resp.text


def test_address_rate_limit_is_429_with_retry_after(
    client: TestClient, device_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "complaint_rate_per_address", "2/minute")
    assert post_complaint(client, device_headers, complaint_json()).status_code == 201
    assert post_complaint(client, device_headers, complaint_json()).status_code == 201
    third = post_complaint(client, device_headers, complaint_json())
    assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
    assert third.json()["error"]["code"] == "rate_limited"


def test_account_rate_limit_counts_new_complaints_only(
    client: TestClient, device_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "complaint_rate_per_account", "1/hour")
    assert post_complaint(client, device_headers, complaint_json(), key="one").status_code == 201
    assert post_complaint(client, device_headers, complaint_json(), key="one").status_code == 200  # a retry
    second = post_complaint(client, device_headers, complaint_json(), key="two")
    assert second.status_code == 429 and "Retry-After" in second.headers
