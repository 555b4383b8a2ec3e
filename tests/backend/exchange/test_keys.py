"""Partner-department keys: issue, list, revoke, rotate, expiry; who may manage them; the secret shown once."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.exchange import service
from backend.exchange.models import ExchangeApiKey
from tests.backend.exchange.conftest import IssueKey, World, feed, key_json
from tests.factories import CITY_A, COUNTY_A, COUNTY_B, OTHER_PROVINCE_COUNTY, login, make_account


def test_a_new_key_is_shown_once_and_stored_only_as_a_keyed_hash(
    client: TestClient, session: Session, admin_headers: dict[str, str], issue_key: IssueKey
) -> None:
    issued = issue_key()
    raw = issued["api_key"]
    assert raw.startswith("gpx_") and raw.startswith(issued["key_prefix"])
    assert issued["status"] == "active" and issued["jurisdiction_codes"] == [COUNTY_A]
    stored = session.get(ExchangeApiKey, issued["id"])
    assert stored is not None
    lookup_id, secret = raw.removeprefix("gpx_").split("_", 1)
    assert (
        stored.lookup_id == lookup_id and raw not in stored.secret_hash and secret not in stored.secret_hash
    )
    assert stored.secret_hash == service.secret_hash(lookup_id, secret)

    listed = client.get("/api/v1/exchange/keys", headers=admin_headers).json()
    one = client.get(f"/api/v1/exchange/keys/{issued['id']}", headers=admin_headers).json()
    for shown in (next(k for k in listed["items"] if k["id"] == issued["id"]), one):
        assert "api_key" not in shown and "secret_hash" not in shown and secret not in str(shown)
    audit = session.exec(
        select(AuditEntry).where(
            col(AuditEntry.action) == "exchange_key.create", col(AuditEntry.entity_id) == str(issued["id"])
        )
    ).one()
    assert secret not in str(audit.after) and "secret_hash" not in (audit.after or {})


def test_staff_issue_keys_only_inside_their_jurisdiction(
    client: TestClient, staff_headers: dict[str, str], other_staff_headers: dict[str, str]
) -> None:
    mine = client.post("/api/v1/exchange/keys", json=key_json(), headers=staff_headers)
    assert mine.status_code == 201, mine.text
    for codes in ([COUNTY_B], [CITY_A], [COUNTY_A, COUNTY_B]):
        resp = client.post(
            "/api/v1/exchange/keys", json=key_json(jurisdiction_codes=codes), headers=staff_headers
        )
        assert resp.status_code == 403, codes
        assert resp.json()["error"]["code"] == "forbidden"
    key_id = mine.json()["id"]
    # Staff of the next county neither see nor touch it, even by id.
    assert client.get(f"/api/v1/exchange/keys/{key_id}", headers=other_staff_headers).status_code == 404
    listed = client.get("/api/v1/exchange/keys", headers=other_staff_headers).json()
    assert key_id not in [k["id"] for k in listed["items"]]
    revoke = client.post(
        f"/api/v1/exchange/keys/{key_id}/revoke", json={"reason": "x"}, headers=other_staff_headers
    )
    assert revoke.status_code == 404
    assert client.get(f"/api/v1/exchange/keys/{key_id}", headers=staff_headers).status_code == 200


def test_a_key_spanning_two_provinces_is_managed_by_admins_only(
    client: TestClient, session: Session, world: World, issue_key: IssueKey, staff_headers: dict[str, str]
) -> None:
    issued = issue_key(jurisdiction_codes=[COUNTY_A, OTHER_PROVINCE_COUNTY])
    assert issued["jurisdiction_codes"] == sorted([COUNTY_A, OTHER_PROVINCE_COUNTY])
    assert client.get(f"/api/v1/exchange/keys/{issued['id']}", headers=staff_headers).status_code == 404
    city_staff = make_account(session, Role.staff, CITY_A)
    session.commit()
    city_key = issue_key(jurisdiction_codes=[COUNTY_A, COUNTY_B])
    headers = login(client, city_staff)
    assert client.get(f"/api/v1/exchange/keys/{city_key['id']}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/exchange/keys/{issued['id']}", headers=headers).status_code == 404


@pytest.mark.parametrize("role", [Role.department, Role.operator, Role.supervisor, Role.consumer])
def test_other_roles_cannot_manage_keys_or_read_the_log(
    client: TestClient, session: Session, world: World, issue_key: IssueKey, role: Role
) -> None:
    issued = issue_key()
    account = make_account(
        session,
        role,
        COUNTY_A if role is Role.supervisor else None,
        operator_id=world.operator.id if role is Role.operator else None,
    )
    session.commit()
    headers = login(client, account)
    calls = [
        client.post("/api/v1/exchange/keys", json=key_json(), headers=headers),
        client.get("/api/v1/exchange/keys", headers=headers),
        client.get(f"/api/v1/exchange/keys/{issued['id']}", headers=headers),
        client.post(f"/api/v1/exchange/keys/{issued['id']}/revoke", json={"reason": "x"}, headers=headers),
        client.post(f"/api/v1/exchange/keys/{issued['id']}/rotate", json={}, headers=headers),
        client.get("/api/v1/exchange/read-log", headers=headers),
    ]
    assert [c.status_code for c in calls] == [403] * len(calls)
    assert client.get("/api/v1/exchange/keys").status_code == 401


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"jurisdiction_codes": ["999999"]}, "unknown_jurisdiction"),
        ({"jurisdiction_codes": ["3301"]}, "validation_error"),
        ({"jurisdiction_codes": []}, "validation_error"),
        ({"fields": ["class_reasons"]}, "validation_error"),
        ({"fields": ["record_summary", "class"]}, "validation_error"),
        ({"fields": ["complainant_identity"]}, "validation_error"),
        ({"fields": []}, "validation_error"),
        ({"expires_at": "2020-01-01T00:00:00+00:00"}, "invalid_expiry"),
        ({"expires_at": (datetime.now(UTC) + timedelta(days=800)).isoformat()}, "invalid_expiry"),
        ({"expires_at": "2030-01-01T00:00:00"}, "validation_error"),
        ({"name": ""}, "validation_error"),
        ({"owner": "me"}, "validation_error"),
    ],
)
def test_bad_key_requests_are_refused_and_change_nothing(
    client: TestClient,
    session: Session,
    admin_headers: dict[str, str],
    overrides: dict[str, object],
    code: str,
) -> None:
    before = len(session.exec(select(ExchangeApiKey)).all())
    resp = client.post("/api/v1/exchange/keys", json=key_json(**overrides), headers=admin_headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == code
    assert len(session.exec(select(ExchangeApiKey)).all()) == before


def test_a_revoked_key_is_refused_and_cannot_be_revoked_twice(
    client: TestClient, session: Session, admin_headers: dict[str, str], issue_key: IssueKey
) -> None:
    issued = issue_key()
    assert feed(client, issued["api_key"]).status_code == 200
    resp = client.post(
        f"/api/v1/exchange/keys/{issued['id']}/revoke", json={"reason": "合作协议终止"}, headers=admin_headers
    )
    assert resp.status_code == 200 and resp.json()["status"] == "revoked"
    assert resp.json()["revoke_reason"] == "合作协议终止"
    denied = feed(client, issued["api_key"])
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "invalid_api_key",
        "message": "共享密钥无效、已吊销或已过期",
        "details": {"reason": "revoked"},
    }
    again = client.post(
        f"/api/v1/exchange/keys/{issued['id']}/revoke", json={"reason": "x"}, headers=admin_headers
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "api_key_inactive"
    listed = client.get("/api/v1/exchange/keys", headers=admin_headers).json()["items"]
    assert issued["id"] not in [k["id"] for k in listed]
    everything = client.get("/api/v1/exchange/keys?include_inactive=true", headers=admin_headers).json()[
        "items"
    ]
    assert issued["id"] in [k["id"] for k in everything]
    assert session.exec(
        select(AuditEntry).where(
            col(AuditEntry.action) == "exchange_key.revoke", col(AuditEntry.entity_id) == str(issued["id"])
        )
    ).first()


def test_an_expired_key_is_refused(client: TestClient, session: Session, issue_key: IssueKey) -> None:
    issued = issue_key()
    key = session.get(ExchangeApiKey, issued["id"])
    assert key is not None
    key.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    session.add(key)
    session.commit()
    resp = feed(client, issued["api_key"], lang="en")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "invalid_api_key"
    assert resp.json()["error"]["message"] == "invalid, revoked or expired API key"
    assert resp.json()["error"]["details"] == {"reason": "expired"}


def test_unknown_malformed_and_missing_keys(client: TestClient, issue_key: IssueKey) -> None:
    issued = issue_key()
    raw = issued["api_key"]
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    unknown = "gpx_" + "a" * 12 + "_" + secrets.token_urlsafe(32)
    for bad in (forged, unknown, "nonsense", raw + "x", ("gpx_" + "\u6c34" * 12).encode(), "x" * 5000):
        resp = client.get("/api/v1/feed/changes", headers={"X-Api-Key": bad})
        assert resp.status_code == 403, bad
        assert resp.json()["error"]["code"] == "invalid_api_key"
        assert resp.json()["error"]["details"] is None
    missing = client.get("/api/v1/feed/changes")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "not_authenticated"
    bearer = client.get("/api/v1/feed/changes", headers={"Authorization": f"Bearer {raw}"})
    assert bearer.status_code == 401
    assert client.get("/api/v1/feed/changes", headers={"Authorization": f"ApiKey {raw}"}).status_code == 200


def test_rotation_replaces_the_secret_and_stops_the_old_key(
    client: TestClient, admin_headers: dict[str, str], issue_key: IssueKey
) -> None:
    issued = issue_key(fields=["record_kind"])
    resp = client.post(f"/api/v1/exchange/keys/{issued['id']}/rotate", json={}, headers=admin_headers)
    assert resp.status_code == 201, resp.text
    new = resp.json()
    assert new["api_key"] != issued["api_key"] and new["rotated_from_id"] == issued["id"]
    assert (new["department"], new["jurisdiction_codes"], new["fields"], new["expires_at"]) == (
        issued["department"],
        issued["jurisdiction_codes"],
        issued["fields"],
        issued["expires_at"],
    )
    assert feed(client, issued["api_key"]).status_code == 403
    assert feed(client, new["api_key"]).status_code == 200
    old = client.get(f"/api/v1/exchange/keys/{issued['id']}", headers=admin_headers).json()
    assert old["status"] == "revoked" and old["revoke_reason"] == "rotated"


def test_rotation_with_a_grace_period_keeps_the_old_key_working_meanwhile(
    client: TestClient, admin_headers: dict[str, str], issue_key: IssueKey
) -> None:
    issued = issue_key()
    expiry = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    resp = client.post(
        f"/api/v1/exchange/keys/{issued['id']}/rotate",
        json={"grace_hours": 24, "expires_at": expiry},
        headers=admin_headers,
    )
    assert resp.status_code == 201
    assert feed(client, issued["api_key"]).status_code == 200
    assert feed(client, resp.json()["api_key"]).status_code == 200
    assert (
        client.get(f"/api/v1/exchange/keys/{issued['id']}", headers=admin_headers).json()["status"]
        == "active"
    )
    # Stopping the old key early is still possible.
    revoke = client.post(
        f"/api/v1/exchange/keys/{issued['id']}/revoke", json={"reason": "已切换"}, headers=admin_headers
    )
    assert revoke.status_code == 200
    assert feed(client, issued["api_key"]).status_code == 403
    bad = client.post(
        f"/api/v1/exchange/keys/{issued['id']}/rotate", json={"grace_hours": 500}, headers=admin_headers
    )
    assert bad.status_code == 422


def test_staff_rotate_and_revoke_keys_of_their_own_jurisdiction(
    client: TestClient, staff_headers: dict[str, str]
) -> None:
    issued = client.post("/api/v1/exchange/keys", json=key_json(), headers=staff_headers).json()
    rotated = client.post(f"/api/v1/exchange/keys/{issued['id']}/rotate", json={}, headers=staff_headers)
    assert rotated.status_code == 201
    revoke = client.post(
        f"/api/v1/exchange/keys/{rotated.json()['id']}/revoke", json={"reason": "停用"}, headers=staff_headers
    )
    assert revoke.status_code == 200 and revoke.json()["status"] == "revoked"
    assert client.get("/api/v1/exchange/keys", headers=staff_headers).json()["total"] == 0
