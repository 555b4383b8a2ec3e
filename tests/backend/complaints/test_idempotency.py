"""Safe retries: the same key and body make one complaint, a different body is 409, even under 100 at once."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from backend.auth.models import Role
from backend.complaints.models import Complaint, ComplaintPhoto, IdempotencyKey
from backend.complaints.service import purge_idempotency_keys
from backend.config import get_settings
from backend.db import utcnow
from backend.main import create_app
from backend.outbox.models import OutboxEvent
from tests.factories import PASSWORD, complaint_json, login, make_account, post_complaint
from tests.support.live_server import serve


def _count(session: Session, model: type, **where: object) -> int:
    stmt = select(func.count()).select_from(model)
    for name, value in where.items():
        stmt = stmt.where(getattr(model, name) == value)
    return int(session.exec(stmt).one())


def test_same_key_same_body_is_the_same_complaint(
    client: TestClient, session: Session, device_headers: dict[str, str], photo_bytes: bytes
) -> None:
    first = post_complaint(
        client, device_headers, complaint_json(photo_kinds=["receipt"]), [photo_bytes], key="k-1"
    )
    again = post_complaint(
        client, device_headers, complaint_json(photo_kinds=["receipt"]), [photo_bytes], key="k-1"
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["photos"] == first.json()["photos"]
    assert _count(session, Complaint) == 1 and _count(session, ComplaintPhoto) == 1
    assert _count(session, OutboxEvent, topic="complaint.created") == 1


def test_same_body_in_other_key_order_and_spacing_is_the_same(
    client: TestClient, device_headers: dict[str, str]
) -> None:
    body = complaint_json()
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=4, ensure_ascii=True)
    first = post_complaint(client, device_headers, body, key="k-order")
    again = post_complaint(client, device_headers, reordered, key="k-order")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("change", ["description", "photo", "photo_kind"])
def test_same_key_different_body_is_409(
    client: TestClient,
    session: Session,
    device_headers: dict[str, str],
    photo_bytes: bytes,
    other_photo_bytes: bytes,
    change: str,
) -> None:
    post_complaint(client, device_headers, complaint_json(photo_kinds=["receipt"]), [photo_bytes], key="k-2")
    body = complaint_json(photo_kinds=["receipt"])
    photos = [photo_bytes]
    if change == "description":
        body["description"] = "另一件事"
    elif change == "photo":
        photos = [other_photo_bytes]
    else:
        body["photo_kinds"] = ["goods"]
    resp = post_complaint(client, device_headers, body, photos, key="k-2")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "idempotency_conflict"
    assert _count(session, Complaint) == 1


def test_keys_are_scoped_per_account(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    other = login(client, make_account(session, Role.consumer_device))
    mine = post_complaint(client, device_headers, complaint_json(), key="shared-key")
    theirs = post_complaint(client, other, complaint_json(), key="shared-key")
    assert (mine.status_code, theirs.status_code) == (201, 201) and mine.json()["id"] != theirs.json()["id"]


def test_a_failed_submission_does_not_use_up_its_key(
    client: TestClient, device_headers: dict[str, str]
) -> None:
    bad = post_complaint(client, device_headers, complaint_json(category="nope"), key="k-3")
    good = post_complaint(client, device_headers, complaint_json(), key="k-3")
    assert (bad.status_code, good.status_code) == (422, 201)


def test_keys_live_seven_days_then_are_purged(
    client: TestClient, session: Session, device_headers: dict[str, str]
) -> None:
    old = post_complaint(client, device_headers, complaint_json(), key="k-old").json()["id"]
    post_complaint(client, device_headers, complaint_json(), key="k-new")
    row = session.exec(select(IdempotencyKey).where(IdempotencyKey.key == "k-old")).one()
    row.created_at = utcnow() - timedelta(days=7, minutes=1)
    session.add(row)
    six_days = session.exec(select(IdempotencyKey).where(IdempotencyKey.key == "k-new")).one()
    six_days.created_at = utcnow() - timedelta(days=6, hours=23)
    session.add(six_days)
    session.flush()
    assert purge_idempotency_keys(session) == 1
    session.commit()
    assert [k.key for k in session.exec(select(IdempotencyKey)).all()] == ["k-new"]
    assert post_complaint(client, device_headers, complaint_json(), key="k-new").status_code == 200
    fresh = post_complaint(client, device_headers, complaint_json(), key="k-old")
    assert fresh.status_code == 201 and fresh.json()["id"] != old


def test_retention_setting_cannot_go_below_seven_days() -> None:
    from pydantic import ValidationError

    from backend.config import Settings

    with pytest.raises(ValidationError):
        Settings(idempotency_key_days=6)


# ---- a hundred retries at once, against a real server and committed data ------------------------------------


@pytest.fixture
def live_server(committed_session: Session) -> Iterator[str]:
    """The app served by uvicorn in a thread, with real sessions that commit."""
    with serve(create_app()) as url:
        yield url


def test_hundred_concurrent_retries_make_exactly_one_complaint(
    live_server: str, committed_session: Session, photo_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "complaint_rate_per_address", "100000/minute")
    monkeypatch.setattr(settings, "complaint_rate_per_account", "100000/minute")
    device = make_account(committed_session, Role.consumer_device)
    committed_session.commit()
    token = httpx.post(
        f"{live_server}/api/v1/auth/token", data={"username": device.username, "password": PASSWORD}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "retry-storm"}
    part = json.dumps(complaint_json(photo_kinds=["receipt"]), ensure_ascii=False)
    barrier = threading.Barrier(100)

    def retry(_: int) -> httpx.Response:
        with httpx.Client(timeout=120) as http:
            barrier.wait()
            return http.post(
                f"{live_server}/api/v1/complaint-form",
                data={"complaint": part},
                files=[("photos", ("p.jpg", photo_bytes, "image/jpeg"))],
                headers=headers,
            )

    with ThreadPoolExecutor(max_workers=100) as pool:
        responses = list(pool.map(retry, range(100)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200: 99}, {
        s: [r.text for r in responses if r.status_code == s][:1] for s in statuses
    }
    assert len({r.json()["id"] for r in responses}) == 1
    committed_session.expire_all()
    assert _count(committed_session, Complaint, account_id=device.id) == 1
    complaint_id = responses[0].json()["id"]
    assert _count(committed_session, ComplaintPhoto, complaint_id=complaint_id) == 1
    assert _count(committed_session, IdempotencyKey, account_id=device.id) == 1
    events = committed_session.exec(select(OutboxEvent).where(OutboxEvent.topic == "complaint.created")).all()
    assert [e.payload["complaint_id"] for e in events] == [complaint_id]
