"""Photos uploaded ahead: deduplicated per account, checked like complaint photos, attached once, expiring."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.complaints.models import Complaint, ComplaintPhoto
from backend.db import utcnow
from backend.media.factory import media_storage
from backend.uploads import service as uploads_service
from backend.uploads.models import PhotoUpload
from tests.factories import complaint_json, login, make_account, post_complaint
from tests.fixtures.media_images import jpeg, photo_like, zip_archive


def upload(client: TestClient, headers: dict[str, str], data: bytes, name: str = "p.jpg") -> Response:
    return client.post("/api/v1/uploads", files={"photo": (name, data, "image/jpeg")}, headers=headers)


def file_json(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], key: str | None = None
) -> Response:
    return client.post(
        "/api/v1/complaints",
        content=json.dumps(body, ensure_ascii=False).encode(),
        headers={**headers, "Content-Type": "application/json", "Idempotency-Key": key or uuid.uuid4().hex},
    )


def three_photos() -> list[bytes]:
    return [jpeg(photo_like(320, 240, seed=400 + n)) for n in range(3)]


def test_the_same_photo_twice_is_the_same_upload(
    client: TestClient, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    first = upload(client, device_headers, photo_bytes)
    again = upload(client, device_headers, photo_bytes, name="renamed.png")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    body = first.json()
    assert body["format"] == "jpeg" and body["bytes"] == len(photo_bytes) and body["attached"] is False
    assert body["width"] == 640 and body["height"] == 480


def test_uploads_are_deduplicated_per_account_only(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    other = login(client, make_account(session, Role.consumer_device))
    mine = upload(client, device_headers, photo_bytes).json()["id"]
    theirs = upload(client, other, photo_bytes)
    assert theirs.status_code == 201 and theirs.json()["id"] != mine


def test_an_upload_is_checked_like_a_complaint_photo(
    client: TestClient, device_headers: dict[str, str]
) -> None:
    archive = upload(client, device_headers, zip_archive())
    assert archive.status_code == 415 and archive.json()["error"]["code"] == "unsupported_media_type"
    truncated = upload(client, device_headers, jpeg(photo_like(320, 240, seed=5))[:2000])
    assert truncated.status_code == 422 and truncated.json()["error"]["code"] == "media_rejected"
    two = client.post(
        "/api/v1/uploads",
        files=[("photo", ("a.jpg", b"x", "image/jpeg")), ("photo", ("b.jpg", b"y", "image/jpeg"))],
        headers=device_headers,
    )
    assert two.status_code == 422 and two.json()["error"]["code"] == "photo_part_required"
    as_json = client.post("/api/v1/uploads", json={"photo": "x"}, headers=device_headers)
    assert as_json.status_code == 415


def test_only_filers_upload(client: TestClient, session: Session, photo_bytes: bytes) -> None:
    assert upload(client, {}, photo_bytes).status_code == 401
    operator = login(client, make_account(session, Role.operator))
    assert upload(client, operator, photo_bytes).status_code == 403


def test_a_json_complaint_takes_its_photos_from_uploads(
    client: TestClient, session: Session, device: Account, device_headers: dict[str, str]
) -> None:
    photos = three_photos()
    ids = [upload(client, device_headers, p).json()["id"] for p in photos]
    body = complaint_json(photo_uploads=ids, photo_kinds=["receipt", "scale_display", "goods"])
    created = file_json(client, device_headers, body)
    assert created.status_code == 201, created.text
    complaint_id = created.json()["id"]
    assert [p["kind"] for p in created.json()["photos"]] == ["receipt", "scale_display", "goods"]
    stored = list(
        session.exec(
            select(ComplaintPhoto)
            .where(ComplaintPhoto.complaint_id == complaint_id)
            .order_by(col(ComplaintPhoto.position))
        )
    )
    uploads = {u.id: u for u in session.exec(select(PhotoUpload).where(col(PhotoUpload.id).in_(ids)))}
    assert [p.original_key for p in stored] == [uploads[i].original_key for i in ids]
    assert [p.original_bytes for p in stored] == [len(p) for p in photos]
    assert all(u.complaint_id == complaint_id and u.attached_at is not None for u in uploads.values())
    assert media_storage().get(stored[0].original_key) == photos[0]
    # Reading the upload again says it is attached; a new complaint cannot take it.
    assert upload(client, device_headers, photos[0]).json()["id"] != ids[0]


def test_a_retry_with_the_same_key_is_the_same_complaint_even_after_uploading_again(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    photos = three_photos()
    ids = [upload(client, device_headers, p).json()["id"] for p in photos]
    first = file_json(client, device_headers, complaint_json(photo_uploads=ids), key="app-1")
    again = file_json(client, device_headers, complaint_json(photo_uploads=ids), key="app-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    # The app lost the upload ids and sent the photos again: new uploads, the same bytes, the same complaint.
    new_ids = [upload(client, device_headers, p).json()["id"] for p in photos]
    assert set(new_ids).isdisjoint(ids)
    replay = file_json(client, device_headers, complaint_json(photo_uploads=new_ids), key="app-1")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    assert len(list(session.exec(select(Complaint)))) == 1
    assert len(list(session.exec(select(ComplaintPhoto)))) == 3
    # The same key with other photos is another submission.
    other = upload(client, device_headers, jpeg(photo_like(320, 240, seed=999))).json()["id"]
    conflict = file_json(client, device_headers, complaint_json(photo_uploads=[other]), key="app-1")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"


def test_an_attached_upload_cannot_join_a_second_complaint(
    client: TestClient, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    upload_id = upload(client, device_headers, photo_bytes).json()["id"]
    assert file_json(client, device_headers, complaint_json(photo_uploads=[upload_id])).status_code == 201
    second = file_json(client, device_headers, complaint_json(photo_uploads=[upload_id]))
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "upload_already_attached"
    assert second.json()["error"]["details"]["photo_uploads"] == [upload_id]


def test_another_accounts_upload_or_an_unknown_one_is_404(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    other = login(client, make_account(session, Role.consumer_device))
    theirs = upload(client, other, photo_bytes).json()["id"]
    for upload_id in (theirs, uuid.uuid4().hex):
        answer = file_json(client, device_headers, complaint_json(photo_uploads=[upload_id]))
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "upload_not_found"
        assert answer.json()["error"]["details"] == {"upload": upload_id}
    malformed = file_json(client, device_headers, complaint_json(photo_uploads=["../etc"]))
    assert malformed.status_code == 422


def test_json_submission_rules(
    client: TestClient, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    upload_id = upload(client, device_headers, photo_bytes).json()["id"]
    twice = file_json(client, device_headers, complaint_json(photo_uploads=[upload_id, upload_id]))
    assert twice.status_code == 422 and twice.json()["error"]["code"] == "duplicate_upload"
    kinds = file_json(
        client, device_headers, complaint_json(photo_uploads=[upload_id], photo_kinds=["receipt", "goods"])
    )
    assert kinds.status_code == 422 and kinds.json()["error"]["code"] == "photo_kinds_mismatch"
    no_photos = file_json(client, device_headers, complaint_json())
    assert no_photos.status_code == 201 and no_photos.json()["photos"] == []
    garbled = client.post(
        "/api/v1/complaints",
        content="投诉".encode("gb18030"),
        headers={**device_headers, "Content-Type": "application/json", "Idempotency-Key": "k-gb"},
    )
    assert garbled.status_code == 422 and garbled.json()["error"]["code"] == "invalid_json"
    # The web page's multipart form is unchanged.
    assert post_complaint(client, device_headers, complaint_json(), [photo_bytes]).status_code == 201


def test_an_expired_upload_is_404_and_the_sweep_deletes_it_and_its_unused_file(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    lonely = jpeg(photo_like(320, 240, seed=321))
    lonely_id = upload(client, device_headers, lonely).json()["id"]
    shared_id = upload(client, device_headers, photo_bytes).json()["id"]
    # The same bytes are also a complaint photo (sent in the multipart form): that file must stay.
    assert post_complaint(client, device_headers, complaint_json(), [photo_bytes]).status_code == 201
    past = utcnow() - timedelta(minutes=1)
    rows = {u.id: u for u in session.exec(select(PhotoUpload))}
    lonely_key, shared_key = rows[lonely_id].original_key, rows[shared_id].original_key
    for row in rows.values():
        row.expires_at = past
        session.add(row)
    # A savepoint "commit": the 404 below rolls back only what came after it.
    session.commit()
    expired = file_json(client, device_headers, complaint_json(photo_uploads=[lonely_id]))
    assert expired.status_code == 404 and expired.json()["error"]["code"] == "upload_not_found"
    keys, count = uploads_service.purge_expired(session)
    assert count == 2
    assert keys == [lonely_key]
    assert session.exec(select(PhotoUpload)).all() == []
    uploads_service.delete_files(media_storage(), keys)
    assert not media_storage().exists(lonely_key)
    assert media_storage().exists(shared_key)
    # Nothing left to do: the next sweep finds nothing.
    assert uploads_service.purge_expired(session) == ([], 0)


def test_an_attached_upload_never_expires(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    upload_id = upload(client, device_headers, photo_bytes).json()["id"]
    assert file_json(client, device_headers, complaint_json(photo_uploads=[upload_id])).status_code == 201
    row = session.get(PhotoUpload, upload_id)
    assert row is not None
    row.expires_at = utcnow() - timedelta(days=1)
    session.add(row)
    session.flush()
    assert uploads_service.purge_expired(session) == ([], 0)


def test_a_dropped_link_mid_photo_is_a_quiet_400(
    client: TestClient, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    """The connection closes halfway through the photo: no server error (the app simply sends it again)."""
    boundary = "bench-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    chunks: list[dict[str, Any]] = [
        {"type": "http.request", "body": head + photo_bytes[:5000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/uploads",
        "raw_path": b"/api/v1/uploads",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", device_headers["Authorization"].encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 400 and json.loads(body)["error"]["code"] == "client_disconnected"
