"""Sign-in throttling cannot be turned into a lock-out: delays are per (account, address), an attack across
addresses takes away the free failures, and the owner is told once per attack window."""

from __future__ import annotations

from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.auth.throttle import ATTACK_NOTICE_KIND
from backend.config import get_settings
from backend.notices.models import InboxNotification
from tests.factories import COUNTY_A, PASSWORD, login, make_account

WRONG = "wrong-password-1"


def _from(client: TestClient, address: str) -> TestClient:
    """The same app, called from another address."""
    return TestClient(client.app, client=(address, 50000), raise_server_exceptions=False)


def _token(client: TestClient, username: str, password: str = PASSWORD) -> Response:
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def _notices(session: Session, account: Account) -> list[InboxNotification]:
    return list(
        session.exec(
            select(InboxNotification).where(
                col(InboxNotification.recipient_id) == account.id,
                col(InboxNotification.kind) == ATTACK_NOTICE_KIND,
            )
        ).all()
    )


def test_failures_from_one_address_do_not_refuse_the_owner_elsewhere(
    client: TestClient, session: Session
) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    attacker = _from(client, "198.51.100.7")
    for _ in range(get_settings().login_free_failures):
        assert _token(attacker, staff.username, WRONG).status_code == 401
    # The attacker's address must wait, even with the right password...
    assert _token(attacker, staff.username).status_code == 429
    # ...but the owner's right password from an address that has not failed is answered at once.
    owner = _token(_from(client, "203.0.113.20"), staff.username)
    assert owner.status_code == 200, owner.text


def test_an_attack_across_addresses_loses_its_free_failures(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    threshold = get_settings().login_attack_failures
    for i in range(threshold):
        assert _token(_from(client, f"198.51.100.{i + 1}"), staff.username, WRONG).status_code == 401
    # Under attack, one wrong password from a new address already makes that address wait.
    late = _from(client, "192.0.2.99")
    assert _token(late, staff.username, WRONG).status_code == 401
    blocked = _token(late, staff.username, WRONG)
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "login_throttled"
    # The owner from an address that has not failed still signs in.
    assert _token(_from(client, "203.0.113.20"), staff.username).status_code == 200


def test_the_owner_is_told_once_per_attack_window(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    threshold = get_settings().login_attack_failures
    for i in range(threshold):
        _token(_from(client, f"198.51.100.{i + 1}"), staff.username, WRONG)
    assert _notices(session, staff) == []  # at the threshold, not yet an attack
    for i in range(5):
        _token(_from(client, f"192.0.2.{i + 1}"), staff.username, WRONG)
    notices = _notices(session, staff)
    assert len(notices) == 1, [n.body for n in notices]
    assert notices[0].locale == "zh-CN" and "密码错误" in notices[0].body
    # The owner reads it in the inbox.
    inbox = client.get("/api/v1/me/notifications", headers=login(_from(client, "203.0.113.20"), staff))
    assert inbox.status_code == 200, inbox.text
    assert any(item["kind"] == ATTACK_NOTICE_KIND for item in inbox.json()["items"])


def test_the_notice_is_in_the_owners_language(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    staff.locale = "en"
    session.add(staff)
    session.flush()
    for i in range(get_settings().login_attack_failures + 1):
        _token(_from(client, f"198.51.100.{i + 1}"), staff.username, WRONG)
    [notice] = _notices(session, staff)
    assert notice.locale == "en" and "wrong password" in notice.body


def test_an_attack_on_an_unknown_username_notifies_nobody_and_answers_alike(
    client: TestClient, session: Session
) -> None:
    before = session.exec(
        select(InboxNotification).where(col(InboxNotification.kind) == ATTACK_NOTICE_KIND)
    ).all()
    codes = {
        _token(_from(client, f"198.51.100.{i + 1}"), "nobody-at-all", WRONG).json()["error"]["code"]
        for i in range(get_settings().login_attack_failures + 2)
    }
    assert codes == {"invalid_credentials"}
    after = session.exec(
        select(InboxNotification).where(col(InboxNotification.kind) == ATTACK_NOTICE_KIND)
    ).all()
    assert len(after) == len(before)
