"""Health reports the database and the broker."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_healthz_reports_database_and_broker(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["database"]["status"] == "ok"
    assert body["broker"]["status"] == "ok"
    assert body["status"] == "ok"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-request-id"]


def test_unknown_route_uses_error_shape(client: TestClient) -> None:
    resp = client.get("/nope", headers={"Accept-Language": "en"})
    assert resp.status_code == 404
    assert resp.json() == {"error": {"code": "not_found", "message": "not found", "details": None}}
    zh = client.get("/nope")
    assert zh.json()["error"]["message"] == "资源不存在"
