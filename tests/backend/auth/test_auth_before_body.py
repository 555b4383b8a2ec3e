"""Every route that parses a body and needs an account checks the account before reading a byte of the body
(FastAPI parses bodies before dependencies): a deactivated account's valid token is refused unread."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session

from backend.auth.body_gate import account_routes, auth_requirement
from backend.auth.models import Role
from backend.main import create_app
from tests.factories import COUNTY_A, login, make_account

BOUNDARY = "gongping-gate"
CSV = "统一社会信用代码,名称\n91330106MA2XXXXX0X,测试\n".encode()


class ObservedBody:
    """A streaming request body that records whether the server read it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = False

    def __iter__(self) -> Iterator[bytes]:
        self.read = True
        yield self.data


def _upload(client: TestClient, headers: dict[str, str], body: ObservedBody) -> Response:
    return client.post(
        "/api/v1/operators/import",
        content=iter(body),
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


def _multipart() -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="ops.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + CSV
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def test_a_deactivated_staff_upload_is_refused_unread(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    headers = login(client, staff)
    staff.is_active = False
    session.add(staff)
    session.flush()
    body = ObservedBody(_multipart())
    resp = _upload(client, headers, body)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "invalid_token"
    assert body.read is False


def test_no_token_is_refused_unread(client: TestClient) -> None:
    body = ObservedBody(_multipart())
    resp = _upload(client, {}, body)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "not_authenticated"
    assert body.read is False


def test_an_active_staff_upload_is_read(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    body = ObservedBody(_multipart())
    resp = _upload(client, login(client, staff), body)
    assert resp.status_code not in (401, 403, 500), resp.text
    assert body.read is True


def test_every_account_route_with_a_body_is_gated() -> None:
    # The gate finds its routes from their dependencies: the account routes with bodies are all covered.
    routes = list(account_routes(create_app().routes))
    gated = {r.path for r in routes if auth_requirement(r) is True}
    assert {"/api/v1/operators/import", "/api/v1/supervisor-reports"} <= gated, sorted(gated)
    # Sign-in itself takes no account; a route without a body has nothing to protect.
    assert "/api/v1/auth/token" not in gated and "/api/v1/me" not in gated
