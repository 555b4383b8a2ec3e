"""Error-shape regressions found by the OpenAPI fuzzer (tests/contract/test_fuzz_openapi.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Role
from tests.factories import login, make_account


def test_a_json_body_that_is_not_utf8_is_invalid_json_422(client: TestClient) -> None:
    # FastAPI itself answers 400 (undocumented) for bytes that do not decode; it is invalid JSON like any other.
    resp = client.post(
        "/api/v1/auth/refresh", content=b"\xff\nB\xe4;\xff", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_json"


def test_a_json_body_that_is_not_utf8_is_422_for_signed_in_routes_too(
    client: TestClient, session: Session
) -> None:
    headers = login(client, make_account(session, Role.admin))
    resp = client.post(
        "/api/v1/operators", content=b"\xc3\x28", headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_json"


def test_405_allow_lists_every_method_of_the_resource(client: TestClient) -> None:
    # GET and POST /api/v1/operators are two routes; Starlette named only the first in Allow.
    resp = client.request("OPTIONS", "/api/v1/operators")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET, POST"
    assert resp.json()["error"]["code"] == "method_not_allowed"
    resp = client.request("OPTIONS", "/api/v1/operators/1")
    assert resp.headers["Allow"] == "GET, PATCH"
    assert client.delete("/healthz").headers["Allow"] == "GET"


def test_every_signed_in_operation_documents_401() -> None:
    # A missing, expired or forged bearer token is a 401 with our error shape on every route that reads one.
    from backend.main import create_app

    spec = create_app().openapi()
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") and "401" not in operation["responses"]
    ]
    assert not undocumented, undocumented


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/operators/9223372036854775808", None),
        ("GET", "/api/v1/operators/2147483648", None),
        ("PATCH", "/api/v1/operators/9223372036854775808", {"phone": "780715"}),
        ("GET", "/api/v1/operators/99999999999999999999999999/stalls", None),
    ],
)
def test_path_ids_beyond_the_column_are_not_found(
    client: TestClient, session: Session, method: str, path: str, body: dict[str, object] | None
) -> None:
    # A well-formed id no row can have: sqlite3 cannot bind it past 64 bits, PostgreSQL refuses to compare
    # it with an integer column past 2^31-1; either way the answer is 404, as for any other missing id.
    headers = login(client, make_account(session, Role.admin))
    resp = client.request(method, path, json=body, headers=headers)
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "not_found"


def test_body_ids_beyond_64_bits_are_a_client_error(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.admin))
    body = {"kind": "reminder", "operator_id": 2**63, "subject": "请送检"}
    resp = client.post("/api/v1/interviews", json=body, headers=headers)
    assert resp.status_code in (404, 422), resp.text
    assert resp.json()["error"]["code"] in ("invalid_parameter", "not_found")
    if session.get_bind().dialect.name == "sqlite":
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_parameter"


def test_a_malformed_multipart_body_is_invalid_form_422(client: TestClient, session: Session) -> None:
    # Starlette answers 400 (undocumented) when the multipart body does not parse.
    boundary = "cb0697102ab56238ea6140f6a8815112"
    body = f"--{boundary}\r\n1.5e-258--{boundary}--\r\n".encode()
    headers = {
        **login(client, make_account(session, Role.admin)),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    resp = client.post("/api/v1/operators/import", content=body, headers=headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_form"
