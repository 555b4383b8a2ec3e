"""Authentication hardening: throttling, token expiry and confusion, refresh rotation and reuse, password policy.

Already covered elsewhere and not repeated here (tests/backend/auth/test_auth.py):
``test_growing_delay_after_failed_logins`` and ``test_unknown_usernames_are_throttled_too`` (login throttling),
``test_expired_and_forged_access_tokens_are_rejected`` (an expired or foreign-key access token is 401),
``test_refresh_rotates_and_reuse_revokes_family`` (reusing a rotated refresh token revokes the family),
``test_password_policy`` (a short password at registration). This module adds what those leave open.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col

from backend.auth.models import RefreshToken, Role
from backend.config import get_settings
from backend.db import utcnow
from tests.factories import COUNTY_A, PASSWORD, make_account


def _token(client: TestClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_throttled_answers_do_not_tell_which_usernames_exist(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    answers = {}
    for name in (staff.username, "no-such-user-anywhere"):
        failures = [
            _token(client, name, "wrong-password-1") for _ in range(get_settings().login_free_failures)
        ]
        assert {r.status_code for r in failures} == {401}
        assert len({r.json()["error"]["code"] for r in failures}) == 1
        blocked = _token(client, name, "wrong-password-1")
        answers[name] = (
            blocked.status_code,
            blocked.json()["error"]["code"],
            failures[0].json()["error"]["code"],
        )
    assert answers[staff.username] == answers["no-such-user-anywhere"]
    assert answers[staff.username][0] == 429


def test_throttle_is_per_account_not_bypassed_by_letter_case(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A, username="case_sensitive_staff")
    for _ in range(get_settings().login_free_failures):
        assert _token(client, staff.username, "wrong-password-1").status_code == 401
    # The same account under another spelling either is another (unknown) name or shares the throttle:
    # never a way around the delay into the real account.
    variant = _token(client, staff.username.upper(), PASSWORD)
    assert variant.status_code in (401, 429)
    assert _token(client, staff.username, PASSWORD).status_code == 429


def _b64(part: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def test_access_token_confusions_are_401(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    pair = _token(client, staff.username).json()
    secret = get_settings().secret_key
    now = int(time.time())
    claims = {"sub": str(staff.id), "role": "admin", "typ": "access", "iat": now, "exp": now + 600}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    tampered_head, _payload, signature = pair["access_token"].split(".")
    tampered = f"{tampered_head}.{_b64(claims)}.{signature}"  # role raised, signature of the old payload
    for bad in (
        unsigned,
        tampered,
        pair["refresh_token"],  # a refresh token is not an access token
        jwt.encode({**claims, "typ": "refresh"}, secret, "HS256"),
        jwt.encode({**claims, "exp": now - 1}, secret, "HS256"),  # expired a second ago
        jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, "HS256"),  # never expires
        "",
        "not-a-token",
    ):
        resp = client.get("/api/v1/me", headers={"Authorization": f"Bearer {bad}"})
        assert resp.status_code == 401, (bad[:40], resp.status_code, resp.text)
        assert set(resp.json()) == {"error"}
        assert resp.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


def test_expired_refresh_token_is_refused(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    pair = _token(client, staff.username).json()
    session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.account_id) == staff.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    session.flush()
    resp = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "refresh_token_expired", resp.text


def test_reuse_revokes_every_descendant_and_spares_other_sessions(
    client: TestClient, session: Session
) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    laptop = _token(client, staff.username).json()
    phone = _token(client, staff.username).json()  # another sign-in: another family
    tokens = [laptop["refresh_token"]]
    for _ in range(3):
        resp = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens[-1]})
        assert resp.status_code == 200
        tokens.append(resp.json()["refresh_token"])
    stolen = tokens[1]  # rotated long ago: an attacker replays it
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": stolen}).status_code == 401
    for token in tokens:
        assert client.post("/api/v1/auth/refresh", json={"refresh_token": token}).status_code == 401
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}).status_code == 200
    )


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Short-1", "too_short"),
        ("onlyletters-and-dashes", "needs_letters_and_digits"),
        ("1234567890123", "needs_letters_and_digits"),
        ("Newcitizen2026-x", "contains_username"),
    ],
)
def test_password_policy_problems_are_named(client: TestClient, password: str, problem: str) -> None:
    resp = client.post("/api/v1/auth/register", json={"username": "newcitizen2026", "password": password})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "weak_password", resp.text
    assert problem in resp.json()["error"]["details"]["problems"]


def test_overlong_password_is_refused_before_hashing(client: TestClient) -> None:
    resp = client.post("/api/v1/auth/register", json={"username": "longpass", "password": "a1" * 5000})
    assert resp.status_code == 422
