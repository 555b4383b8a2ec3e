"""Workbench sign-in: server-side sessions, cookie flags, CSRF, throttling, idle timeout, other roles' 403."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.auth.models import LoginThrottle, Role
from backend.auth.throttle import pair_key
from backend.db import utcnow
from backend.workbench import auth
from backend.workbench.models import WorkbenchSession
from backend.workbench.render import CONTENT_SECURITY_POLICY
from tests.backend.cases.conftest import Bureaus
from tests.backend.workbench.conftest import form_token, wb_login
from tests.factories import COUNTY_A, make_account


def _sessions(session: Session, account_id: int) -> list[WorkbenchSession]:
    session.expire_all()
    return list(
        session.exec(select(WorkbenchSession).where(col(WorkbenchSession.account_id) == account_id)).all()
    )


def test_anonymous_is_sent_to_the_sign_in_form(client: TestClient) -> None:
    resp = client.get("/workbench/cases/1?x=1", follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/workbench/login?next=%2Fworkbench%2Fcases%2F1%3Fx%3D1"
    page = client.get("/workbench/login")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "<style" not in page.text and "<script>" not in page.text and " style=" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert 'lang="zh-CN"' in page.text and "工作人员登录" in page.text


def test_staff_sign_in_opens_a_server_side_session(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    page = client.get("/workbench/login?next=/workbench/cases/5")
    resp = client.post(
        "/workbench/login",
        data={
            "username": bureaus.county_a.username,
            "password": "Test-password-2026",
            "login_token": form_token(page.text),
            "next": "/workbench/cases/5",
        },
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/workbench/cases/5"
    cookie = next(v for k, v in resp.headers.multi_items() if k == "set-cookie" and v.startswith("gp_wb="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    rows = _sessions(session, bureaus.county_a.id or 0)
    assert len(rows) == 1
    # Only the digest is stored: the cookie's value is not in the table.
    assert rows[0].id_hash != client.cookies.get("gp_wb") and len(rows[0].id_hash) == 64
    queue = client.get("/workbench/")
    assert queue.status_code == 200 and "案件列表" in queue.text


def test_the_session_cookie_is_secure_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    assert auth.cookie_name() == "gp_wb"
    monkeypatch.setattr(auth, "_secure", lambda: True)
    assert auth.cookie_name() == "__Host-gp_wb"


def test_a_next_outside_the_workbench_is_ignored(client: TestClient, bureaus: Bureaus) -> None:
    page = client.get("/workbench/login")
    resp = client.post(
        "/workbench/login",
        data={
            "username": bureaus.county_a.username,
            "password": "Test-password-2026",
            "login_token": form_token(page.text),
            "next": "//evil.example/workbench/",
        },
        follow_redirects=False,
    )
    assert resp.headers["location"] == "/workbench/"


def test_wrong_password_is_counted_like_the_api(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    page = client.get("/workbench/login")
    resp = client.post(
        "/workbench/login",
        data={
            "username": bureaus.county_a.username,
            "password": "wrong-1234567",
            "login_token": form_token(page.text),
        },
    )
    assert resp.status_code == 401 and "用户名或密码错误" in resp.text
    session.expire_all()
    throttle = session.get(LoginThrottle, pair_key(bureaus.county_a.username, "testclient"))
    assert throttle is not None and throttle.failures == 1
    assert _sessions(session, bureaus.county_a.id or 0) == []


def test_throttled_sign_in_says_when_to_retry(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    session.add(
        LoginThrottle(
            key=pair_key(bureaus.county_a.username, "testclient"),
            failures=9,
            blocked_until=utcnow() + timedelta(minutes=5),
        )
    )
    session.commit()
    page = client.get("/workbench/login?lang=en")
    resp = client.post(
        "/workbench/login?lang=en",
        data={
            "username": bureaus.county_a.username,
            "password": "Test-password-2026",
            "login_token": form_token(page.text),
        },
    )
    assert resp.status_code == 429 and "too many failed sign-ins" in resp.text


def test_sign_in_without_the_form_token_is_refused(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    client.get("/workbench/login")
    resp = client.post(
        "/workbench/login",
        data={
            "username": bureaus.county_a.username,
            "password": "Test-password-2026",
            "login_token": "forged",
        },
    )
    assert resp.status_code == 400 and "表单已过期" in resp.text
    assert _sessions(session, bureaus.county_a.id or 0) == []


def test_other_roles_get_a_clear_403(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    supervisor = make_account(session, Role.supervisor, COUNTY_A)
    session.commit()
    for account in (bureaus.market_user, supervisor):
        client.cookies.clear()
        page = client.get("/workbench/login")
        resp = client.post(
            "/workbench/login",
            data={
                "username": account.username,
                "password": "Test-password-2026",
                "login_token": form_token(page.text),
            },
        )
        assert resp.status_code == 403 and "工作台仅供市场监管部门工作人员" in resp.text
        assert _sessions(session, account.id or 0) == []
        assert client.get("/workbench/", follow_redirects=False).status_code == 303


def test_idle_sessions_end(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    wb_login(client, bureaus.county_a)
    row = _sessions(session, bureaus.county_a.id or 0)[0]
    row.last_seen_at = utcnow() - auth.IDLE_TIMEOUT - timedelta(seconds=5)
    session.add(row)
    session.commit()
    resp = client.get("/workbench/", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/workbench/login")
    assert _sessions(session, bureaus.county_a.id or 0) == []


def test_activity_keeps_the_session(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    wb_login(client, bureaus.county_a)
    row = _sessions(session, bureaus.county_a.id or 0)[0]
    row.last_seen_at = utcnow() - auth.IDLE_TIMEOUT + timedelta(minutes=1)
    session.add(row)
    session.commit()
    assert client.get("/workbench/").status_code == 200
    assert utcnow() - auth._aware(_sessions(session, bureaus.county_a.id or 0)[0].last_seen_at) < timedelta(
        minutes=1
    )


def test_a_session_is_touched_at_most_once_a_minute(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    wb_login(client, bureaus.county_a)
    row = _sessions(session, bureaus.county_a.id or 0)[0]
    recent = utcnow() - auth.TOUCH_EVERY / 2
    row.last_seen_at = recent
    session.add(row)
    session.commit()
    # Within the minute a page view writes nothing; past it, the view is the session's new last use.
    assert client.get("/workbench/").status_code == 200
    assert auth._aware(_sessions(session, bureaus.county_a.id or 0)[0].last_seen_at) == recent
    row = _sessions(session, bureaus.county_a.id or 0)[0]
    row.last_seen_at = utcnow() - auth.TOUCH_EVERY * 2
    session.add(row)
    session.commit()
    assert client.get("/workbench/").status_code == 200
    assert (
        utcnow() - auth._aware(_sessions(session, bureaus.county_a.id or 0)[0].last_seen_at)
        < auth.TOUCH_EVERY
    )


def test_a_deactivated_account_is_signed_out(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    wb_login(client, bureaus.county_a)
    bureaus.county_a.is_active = False
    session.add(bureaus.county_a)
    session.commit()
    assert client.get("/workbench/", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_csrf_token(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    csrf = wb_login(client, bureaus.county_a)
    refused = client.post("/workbench/logout", data={"csrf": "nope"})
    assert refused.status_code == 400
    assert len(_sessions(session, bureaus.county_a.id or 0)) == 1
    resp = client.post("/workbench/logout", data={"csrf": csrf}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/workbench/login"
    assert _sessions(session, bureaus.county_a.id or 0) == []
    assert client.get("/workbench/", follow_redirects=False).status_code == 303


def test_language_switch_is_remembered(client: TestClient, bureaus: Bureaus) -> None:
    wb_login(client, bureaus.county_a)
    resp = client.get("/workbench/lang?to=en&next=/workbench/", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/workbench/"
    page = client.get("/workbench/")
    assert 'lang="en"' in page.text and "Cases" in page.text
    back = client.get("/workbench/lang?to=zh-CN&next=https://evil.example/", follow_redirects=False)
    assert back.headers["location"] == "/workbench/"
    assert 'lang="zh-CN"' in client.get("/workbench/").text


def test_static_files_are_served_with_hashes(client: TestClient) -> None:
    from backend.workbench.render import STATIC_FILES

    css = STATIC_FILES["workbench.css"]
    resp = client.get(f"/workbench/static/workbench.css?v={css.digest}")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/css")
    assert "immutable" in resp.headers["cache-control"]
    assert client.get("/workbench/static/nothing.js").status_code == 404
    assert client.get("/workbench/static/..%2Fauth.py").status_code == 404
