"""Sign-in, token rotation with reuse detection, throttling, devices, activation, accounts."""

from __future__ import annotations

from datetime import date, timedelta

import jwt
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend.audit.models import AuditEntry
from backend.auth.models import Account, Role
from backend.config import get_settings
from tests.factories import COUNTY_A, COUNTY_B, PASSWORD, login, make_account, make_operator


def _token(client: TestClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_password_flow_returns_bearer_pair(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    resp = _token(client, staff.username)
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer" and body["access_token"] and body["refresh_token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == staff.username


def test_wrong_password_is_401_with_error_shape(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    resp = _token(client, staff.username, "wrong-password-1")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_credentials"


def test_growing_delay_after_failed_logins(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    free = get_settings().login_free_failures
    for _ in range(free):
        assert _token(client, staff.username, "bad-password-9").status_code == 401
    # The last free failure armed a delay: now even the right password must wait.
    blocked = _token(client, staff.username)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["error"]["code"] == "login_throttled"


def test_unknown_usernames_are_throttled_too(client: TestClient) -> None:
    for _ in range(get_settings().login_free_failures):
        assert _token(client, "nobody-here", "x").status_code == 401
    assert _token(client, "nobody-here", "x").status_code == 429


def test_refresh_rotates_and_reuse_revokes_family(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    first = _token(client, staff.username).json()
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    # Replaying the rotated token: detected, and the whole family dies, including the newest token.
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "refresh_token_reused"
    after = client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401


def test_logout_revokes_refresh_token(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    pair = _token(client, staff.username).json()
    assert (
        client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    )
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    )


def test_expired_and_forged_access_tokens_are_rejected(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    secret = get_settings().secret_key
    expired = jwt.encode(
        {"sub": str(staff.id), "role": "staff", "typ": "access", "exp": 1_000_000, "iat": 999_000},
        secret,
        "HS256",
    )
    resp = client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "token_expired"
    forged = jwt.encode(
        {"sub": str(staff.id), "typ": "access", "exp": 9_999_999_999}, "another-secret", "HS256"
    )
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert client.get("/api/v1/me").status_code == 401


def test_device_credential_needs_no_personal_data(client: TestClient, session: Session) -> None:
    resp = client.post("/api/v1/auth/device", json={"locale": "en"})
    assert resp.status_code == 201
    body = resp.json()
    account = session.exec(select(Account).where(Account.username == body["device_id"])).one()
    assert account.role == Role.consumer_device and account.locale == "en"
    again = _token(client, body["device_id"], body["device_secret"])
    assert again.status_code == 200


def test_operator_activation_code_works_once(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    code = client.post(
        f"/api/v1/operators/{operator.id}/activation-codes", headers=login(client, staff)
    ).json()["code"]
    body = {"code": code, "username": "stall.owner", "password": "Stall-owner-2026", "display_name": "店主"}
    created = client.post("/api/v1/auth/activate", json=body)
    assert created.status_code == 201 and created.json()["operator_id"] == operator.id
    again = client.post("/api/v1/auth/activate", json={**body, "username": "stall.owner2"})
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_activation_code"


def test_password_policy(client: TestClient) -> None:
    resp = client.post("/api/v1/auth/register", json={"username": "consumer1", "password": "short"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "weak_password"
    ok = client.post("/api/v1/auth/register", json={"username": "consumer1", "password": "Long-enough-42"})
    assert ok.status_code == 201


def test_staff_appoints_supervisor_in_scope_only(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    headers = login(client, staff)
    body = {
        "username": "volunteer1",
        "password": "Volunteer-2026",
        "role": "supervisor",
        "jurisdiction_code": COUNTY_A,
        "term_starts_on": str(date.today()),
        "term_ends_on": str(date.today() + timedelta(days=365)),
    }
    assert client.post("/api/v1/accounts", json=body, headers=headers).status_code == 201
    outside = client.post(
        "/api/v1/accounts", json={**body, "username": "vol2", "jurisdiction_code": COUNTY_B}, headers=headers
    )
    assert outside.status_code == 403
    admin_only = client.post(
        "/api/v1/accounts", json={**body, "username": "inst1", "role": "institution"}, headers=headers
    )
    assert admin_only.status_code == 403
    audited = session.exec(select(AuditEntry).where(AuditEntry.action == "account.create")).all()
    assert all(entry.after and "password_hash" not in entry.after for entry in audited)


def test_supervisor_outside_term_cannot_sign_in(client: TestClient, session: Session) -> None:
    past = (date.today() - timedelta(days=400), date.today() - timedelta(days=35))
    supervisor = make_account(session, Role.supervisor, COUNTY_A, term=past)
    assert _token(client, supervisor.username).status_code == 401


def test_deactivated_account_loses_access(client: TestClient, session: Session) -> None:
    admin = make_account(session, Role.admin)
    staff = make_account(session, Role.staff, COUNTY_A)
    staff_headers = login(client, staff)
    resp = client.post(f"/api/v1/accounts/{staff.id}/deactivate", headers=login(client, admin))
    assert resp.status_code == 200 and resp.json()["is_active"] is False
    assert client.get("/api/v1/me", headers=staff_headers).status_code == 401
