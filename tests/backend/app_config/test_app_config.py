"""The app's bootstrap, the minimum-version check (426) and the app-link association files."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.app_config.versions import is_older, parse_header, parse_version
from backend.auth.models import Role
from backend.config import get_settings
from tests.factories import login, make_account


@pytest.fixture
def minimums(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "app_min_versions", {"android": "1.4.0", "ios": "2.0"})
    monkeypatch.setattr(settings, "app_store_urls", {"android": "https://app.example/android"})


def test_config_reports_settings(client: TestClient, monkeypatch: pytest.MonkeyPatch, minimums: None) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "app_features", {"uploads_ahead": True, "similar_counts": False})
    monkeypatch.setattr(settings, "app_terms_version", "2026-06-01")
    monkeypatch.setattr(settings, "upload_ttl_hours", 6)
    answer = client.get("/api/v1/app/config")
    assert answer.status_code == 200
    body = answer.json()
    assert body["min_versions"] == {"android": "1.4.0", "ios": "2.0"}
    assert body["uploads"]["max_photo_bytes"] == settings.complaint_photo_max_bytes
    assert body["uploads"]["max_photos"] == 6 and body["uploads"]["upload_ttl_seconds"] == 6 * 3600
    assert "image/heic" in body["uploads"]["accepted_types"]
    assert body["push_enabled"] is (settings.fcm_credentials is not None or settings.jpush_enabled)
    assert body["push_providers"] == [
        *(["fcm"] if settings.fcm_credentials is not None else []),
        *(["jpush"] if settings.jpush_enabled else []),
    ]
    assert body["quiet_hours"] == {"start": "22:00", "end": "08:00", "timezone": settings.timezone}
    assert body["terms_version"] == "2026-06-01" and body["privacy_version"] == settings.app_privacy_version
    assert body["support"]["hotline"] == settings.app_support_hotline
    assert body["features"] == {"uploads_ahead": True, "similar_counts": False}
    assert answer.headers["cache-control"] == "public, max-age=300"


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"X-App-Version": "android/1.3.9"}, True),
        ({"X-App-Version": "android/1.4.0"}, False),
        ({"X-App-Version": "android/1.4"}, False),
        ({"X-App-Version": "android/1.10.0-beta+7"}, False),
        ({"X-App-Version": "1.2.3", "X-App-Platform": "android"}, True),
        ({"X-App-Version": "ios/1.99.99"}, True),
        ({"X-App-Version": "ios/2.0.0"}, False),
        ({"X-App-Version": "web/0.1"}, False),  # no minimum for the web app
        ({"X-App-Version": "android/banana"}, False),  # not a version: never refused
        ({"X-App-Version": "1.0"}, False),  # no platform
        ({}, False),
    ],
)
def test_old_apps_get_426_on_the_api(
    client: TestClient, session: Session, minimums: None, headers: dict[str, str], refused: bool
) -> None:
    auth = login(client, make_account(session, Role.consumer))
    answer = client.get("/api/v1/me", headers={**auth, **headers})
    assert answer.status_code == (426 if refused else 200)
    if refused:
        error = answer.json()["error"]
        assert error["code"] == "app_version_unsupported"
        assert error["details"]["min_version"] in ("1.4.0", "2.0")
        assert "请升级" in error["message"]
        assert answer.headers["x-request-id"]


def test_the_426_speaks_english_and_links_the_store(client: TestClient, minimums: None) -> None:
    answer = client.get(
        "/api/v1/jurisdictions", headers={"X-App-Version": "android/1.0.0", "Accept-Language": "en"}
    )
    assert answer.status_code == 426
    error = answer.json()["error"]
    assert error["message"].startswith("app version 1.0.0 is no longer supported")
    assert error["details"] == {
        "platform": "android",
        "version": "1.0.0",
        "min_version": "1.4.0",
        "update_url": "https://app.example/android",
    }


def test_config_pages_and_docs_are_not_refused(client: TestClient, minimums: None) -> None:
    old = {"X-App-Version": "android/0.1"}
    assert client.get("/api/v1/app/config", headers=old).status_code == 200
    assert client.get("/healthz", headers=old).status_code in (200, 503)
    assert client.get("/openapi.json", headers=old).status_code == 200
    assert client.get("/.well-known/assetlinks.json", headers=old).status_code == 200


def test_version_parsing() -> None:
    assert parse_version("1.2.3-rc.1") == (1, 2, 3)
    assert parse_version("1..2") is None and parse_version("") is None
    assert is_older((1, 2), (1, 2, 1)) and not is_older((1, 2, 0), (1, 2))
    assert is_older((1, 9), (1, 10))
    parsed = parse_header("iOS/3.1", None)
    assert parsed is not None and parsed.platform == "ios" and parsed.version == (3, 1)
    assert parse_header("symbian/1.0", None) is None


def test_well_known_files_are_empty_until_configured(client: TestClient) -> None:
    assert client.get("/.well-known/assetlinks.json").json() == []
    aasa = client.get("/.well-known/apple-app-site-association")
    assert aasa.headers["content-type"] == "application/json"
    assert aasa.json() == {"applinks": {"apps": [], "details": []}}


def test_well_known_files_name_the_app(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "android_package_name", "cn.gov.samr.gongping")
    monkeypatch.setattr(settings, "android_sha256_fingerprints", ["ab:cd:" + "00:" * 29 + "ef"])
    monkeypatch.setattr(settings, "apple_team_id", "ABCDE12345")
    monkeypatch.setattr(settings, "apple_bundle_id", "cn.gov.samr.gongping")
    monkeypatch.setattr(settings, "app_link_base_url", None)
    [statement] = client.get("/.well-known/assetlinks.json").json()
    assert statement["relation"] == ["delegate_permission/common.handle_all_urls"]
    assert statement["target"] == {
        "namespace": "android_app",
        "package_name": "cn.gov.samr.gongping",
        "sha256_cert_fingerprints": ["AB:CD:" + "00:" * 29 + "EF"],
    }
    [detail] = client.get("/.well-known/apple-app-site-association").json()["applinks"]["details"]
    assert detail["appIDs"] == ["ABCDE12345.cn.gov.samr.gongping"]
    assert [c["/"] for c in detail["components"]] == ["/q/*", "/app/q/*"]
    assert detail["paths"] == ["/q/*", "/app/q/*"]
    # A separate app-link host claims its own path only.
    monkeypatch.setattr(settings, "app_link_base_url", "https://go.example.cn")
    [detail] = client.get("/.well-known/apple-app-site-association").json()["applinks"]["details"]
    assert detail["paths"] == ["/q/*"]


def test_config_and_me_answer_304_while_unchanged(client: TestClient, session: Session) -> None:
    config = client.get("/api/v1/app/config")
    again = client.get("/api/v1/app/config", headers={"If-None-Match": config.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == "public, max-age=300"
    headers = login(client, make_account(session, Role.consumer))
    me = client.get("/api/v1/me", headers=headers)
    assert me.headers["cache-control"] == "private, no-cache"
    same = client.get("/api/v1/me", headers={**headers, "If-None-Match": me.headers["etag"]})
    assert same.status_code == 304 and same.content == b""
    other = login(client, make_account(session, Role.consumer))
    theirs = client.get("/api/v1/me", headers={**other, "If-None-Match": me.headers["etag"]})
    assert theirs.status_code == 200
