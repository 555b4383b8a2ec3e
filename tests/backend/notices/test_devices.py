"""Device registration: any signed-in account (anonymous app devices too), re-registration, strict input."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend.auth.models import Role
from backend.notices.models import Device
from backend.notices.service import token_digest
from tests.factories import login, make_account

TOKEN = "fGx1_Qz:APA91bH-abc_DEF123" + "x" * 120


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"token": TOKEN, "platform": "android", "locale": "zh-CN"}
    body.update(overrides)
    return body


def _devices(session: Session, token: str) -> list[Device]:
    return list(session.exec(select(Device).where(Device.token_hash == token_digest(token))).all())


def test_anonymous_device_registers_its_token(client: TestClient, session: Session) -> None:
    device_account = make_account(session, Role.consumer_device)
    headers = login(client, device_account)
    resp = client.post(
        "/api/v1/devices",
        json=_body(platform="ios", locale="en", timezone="Europe/Berlin", app_version="1.4.2"),
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["platform"] == "ios" and body["locale"] == "en" and body["timezone"] == "Europe/Berlin"
    assert body["active"] is True and "token" not in body
    [row] = _devices(session, TOKEN)
    assert row.account_id == device_account.id and row.token == TOKEN
    listed = client.get("/api/v1/devices", headers=headers).json()
    assert [d["id"] for d in listed] == [body["id"]]


def test_same_token_again_refreshes_and_moves_between_accounts(client: TestClient, session: Session) -> None:
    first, second = make_account(session, Role.consumer), make_account(session, Role.operator)
    created = client.post("/api/v1/devices", json=_body(), headers=login(client, first))
    assert created.status_code == 201
    again = client.post("/api/v1/devices", json=_body(locale="en"), headers=login(client, first))
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    # The phone signed out and someone else signed in: the token now belongs to the new account.
    moved = client.post("/api/v1/devices", json=_body(), headers=login(client, second))
    assert moved.status_code == 200 and moved.json()["id"] == created.json()["id"]
    [row] = _devices(session, TOKEN)
    assert row.account_id == second.id and row.active
    assert client.get("/api/v1/devices", headers=login(client, first)).json() == []


def test_new_token_of_the_same_installation_replaces_the_old(client: TestClient, session: Session) -> None:
    account = make_account(session, Role.consumer)
    headers = login(client, account)
    old = client.post("/api/v1/devices", json=_body(installation_id="inst-1"), headers=headers).json()
    new_token = "rotated_" + "y" * 150
    new = client.post(
        "/api/v1/devices", json=_body(token=new_token, installation_id="inst-1"), headers=headers
    )
    assert new.status_code == 200 and new.json()["id"] == old["id"]
    assert _devices(session, TOKEN) == [] and len(_devices(session, new_token)) == 1
    # A different installation is a second device.
    other = client.post(
        "/api/v1/devices", json=_body(token="other_" + "z" * 150, installation_id="inst-2"), headers=headers
    )
    assert other.status_code == 201
    assert len(client.get("/api/v1/devices", headers=headers).json()) == 2


def test_installation_reusing_an_already_registered_token_keeps_one_active_row(
    client: TestClient, session: Session
) -> None:
    account = make_account(session, Role.consumer)
    headers = login(client, account)
    client.post(
        "/api/v1/devices", json=_body(token="a_" + "1" * 100, installation_id="inst-9"), headers=headers
    )
    client.post("/api/v1/devices", json=_body(token="b_" + "2" * 100), headers=headers)
    resp = client.post(
        "/api/v1/devices", json=_body(token="b_" + "2" * 100, installation_id="inst-9"), headers=headers
    )
    assert resp.status_code == 200
    active = client.get("/api/v1/devices", headers=headers).json()
    assert [d["installation_id"] for d in active] == ["inst-9"]


def test_delete_deactivates_own_device_only(client: TestClient, session: Session) -> None:
    owner, stranger = make_account(session, Role.consumer), make_account(session, Role.consumer)
    device_id = client.post("/api/v1/devices", json=_body(), headers=login(client, owner)).json()["id"]
    assert client.delete(f"/api/v1/devices/{device_id}", headers=login(client, stranger)).status_code == 404
    assert client.delete(f"/api/v1/devices/{device_id}", headers=login(client, owner)).status_code == 204
    [row] = _devices(session, TOKEN)
    assert row.active is False and row.deactivated_reason == "unregistered_by_user"
    assert client.delete("/api/v1/devices/999999", headers=login(client, owner)).status_code == 404


def test_registration_needs_sign_in(client: TestClient) -> None:
    assert client.post("/api/v1/devices", json=_body()).status_code == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"token": ""},
        {"token": "a" * 4097},
        {"platform": "blackberry"},
        {"platform": None},
        {"locale": "fr"},
        {"locale": "zh-TW"},
        {"timezone": "Mars/Olympus"},
        {"timezone": "localtime"},
        {"timezone": "../../etc/passwd"},
        {"app_version": "1.0 beta"},
        {"installation_id": "x" * 129},
        {"unexpected": 1},
    ],
)
def test_bad_input_is_422(client: TestClient, session: Session, overrides: dict[str, Any]) -> None:
    headers = login(client, make_account(session, Role.consumer_device))
    resp = client.post("/api/v1/devices", json=_body(**overrides), headers=headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("token", ["has space", "bad/slash", "汉字令牌"])
def test_malformed_fcm_token_is_422_invalid_push_token(
    client: TestClient, session: Session, token: str
) -> None:
    headers = login(client, make_account(session, Role.consumer_device))
    resp = client.post("/api/v1/devices", json=_body(token=token), headers=headers)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_push_token"
    assert _devices(session, token) == []


JPUSH_ID = "1a0018970a2bf2d4c66"


@pytest.mark.parametrize("rid", [JPUSH_ID, "13165ffa4e0", "101d855909b"])
def test_jpush_device_registers_its_registration_id(client: TestClient, session: Session, rid: str) -> None:
    user = make_account(session, Role.operator)
    resp = client.post(
        "/api/v1/devices", json=_body(token=rid, provider="jpush"), headers=login(client, user)
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["provider"] == "jpush" and "token" not in resp.json()
    [row] = _devices(session, rid)
    assert row.provider == "jpush" and row.token == rid and row.account_id == user.id


def test_fcm_stays_the_default_provider(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.consumer))
    resp = client.post("/api/v1/devices", json=_body(), headers=headers)
    assert resp.status_code == 201 and resp.json()["provider"] == "fcm"


def test_an_installation_moves_from_fcm_to_jpush(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.operator))
    first = client.post("/api/v1/devices", json=_body(installation_id="inst-1"), headers=headers)
    moved = client.post(
        "/api/v1/devices",
        json=_body(token=JPUSH_ID, provider="jpush", installation_id="inst-1"),
        headers=headers,
    )
    assert moved.status_code == 200 and moved.json()["id"] == first.json()["id"]
    assert moved.json()["provider"] == "jpush"
    assert _devices(session, TOKEN) == [] and _devices(session, JPUSH_ID)[0].provider == "jpush"


@pytest.mark.parametrize("provider", ["apns", "huawei", "JPUSH", "", 1, None])
def test_unknown_provider_is_422_and_nothing_is_stored(
    client: TestClient, session: Session, provider: object
) -> None:
    headers = login(client, make_account(session, Role.operator))
    resp = client.post("/api/v1/devices", json=_body(token=JPUSH_ID, provider=provider), headers=headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_push_provider"
    assert _devices(session, JPUSH_ID) == []


@pytest.mark.parametrize(
    "rid",
    [
        TOKEN,  # an FCM token sent as a JPush id
        "1a0018970a2bf2d4c6",  # 18 characters
        "1a0018970a2bf2d4c667",  # 20
        "1a0018970a",  # 10
        "1A0018970A2BF2D4C66",  # upper case
        "2a0018970a2bf2d4c66",  # first character beyond [01]
        "1b0018970a2bf2d4c66",  # second beyond [0-9a]
        "1a3018970a2bf2d4c66",  # platform digit beyond [0-2]
        "1a0018970a2bf2d4c6g",  # not hex
        "1a0018970a2bf2d4c66\n",
    ],
)
def test_malformed_jpush_registration_id_is_422_and_nothing_is_stored(
    client: TestClient, session: Session, rid: str
) -> None:
    headers = login(client, make_account(session, Role.operator))
    resp = client.post("/api/v1/devices", json=_body(token=rid, provider="jpush"), headers=headers)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_push_token" and "JPush" in error["message"] + str(error["details"])
    assert _devices(session, rid) == []


def test_missing_fields_are_422(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.consumer_device))
    for missing in ("token", "platform", "locale"):
        body = _body()
        del body[missing]
        assert client.post("/api/v1/devices", json=body, headers=headers).status_code == 422


def test_longest_valid_token_is_accepted(client: TestClient, session: Session) -> None:
    headers = login(client, make_account(session, Role.consumer_device))
    resp = client.post("/api/v1/devices", json=_body(token="T" * 4096), headers=headers)
    assert resp.status_code == 201, resp.text
