"""HTTP-level protections: CORS for the web page, security headers, oversize bodies, upload file names.

Covered elsewhere and not repeated: the QR page's Content-Security-Policy in detail
(tests/backend/public/test_qr_page.py ``test_page_security_headers_allow_no_inline_script``), multipart bodies
over the photo, request and upload limits (tests/backend/complaints/test_submit.py ``test_*_413*``), unsafe
storage keys (tests/backend/media/test_media_storage.py ``test_unsafe_keys_are_refused``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.complaints.models import ComplaintPhoto
from backend.config import get_settings
from backend.main import create_app
from tests.factories import complaint_json, login, make_account, post_complaint
from tests.fixtures.media_images import jpeg, photo_like

WEB_ORIGIN = "https://gongping.scjg.example.gov.cn"
OTHER_ORIGIN = "https://evil.example.com"
API_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.fixture
def cors_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app as deployed beside its web page: one allowed origin (no database needed for preflights)."""
    monkeypatch.setattr(get_settings(), "cors_origins", [WEB_ORIGIN])
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def test_cors_preflight_allows_the_web_page_only(cors_client: TestClient) -> None:
    request = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = cors_client.options("/api/v1/complaints", headers={"Origin": WEB_ORIGIN, **request})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == WEB_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = cors_client.options("/api/v1/complaints", headers={"Origin": OTHER_ORIGIN, **request})
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    # A wildcard is never sent (credentials travel in the Authorization header).
    assert allowed.headers["access-control-allow-origin"] != "*"


def test_cors_simple_request_from_another_origin_gets_no_allow_header(cors_client: TestClient) -> None:
    ok = cors_client.get("/healthz", headers={"Origin": WEB_ORIGIN})
    assert ok.headers["access-control-allow-origin"] == WEB_ORIGIN
    assert "origin" in ok.headers.get("vary", "").lower()
    other = cors_client.get("/healthz", headers={"Origin": OTHER_ORIGIN})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_at_all_without_configured_origins(client: TestClient) -> None:
    assert not get_settings().cors_origins
    resp = client.get("/healthz", headers={"Origin": OTHER_ORIGIN})
    assert not any(h.startswith("access-control-") for h in resp.headers)
    preflight = client.options(
        "/api/v1/complaints", headers={"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def _assert_security_headers(resp: object) -> None:
    headers = resp.headers  # type: ignore[attr-defined]
    for name, value in API_HEADERS.items():
        assert headers.get(name) == value, (name, headers.get(name), resp)
    assert headers.get("x-request-id")


def test_security_headers_on_api_answers_of_every_kind(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, "330106")
    headers = login(client, staff)
    answers = [
        client.get("/healthz"),
        client.get("/api/v1/me", headers=headers),  # 200 JSON
        client.get("/api/v1/me"),  # 401
        client.get("/api/v1/no-such-route"),  # 404
        client.post("/api/v1/auth/token", data={}),  # 422
        client.post(
            "/api/v1/auth/register",
            content=b"{" + b" " * (get_settings().max_json_body_bytes + 1) + b"}",
            headers={"Content-Type": "application/json"},
        ),  # 413 from the body-limit middleware
        client.get("/openapi.json"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 401, 404, 422, 413, 200]
    for resp in answers:
        _assert_security_headers(resp)
    # JSON answers are never sniffed into HTML.
    assert answers[1].headers["content-type"].startswith("application/json")


def test_security_headers_and_csp_on_html_pages(client: TestClient) -> None:
    # A forged code still renders the page (a warning): HTML with the same strict policy.
    page = client.get("/q/not-a-real-code")
    assert page.headers["content-type"].startswith("text/html")
    _assert_security_headers(page)
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


def test_json_body_over_the_limit_is_413_declared_or_streamed(client: TestClient) -> None:
    limit = get_settings().max_json_body_bytes
    body = b'{"username": "x", "password": "' + b"a" * (limit + 10) + b'"}'
    declared = client.post(
        "/api/v1/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"
    assert declared.json()["error"]["details"]["limit_bytes"] == limit

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(body), 16384):
            yield body[i : i + 16384]

    streamed = client.post(
        "/api/v1/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "payload_too_large"


def test_lying_content_length_is_not_trusted(client: TestClient) -> None:
    limit = get_settings().max_json_body_bytes
    body = b'{"username": "x", "password": "' + b"a" * (limit + 10) + b'"}'
    # Declares a small body, sends a large one: the streamed count decides.
    resp = client.post(
        "/api/v1/auth/register",
        content=iter([body]),
        headers={"Content-Type": "application/json", "Content-Length": "20"},
    )
    assert resp.status_code in (400, 413, 422)
    assert resp.status_code != 500


TRAVERSAL_NAMES = [
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "....//....//etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "photo.jpg\x00.php",
    "../../../var/media/complaint-display/evil.jpg",
]


@pytest.mark.parametrize("filename", TRAVERSAL_NAMES)
def test_upload_file_names_never_reach_the_file_system(
    client: TestClient, session: Session, tmp_path: Path, filename: str
) -> None:
    media = get_settings().media_dir.resolve()
    before = {p for p in media.rglob("*")} if media.exists() else set()
    headers = login(client, make_account(session, Role.consumer_device))
    data = jpeg(photo_like(320, 240, seed=hash(filename) % 1000))
    resp = post_complaint(client, headers, complaint_json(), [data], filename=filename)
    assert resp.status_code == 201, resp.text
    assert filename not in resp.text and "passwd" not in resp.text
    [photo] = session.exec(
        select(ComplaintPhoto)
        .where(ComplaintPhoto.complaint_id == resp.json()["id"])
        .order_by(col(ComplaintPhoto.id))
    ).all()
    # The stored key is derived from the content, never from the client's name.
    assert ".." not in photo.original_key and not photo.original_key.startswith("/")
    assert "passwd" not in photo.original_key and "win.ini" not in photo.original_key
    stored = (media / photo.original_key).resolve()
    assert stored.is_relative_to(media) and stored.read_bytes() == data
    new_files = {p for p in media.rglob("*")} - before
    assert all(p.resolve().is_relative_to(media) for p in new_files)
    assert not Path("/etc/passwd.jpg").exists() and not (media.parent / "etc").exists()


@pytest.mark.parametrize(
    "path",
    [
        "/media/../../etc/passwd",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/static/../backend/config.py",
        "/static/%2e%2e/%2e%2e/backend/config.py",
        "/static/..%2f..%2fbackend%2fconfig.py",
        "/api/v1/complaints/1/photos/..%2f..%2f..%2fetc%2fpasswd",
    ],
)
def test_media_and_static_paths_do_not_escape(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code in (400, 401, 404, 405, 422), (path, resp.status_code)
    assert "root:" not in resp.text and "GONGPING_" not in resp.text and "class Settings" not in resp.text
