"""The operator file's "notice reach" section: each required notice with its push, inbox read and SMS, the
follow-up badge when nothing reached the operator, paging, the audited read, and county B kept out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.auth.models import Account, Role
from backend.notices.models import InboxNotification, PushDelivery, PushStatus
from backend.notices.sms.models import SmsMessage, SmsStatus
from backend.notices.sms.sweep import sms_dedupe_key
from backend.operators.models import Operator
from tests.backend.cases.conftest import Bureaus
from tests.backend.workbench.conftest import wb_login
from tests.factories import COUNTY_A, login, make_account, make_device, make_operator

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 Beijing time


def _notice(
    session: Session, user: Account, event_id: int, kind: str, title: str, *, read_at: datetime | None = None
) -> InboxNotification:
    entry = InboxNotification(
        recipient_id=user.id or 0,
        event_id=event_id,
        kind=kind,
        category="supervision",
        locale="zh-CN",
        title=title,
        body="…",
        texts={"zh-CN": {"title": title, "body": "…"}, "en": {"title": f"EN {title}", "body": "…"}},
        deep_link="",
        data={},
        dedupe_key=f"inbox:{event_id}:{user.id}",
        created_at=T0,
        read_at=read_at,
    )
    session.add(entry)
    session.flush()
    return entry


def _sms(session: Session, operator: Operator, event_id: int, kind: str, **fields: object) -> None:
    session.add(
        SmsMessage(
            dedupe_key=sms_dedupe_key(event_id, kind, operator.id or 0),
            event_id=event_id,
            kind=kind,
            operator_id=operator.id or 0,
            jurisdiction_code=operator.jurisdiction_code,
            trigger="unread",
            phone="13812341234",
            phone_masked="138****1234",
            next_attempt_at=T0,
            **fields,
        )
    )


def _world(session: Session, bureaus: Bureaus) -> tuple[Operator, Operator]:
    """The market: an interview summons pushed and read. A shop: an overdue verification nobody read, SMS not
    reached."""
    market, user = bureaus.market, bureaus.market_user
    read = _notice(session, user, 9001, "interview_scheduled", "约谈通知书", read_at=T0 + timedelta(hours=2))
    device = make_device(session, user)
    session.add(
        PushDelivery(
            dedupe_key="push:9001:1",
            event_id=9001,
            recipient_id=user.id or 0,
            device_id=device.id or 0,
            inbox_id=read.id,
            kind="interview_scheduled",
            category="supervision",
            title="约谈通知书",
            body="…",
            collapse_key="c",
            ttl_seconds=3600,
            priority="high",
            status=PushStatus.sent,
            next_attempt_at=T0,
            expires_at=T0 + timedelta(days=1),
            sent_at=T0 + timedelta(minutes=1),
        )
    )
    shop = make_operator(session, bureaus.county_a, name="文三路眼镜店")
    shop_user = make_account(session, Role.operator, operator_id=shop.id)
    _notice(session, shop_user, 9002, "verification_overdue", "检定逾期告知")
    _sms(
        session,
        shop,
        9002,
        "verification_overdue",
        status=SmsStatus.not_reached,
        reason="delivery_failed",
        sent_at=T0 + timedelta(hours=4),
    )
    session.commit()
    return market, shop


def _last_reach_read(session: Session) -> AuditEntry | None:
    """The newest audited read of the notice reach."""
    session.expire_all()
    return session.exec(
        select(AuditEntry)
        .where(col(AuditEntry.action) == "notice_reach.list")
        .order_by(col(AuditEntry.seq).desc())
    ).first()


def test_reach_shows_each_channel_and_the_follow_up_badge(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    market, shop = _world(session, bureaus)
    wb_login(client, bureaus.county_a)
    page = client.get(f"/workbench/operators/{market.id}")
    assert page.status_code == 200
    section = page.text[page.text.index('id="h-reach"') : page.text.index('id="h-interviews"')]
    assert "通知送达" in section and "约谈通知书" in section and "约谈通知" in section
    assert "已推送（推送服务已接收）" in section and "2026-11-02 09:01" in section  # push, Beijing time
    assert "2026-11-02 11:00" in section  # read in the app
    assert "未送达，请电话或书面通知" not in section and "检定逾期告知" not in section  # not the shop's
    shop_page = client.get(f"/workbench/operators/{shop.id}").text
    section = shop_page[shop_page.index('id="h-reach"') : shop_page.index('id="h-interviews"')]
    assert "检定逾期告知" in section and "无推送设备" in section and "未读" in section
    assert "未送达" in section and "delivery_failed" in section and "2026-11-02 13:00" in section
    assert "未送达，请电话或书面通知" in section
    # Only the masked number, never the whole one.
    assert "138****1234" in section and "13812341234" not in shop_page
    english = client.get(f"/workbench/operators/{shop.id}", params={"lang": "en"}).text
    assert (
        "Notice reach" in english
        and "EN 检定逾期告知" in english
        and "Not reached: phone or write" in english
    )
    # County B's staff see nothing of county A's operator.
    wb_login(client, bureaus.county_b)
    refused = client.get(f"/workbench/operators/{shop.id}")
    assert refused.status_code == 404 and "检定逾期告知" not in refused.text


def test_reach_read_is_audited_as_the_api_audits_it_and_auditors_read_it(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    _, shop = _world(session, bureaus)
    auditor = make_account(session, Role.auditor, COUNTY_A)
    session.commit()
    wb_login(client, auditor)
    page = client.get(f"/workbench/operators/{shop.id}")
    assert page.status_code == 200 and "未送达，请电话或书面通知" in page.text
    entry = _last_reach_read(session)
    assert entry is not None and entry.after is not None
    assert entry.actor_id == auditor.id and entry.entity_id == str(shop.id)
    assert entry.after == {
        "filters": {"operator_id": shop.id, "follow_up": False},
        "notices": [[9002, "verification_overdue", shop.id]],
    }


def test_reach_pages_newest_first(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    user = bureaus.market_user
    for n in range(21):
        _notice(session, user, 9100 + n, "record_published", f"公示{n:02d}")
    session.commit()
    wb_login(client, bureaus.county_a)
    first = client.get(f"/workbench/operators/{bureaus.market.id}").text
    assert "公示20" in first and "公示01" in first and "公示00" not in first
    assert first.index("公示20") < first.index("公示01")
    more = first[first.index("?reach_before=") :].split('"', 1)[0].replace("&amp;", "&")
    older = client.get(f"/workbench/operators/{bureaus.market.id}{more}").text
    assert "公示00" in older and "公示01" not in older and "回到最新" in older


def test_the_api_audits_the_same_read(client: TestClient, session: Session, bureaus: Bureaus) -> None:
    _, shop = _world(session, bureaus)
    headers = login(client, bureaus.county_a)
    resp = client.get("/api/v1/notice-reach", params={"operator_id": shop.id}, headers=headers)
    assert resp.status_code == 200
    assert [(i["kind"], i["follow_up"]) for i in resp.json()["items"]] == [("verification_overdue", True)]
    entry = _last_reach_read(session)
    assert entry is not None and entry.actor_id == bureaus.county_a.id
    assert entry.after == {
        "filters": {"operator_id": shop.id, "follow_up": False},
        "notices": [[9002, "verification_overdue", shop.id]],
    }
