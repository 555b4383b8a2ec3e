"""A filer's account is checked before a byte of the upload is read: a deactivated account's still-valid token
is refused without the body being consumed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from backend.auth.models import Account, Role
from backend.complaints.models import Complaint
from tests.factories import complaint_json, login, make_account

BOUNDARY = "gongping-test-boundary"


def _multipart(photo: bytes) -> bytes:
    complaint = json.dumps(complaint_json(), ensure_ascii=False).encode()
    return b"".join(
        [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="complaint"\r\n\r\n'.encode(),
            complaint,
            f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="photos"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode(),
            photo,
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    )


class ObservedBody:
    """A streaming request body that records whether the server read it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = False

    def __iter__(self) -> Iterator[bytes]:
        self.read = True
        yield self.data


def _post(client: TestClient, headers: dict[str, str], body: ObservedBody):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/complaint-form",
        content=iter(body),
        headers={
            **headers,
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )


def _complaints(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Complaint)).one()


def test_a_deactivated_accounts_upload_is_refused_unread(
    client: TestClient, session: Session, photo_bytes: bytes
) -> None:
    filer = make_account(session, Role.consumer)
    headers = login(client, filer)  # a valid token, issued while the account was active
    filer.is_active = False
    session.add(filer)
    session.flush()
    before = _complaints(session)
    body = ObservedBody(_multipart(photo_bytes))
    resp = _post(client, headers, body)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "invalid_token"
    assert body.read is False
    assert _complaints(session) == before


def test_an_out_of_term_supervisors_upload_is_refused_unread(
    client: TestClient, session: Session, photo_bytes: bytes
) -> None:
    from datetime import date, timedelta

    from tests.factories import COUNTY_A

    supervisor = make_account(session, Role.supervisor, COUNTY_A)
    headers = login(client, supervisor)
    supervisor.term_ends_on = date.today() - timedelta(days=1)
    session.add(supervisor)
    session.flush()
    body = ObservedBody(_multipart(photo_bytes))
    assert _post(client, headers, body).status_code == 401
    assert body.read is False


def test_an_active_accounts_upload_is_read(
    client: TestClient, session: Session, device: Account, photo_bytes: bytes, market: object
) -> None:
    # The control: the observation works, an active filer's body is read and the complaint made.
    headers = login(client, device)
    body = ObservedBody(_multipart(photo_bytes))
    resp = _post(client, headers, body)
    assert resp.status_code == 201, resp.text
    assert body.read is True
