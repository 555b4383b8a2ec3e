"""The keep-alive session under the jpush SDK: one connection reused, a closed one replaced, requests' answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import jpush as jpush_sdk
import pytest
import requests
from jpush import common as jpush_common

from notifications.channels import OutgoingMessage
from notifications.jpush import JPushChannel, register_zone
from notifications.keepalive import KeepAliveSession
from tests.support.jpush_standin import APP_KEY, MASTER_SECRET, JPushServer, JPushStandin, registration_ids


@pytest.fixture
def own_server() -> Iterator[JPushServer]:
    """A stand-in of this test's own, so its connections are this test's alone."""
    with JPushServer(JPushStandin()) as server:
        yield server


def _server_connections(server: JPushServer) -> int:
    assert server._listener is not None
    return len(server._listener.connections)


def _close_server_side(server: JPushServer) -> None:
    """The server drops every connection, as a keep-alive timeout or a restart does."""
    assert server._listener is not None and server._loop is not None
    done = threading.Event()

    def close_all() -> None:
        for connection in list(server._listener.connections):  # type: ignore[union-attr]
            connection.close()
        done.set()

    server._loop.call_soon_threadsafe(close_all)
    assert done.wait(5)


def _sdk(server: JPushServer) -> jpush_sdk.JPush:
    client = jpush_sdk.JPush(APP_KEY, MASTER_SECRET, timeout=5, zone=register_zone(server.base_url))
    session = KeepAliveSession(max_idle=2)
    session.auth = (APP_KEY, MASTER_SECRET)
    client.session = session
    return client


def _push(client: jpush_sdk.JPush, rid: str) -> jpush_sdk.push.core.PushResponse:
    push = client.create_push()
    push.audience = jpush_sdk.audience(jpush_sdk.registration_id(rid))
    push.platform = jpush_sdk.all_
    push.notification = jpush_sdk.notification(alert="核验到期提醒")
    return push.send()


def test_sequential_pushes_share_one_connection(own_server: JPushServer) -> None:
    client = _sdk(own_server)
    for rid in registration_ids(20):
        response = _push(client, rid)
        assert response.status_code == 200 and response.payload["msg_id"]
    assert own_server.app.stats()["delivered"] == 20
    assert _server_connections(own_server) == 1
    client.session.close()


def test_a_connection_the_server_closed_while_idle_is_replaced(own_server: JPushServer) -> None:
    client = _sdk(own_server)
    first, second = registration_ids(2)
    _push(client, first)
    _close_server_side(own_server)
    assert _push(client, second).payload["msg_id"]
    assert own_server.app.stats()["delivered"] == 2


def test_query_parameters_and_basic_auth_reach_the_server(own_server: JPushServer) -> None:
    client = _sdk(own_server)
    answer = client.create_push().get_cid(3, "push")
    assert len(answer.payload["cidlist"]) == 3
    client.session.auth = (APP_KEY, "wrong-secret")
    with pytest.raises(jpush_common.Unauthorized):
        _push(client, registration_ids(1)[0])


def test_error_answers_come_back_as_requests_responses(own_server: JPushServer) -> None:
    client = _sdk(own_server)
    own_server.app.fail_next(1, "rate")
    with pytest.raises(jpush_common.JPushFailure) as caught:
        _push(client, registration_ids(1)[0])
    response = caught.value.response
    assert isinstance(response, requests.Response)
    assert response.status_code == 429 and caught.value.error_code == 2002
    assert response.headers["x-rate-limit-reset"] == "2"


def test_an_unreachable_server_is_the_sdks_request_error() -> None:
    with JPushServer(JPushStandin()) as server:
        base_url = server.base_url
    client = jpush_sdk.JPush(APP_KEY, MASTER_SECRET, timeout=5, zone=register_zone(base_url))
    client.session = KeepAliveSession(max_idle=1)
    with pytest.raises(jpush_common.APIRequestException):
        _push(client, registration_ids(1)[0])


def test_the_channel_uses_the_keepalive_session_and_its_threads_share_connections(
    own_server: JPushServer,
) -> None:
    channel = JPushChannel(APP_KEY, MASTER_SECRET, base_url=own_server.base_url, concurrency=4)
    try:
        assert isinstance(channel._client.session, KeepAliveSession)
        ids = registration_ids(200)
        # Different content each: one push per message, on 4 threads.
        batch = [
            OutgoingMessage(
                dedupe_key=f"k{i}",
                recipient_ref=f"account:{i}",
                token=rid,
                title="计量器具核验到期提醒",
                body=f"电子计价秤 #{i} 将于 7 天后到期",
                data={"kind": "verification_due_7d", "link": f"gongping://instruments/{i}"},
                collapse_key=f"instrument:{i}",
                ttl_seconds=3600,
                priority="normal",
                platform="android",
                provider="jpush",
            )
            for i, rid in enumerate(ids)
        ]
        assert all(r.status.value == "delivered" for r in channel.send(batch))
        assert own_server.app.stats()["push_requests"] == 200
        assert _server_connections(own_server) <= 4
    finally:
        channel.close()


def test_unsupported_arguments_are_refused() -> None:
    session = KeepAliveSession(max_idle=1)
    with pytest.raises(TypeError):
        session.request("GET", "http://127.0.0.1:9/", json={"a": 1})
