"""The inbox in the reader's language, and polled cheaply with ETag / If-None-Match."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Account, Role
from backend.db import utcnow
from backend.notices.models import InboxNotification
from tests.factories import login, make_account, make_device

TEXTS = {
    "zh-CN": {"title": "投诉已受理", "body": "您的投诉已收到"},
    "en": {"title": "Complaint received", "body": "Your complaint was received"},
}


def _entry(session: Session, account: Account, n: int, *, texts: bool = True) -> InboxNotification:
    row = InboxNotification(
        recipient_id=account.id or 0,
        kind="complaint_received",
        category="complaint",
        locale="zh-CN",
        title=TEXTS["zh-CN"]["title"],
        body=TEXTS["zh-CN"]["body"],
        texts=TEXTS if texts else None,
        deep_link=f"gongping://complaints/{n}",
        data={"kind": "complaint_received", "category": "complaint"},
        dedupe_key=f"inbox:lang-{account.id}-{n}",
    )
    session.add(row)
    session.flush()
    return row


def _titles(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    answer = client.get("/api/v1/me/notifications", headers=headers, params=params)
    assert answer.status_code == 200
    return [item["title"] for item in answer.json()["items"]]


def test_inbox_follows_accept_language_and_lang(client: TestClient, session: Session) -> None:
    me = make_account(session, Role.consumer_device)
    _entry(session, me, 1)
    headers = login(client, me)
    assert _titles(client, headers) == ["投诉已受理"]
    assert _titles(client, {**headers, "Accept-Language": "en-US,en;q=0.9"}) == ["Complaint received"]
    assert _titles(client, headers, lang="en") == ["Complaint received"]
    assert _titles(client, {**headers, "Accept-Language": "en"}, lang="zh-CN") == ["投诉已受理"]
    answer = client.get("/api/v1/me/notifications", headers={**headers, "Accept-Language": "en"})
    assert answer.json()["items"][0]["body"] == "Your complaint was received"


def test_without_a_language_the_registered_device_decides(client: TestClient, session: Session) -> None:
    me = make_account(session, Role.consumer_device)
    row = _entry(session, me, 1)
    make_device(session, me, locale="en")
    headers = login(client, me)
    assert _titles(client, headers) == ["Complaint received"]
    assert _titles(client, {**headers, "Accept-Language": "zh-CN"}) == ["投诉已受理"]
    read = client.post(f"/api/v1/me/notifications/{row.id}/read", headers=headers)
    assert read.status_code == 200 and read.json()["title"] == "Complaint received"


def test_older_entries_keep_the_language_they_were_written_in(client: TestClient, session: Session) -> None:
    me = make_account(session, Role.consumer)
    _entry(session, me, 1, texts=False)
    headers = login(client, me)
    assert _titles(client, {**headers, "Accept-Language": "en"}) == ["投诉已受理"]


def test_inbox_poll_answers_304_until_something_changes(client: TestClient, session: Session) -> None:
    me = make_account(session, Role.consumer)
    row = _entry(session, me, 1)
    headers = login(client, me)
    first = client.get("/api/v1/me/notifications", headers=headers)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    assert "Authorization" in first.headers["vary"]
    same = client.get("/api/v1/me/notifications", headers={**headers, "If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    # Another language or page is another representation.
    english = {**headers, "If-None-Match": etag, "Accept-Language": "en"}
    assert client.get("/api/v1/me/notifications", headers=english).status_code == 200
    paged = client.get(
        "/api/v1/me/notifications", headers={**headers, "If-None-Match": etag}, params={"limit": 5}
    )
    assert paged.status_code == 200
    # Reading an entry changes the unread count: a new ETag.
    row.read_at = utcnow()
    session.add(row)
    session.flush()
    after_read = client.get("/api/v1/me/notifications", headers={**headers, "If-None-Match": etag})
    assert after_read.status_code == 200 and after_read.headers["etag"] != etag
    # A new entry too.
    etag = after_read.headers["etag"]
    _entry(session, me, 2)
    arrived = client.get("/api/v1/me/notifications", headers={**headers, "If-None-Match": etag})
    assert arrived.status_code == 200 and arrived.json()["total"] == 2


def test_inbox_poll_changes_when_a_device_registers_another_language(
    client: TestClient, session: Session
) -> None:
    me = make_account(session, Role.consumer_device)
    _entry(session, me, 1)
    headers = login(client, me)
    first = client.get("/api/v1/me/notifications", headers=headers)
    assert first.json()["items"][0]["title"] == "投诉已受理"
    conditional = {**headers, "If-None-Match": first.headers["etag"]}
    assert client.get("/api/v1/me/notifications", headers=conditional).status_code == 304
    make_device(session, me, locale="en")
    after = client.get("/api/v1/me/notifications", headers=conditional)
    assert after.status_code == 200 and after.json()["items"][0]["title"] == "Complaint received"


def test_a_supervisor_past_the_term_polls_401_not_304(client: TestClient, session: Session) -> None:
    today = date.today()
    supervisor = make_account(
        session, Role.supervisor, term=(today - timedelta(days=30), today + timedelta(days=30))
    )
    _entry(session, supervisor, 1)
    headers = login(client, supervisor)
    etag = client.get("/api/v1/me/notifications", headers=headers).headers["etag"]
    conditional = {**headers, "If-None-Match": etag}
    assert client.get("/api/v1/me/notifications", headers=conditional).status_code == 304
    supervisor.term_ends_on = today - timedelta(days=1)
    session.add(supervisor)
    session.flush()
    refused = client.get("/api/v1/me/notifications", headers=conditional)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
