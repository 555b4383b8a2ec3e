"""The in-app inbox (paged, newest first, unread count, read marks) and notification preferences."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Account, Role
from backend.notices.models import InboxNotification
from tests.factories import login, make_account


def _entry(session: Session, account: Account, n: int, *, read: bool = False) -> InboxNotification:
    from backend.db import utcnow

    row = InboxNotification(
        recipient_id=account.id or 0,
        kind="verification_due",
        category="verification",
        locale="zh-CN",
        title=f"标题 {n}",
        body=f"正文 {n}",
        deep_link=f"gongping://instruments/{n}",
        data={"kind": "verification_due", "category": "verification", "link": f"gongping://instruments/{n}"},
        dedupe_key=f"inbox:test-{account.id}-{n}",
        read_at=utcnow() if read else None,
    )
    session.add(row)
    session.flush()
    return row


def test_inbox_pages_newest_first_with_unread_count(client: TestClient, session: Session) -> None:
    me, other = make_account(session, Role.consumer), make_account(session, Role.consumer)
    for n in range(5):
        _entry(session, me, n, read=n == 0)
    _entry(session, other, 99)
    headers = login(client, me)
    page = client.get("/api/v1/me/notifications", params={"limit": 2}, headers=headers).json()
    assert page["total"] == 5 and page["unread"] == 4 and page["limit"] == 2
    assert [i["title"] for i in page["items"]] == ["标题 4", "标题 3"]
    second = client.get("/api/v1/me/notifications", params={"limit": 2, "offset": 4}, headers=headers).json()
    assert [i["title"] for i in second["items"]] == ["标题 0"] and second["items"][0]["read_at"] is not None
    unread = client.get("/api/v1/me/notifications", params={"unread_only": True}, headers=headers).json()
    assert unread["total"] == 4 and all(i["read_at"] is None for i in unread["items"])
    assert page["items"][0]["deep_link"] == "gongping://instruments/4"
    assert page["items"][0]["data"]["kind"] == "verification_due"


def test_mark_one_and_all_read(client: TestClient, session: Session) -> None:
    me, other = make_account(session, Role.operator), make_account(session, Role.operator)
    rows = [_entry(session, me, n) for n in range(3)]
    theirs = _entry(session, other, 7)
    headers = login(client, me)
    resp = client.post(f"/api/v1/me/notifications/{rows[1].id}/read", headers=headers)
    assert resp.status_code == 200 and resp.json()["read_at"] is not None
    again = client.post(f"/api/v1/me/notifications/{rows[1].id}/read", headers=headers)
    assert again.json()["read_at"] == resp.json()["read_at"]  # idempotent: the first read time stays
    assert client.post(f"/api/v1/me/notifications/{theirs.id}/read", headers=headers).status_code == 404
    assert client.post("/api/v1/me/notifications/424242/read", headers=headers).status_code == 404
    result = client.post("/api/v1/me/notifications/read-all", headers=headers).json()
    assert result == {"updated": 2, "unread": 0}
    session.refresh(theirs)
    assert theirs.read_at is None


def test_inbox_needs_sign_in(client: TestClient) -> None:
    assert client.get("/api/v1/me/notifications").status_code == 401


def test_bad_paging_is_422(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.consumer))
    assert client.get("/api/v1/me/notifications", params={"limit": 0}, headers=headers).status_code == 422
    assert client.get("/api/v1/me/notifications", params={"offset": -1}, headers=headers).status_code == 422
    assert (
        client.get("/api/v1/me/notifications", params={"unread_only": "maybe"}, headers=headers).status_code
        == 422
    )


def test_preferences_list_every_category_and_store_mutes(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.operator))
    prefs = client.get("/api/v1/me/notification-preferences", headers=headers).json()
    assert prefs["muted_categories"] == []
    by_name = {c["category"]: c for c in prefs["categories"]}
    # An operator is offered the categories of the messages operators receive.
    assert set(by_name) == {"verification", "enforcement", "rating", "correction", "publication"}
    assert (
        by_name["verification"]["mutable"] is True and by_name["verification"]["label"] == "计量器具检定提醒"
    )
    assert by_name["enforcement"]["mutable"] is False and by_name["rating"]["mutable"] is False
    assert by_name["publication"] == {
        "category": "publication",
        "label": "诚信信息公开与撤下",
        "mutable": False,
        "muted": False,
    }
    resp = client.put(
        "/api/v1/me/notification-preferences",
        json={"muted_categories": ["verification", "verification"]},
        headers={**headers, "Accept-Language": "en"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["muted_categories"] == ["verification"]
    labels = {c["category"]: c["label"] for c in resp.json()["categories"]}
    assert labels["verification"] == "instrument verification reminders"
    stored = client.get("/api/v1/me/notification-preferences", headers=headers).json()
    assert stored["muted_categories"] == ["verification"]
    cleared = client.put(
        "/api/v1/me/notification-preferences", json={"muted_categories": []}, headers=headers
    )
    assert cleared.json()["muted_categories"] == []


def test_muting_a_required_category_is_422_in_both_languages(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.operator))
    body = {"muted_categories": ["verification", "enforcement"]}
    zh = client.put("/api/v1/me/notification-preferences", json=body, headers=headers)
    assert zh.status_code == 422
    assert zh.json()["error"]["code"] == "category_required"
    assert (
        "约谈与违法认定通知" in zh.json()["error"]["message"] and "不能关闭" in zh.json()["error"]["message"]
    )
    assert zh.json()["error"]["details"] == {"required": ["enforcement"]}
    en = client.put("/api/v1/me/notification-preferences?lang=en", json=body, headers=headers)
    assert "legally required" in en.json()["error"]["message"]
    # Nothing was stored.
    assert client.get("/api/v1/me/notification-preferences", headers=headers).json()["muted_categories"] == []


def test_categories_follow_the_role(client: TestClient, session: Session) -> None:
    consumer = login(client, make_account(session, Role.consumer_device))
    prefs = client.get("/api/v1/me/notification-preferences", headers=consumer).json()
    assert [c["category"] for c in prefs["categories"]] == ["complaint"]
    staff = login(client, make_account(session, Role.staff, "330106"))
    prefs = client.get("/api/v1/me/notification-preferences", headers=staff).json()
    assert prefs["categories"] == [
        {"category": "case_work", "label": "案件办理", "mutable": True, "muted": False}
    ]


def test_unknown_category_and_bad_shapes_are_422(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.consumer))
    for category in ("marketing", "verification"):  # the second exists, but not for a consumer
        unknown = client.put(
            "/api/v1/me/notification-preferences", json={"muted_categories": [category]}, headers=headers
        )
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_category"
    for body in ({"muted_categories": "verification"}, {"muted_categories": [""]}, {}, {"muted": []}):
        assert (
            client.put("/api/v1/me/notification-preferences", json=body, headers=headers).status_code == 422
        )
