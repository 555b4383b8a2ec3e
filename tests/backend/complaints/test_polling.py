"""ETag / If-None-Match on what the app polls: my complaints, a complaint's timeline, a public profile."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Account
from backend.complaints.models import Complaint, ComplaintPhoto, ComplaintStatus, PhotoStatus
from backend.complaints.service import add_event
from backend.db import utcnow
from tests.backend.complaints.conftest import Market
from tests.factories import complaint_json, login, post_complaint


def test_my_complaints_answer_304_until_one_is_filed_or_changes(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    first = post_complaint(client, device_headers, complaint_json())
    listing = client.get("/api/v1/me/complaints", headers=device_headers)
    etag = listing.headers["etag"]
    assert listing.headers["cache-control"] == "private, no-cache"
    conditional = {**device_headers, "If-None-Match": etag}
    assert client.get("/api/v1/me/complaints", headers=conditional).status_code == 304
    assert (
        client.get("/api/v1/me/complaints", headers={**device_headers, "If-None-Match": "*"}).status_code
        == 304
    )
    assert client.get("/api/v1/me/complaints", headers=conditional, params={"offset": 1}).status_code == 200
    complaint = session.get(Complaint, first.json()["id"])
    assert complaint is not None
    complaint.status = ComplaintStatus.routed
    complaint.updated_at = utcnow()
    session.add(complaint)
    session.flush()
    changed = client.get("/api/v1/me/complaints", headers=conditional)
    assert changed.status_code == 200 and changed.json()["items"][0]["status"] == "routed"
    conditional = {**device_headers, "If-None-Match": changed.headers["etag"]}
    post_complaint(client, device_headers, complaint_json())
    assert client.get("/api/v1/me/complaints", headers=conditional).json()["total"] == 2


def test_my_complaints_page_changes_when_an_operator_on_it_is_renamed(
    client: TestClient, device_headers: dict[str, str], market: Market
) -> None:
    filed = post_complaint(client, device_headers, complaint_json(operator_id=market.market.id))
    assert filed.status_code == 201, filed.text
    first = client.get("/api/v1/me/complaints", headers=device_headers)
    assert first.json()["items"][0]["operator_name"] == "西溪农贸市场"
    conditional = {**device_headers, "If-None-Match": first.headers["etag"]}
    assert client.get("/api/v1/me/complaints", headers=conditional).status_code == 304
    renamed = client.patch(
        f"/api/v1/operators/{market.market.id}",
        json={"name": "西溪农贸市场（新址）"},
        headers=login(client, market.staff),
    )
    assert renamed.status_code == 200, renamed.text
    after = client.get("/api/v1/me/complaints", headers=conditional)
    assert after.status_code == 200 and after.headers["etag"] != first.headers["etag"]
    assert after.json()["items"][0]["operator_name"] == "西溪农贸市场（新址）"


def test_a_poll_by_a_deactivated_account_is_401_not_304(
    client: TestClient, session: Session, device: Account, device_headers: dict[str, str]
) -> None:
    post_complaint(client, device_headers, complaint_json())
    urls = ("/api/v1/me/complaints", "/api/v1/me/notifications")
    etags = {url: client.get(url, headers=device_headers).headers["etag"] for url in urls}
    for url in urls:
        assert client.get(url, headers={**device_headers, "If-None-Match": etags[url]}).status_code == 304
    device.is_active = False
    session.add(device)
    # A savepoint "commit": the first 401 rolls back only what came after it.
    session.commit()
    for url in urls:
        refused = client.get(url, headers={**device_headers, "If-None-Match": etags[url]})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
        assert "etag" not in refused.headers


def test_a_complaints_timeline_answers_304_until_a_step_or_photo_changes(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    created = post_complaint(client, device_headers, complaint_json(), [photo_bytes]).json()
    url = f"/api/v1/complaints/{created['id']}"
    etag = client.get(url, headers=device_headers).headers["etag"]
    conditional = {**device_headers, "If-None-Match": etag}
    assert client.get(url, headers=conditional).status_code == 304
    assert client.get(url, headers={**conditional, "Accept-Language": "en"}).status_code == 200
    photo = session.get(ComplaintPhoto, created["photos"][0]["id"])
    assert photo is not None
    photo.status = PhotoStatus.rejected
    photo.processed_at = utcnow()
    session.add(photo)
    session.flush()
    after_photo = client.get(url, headers=conditional)
    assert after_photo.status_code == 200 and after_photo.json()["photos"][0]["status"] == "rejected"
    conditional = {**device_headers, "If-None-Match": after_photo.headers["etag"]}
    complaint = session.get(Complaint, created["id"])
    assert complaint is not None
    add_event(session, complaint, ComplaintStatus.received, "补充说明", "a note")
    assert client.get(url, headers=conditional).status_code == 200


def test_a_public_profile_answers_304_while_unchanged(
    client: TestClient, session: Session, market: Market
) -> None:
    url = f"/api/v1/public/operators/{market.market.id}"
    first = client.get(url)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public")
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": 'W/"other"'}).status_code == 200
    market.market.name = "西溪农贸市场（新址）"
    session.add(market.market)
    session.flush()
    renamed = client.get(url, headers={"If-None-Match": etag})
    assert renamed.status_code == 200 and renamed.headers["etag"] != etag
