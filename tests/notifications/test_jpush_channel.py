"""The JPush channel on the real ``jpush`` SDK against the local JPush v3 stand-in, over real HTTP."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from notifications.channels import DeliveryStatus, OutgoingMessage
from notifications.jpush import JPUSH_MAX_IDS, JPushChannel, build_jpush_channel, register_zone
from tests.support.jpush_standin import APP_KEY, JPushServer, JPushStandin, check_push, registration_ids


def _message(token: str | None, key: str, **overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "dedupe_key": key,
        "recipient_ref": "account:1",
        "token": token,
        "title": "约谈通知",
        "body": "请于 2026-12-09 10:00 到西湖区市场监管局接受约谈",
        "data": {"kind": "interview_scheduled", "category": "enforcement", "link": "gongping://interviews/7"},
        "collapse_key": "interview:7",
        "ttl_seconds": 7 * 24 * 3600,
        "priority": "high",
        "platform": "android" if token is not None else None,
        "provider": "jpush",
    }
    values.update(overrides)
    return OutgoingMessage(**values)


def test_one_message_goes_out_as_one_well_formed_push(
    jpush_channel: JPushChannel, jpush: JPushStandin
) -> None:
    [rid] = registration_ids(1)
    [result] = jpush_channel.send([_message(rid, "k1")])
    assert result.status is DeliveryStatus.DELIVERED and result.provider_message_id
    [push] = jpush.delivered_to(rid)
    assert check_push(push) is None
    assert push["audience"] == {"registration_id": [rid]} and push["platform"] == "all"
    android = push["notification"]["android"]
    assert android["title"] == "约谈通知" and android["priority"] == 1
    assert android["extras"]["link"] == "gongping://interviews/7"
    assert push["notification"]["ios"]["alert"] == {"title": "约谈通知", "body": _message(rid, "x").body}
    assert push["options"]["apns_collapse_id"] == "interview:7"
    assert push["options"]["time_to_live"] == 7 * 24 * 3600
    # One push with one id: no delivery-status query is needed to know the outcome.
    assert jpush.stats()["status_requests"] == 0


def test_identical_content_shares_pushes_of_at_most_1000_ids(
    jpush_channel: JPushChannel, jpush: JPushStandin
) -> None:
    ids = registration_ids(2500)
    batch = [_message(rid, f"k{i}") for i, rid in enumerate(ids)]
    batch.append(_message(registration_ids(1, start=9000)[0], "other", body="另一条通知"))
    results = jpush_channel.send(batch)
    assert [r.status for r in results] == [DeliveryStatus.DELIVERED] * len(batch)
    sizes = sorted(len(p["audience"]["registration_id"]) for p in jpush.pushes)
    assert sizes == [1, 500, JPUSH_MAX_IDS, JPUSH_MAX_IDS]
    # Every result names the push it went out in.
    assert len({r.provider_message_id for r in results}) == 4


def test_dead_ids_in_a_shared_push_are_found_by_the_status_query(
    jpush_channel: JPushChannel, jpush: JPushStandin
) -> None:
    ids = registration_ids(4)
    jpush.unregister(ids[1], ids[3])
    results = jpush_channel.send([_message(rid, f"k{i}") for i, rid in enumerate(ids)])
    assert [r.status for r in results] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.INVALID_TOKEN,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.INVALID_TOKEN,
    ]
    assert results[1].error_code == "NOT_THIS_APP"
    assert jpush.stats()["status_requests"] == 1 and jpush.stats()["delivered"] == 2


def test_no_live_target_is_1011_and_every_id_is_dead(
    jpush_channel: JPushChannel, jpush: JPushStandin
) -> None:
    ids = registration_ids(3)
    jpush.unregister(*ids)
    results = jpush_channel.send([_message(rid, f"k{i}") for i, rid in enumerate(ids)])
    assert {(r.status, r.error_code) for r in results} == {(DeliveryStatus.INVALID_TOKEN, "1011")}


@pytest.mark.parametrize(
    ("kind", "code", "quota"),
    [("rate", "2002", True), ("internal", "1000", False), ("timeout", "1030", False)],
)
def test_rate_limit_and_server_errors_are_retried(
    jpush_channel: JPushChannel, jpush: JPushStandin, kind: str, code: str, quota: bool
) -> None:
    [rid] = registration_ids(1)
    jpush.rate_limit_reset_s = 5
    jpush.fail_next(1, kind)
    [result] = jpush_channel.send([_message(rid, "k1", attempt=2)])
    assert result.status is DeliveryStatus.RETRY and result.error_code == code
    assert result.retry_after_s is not None
    if quota:
        # The rate limit's window resets when JPush says (X-Rate-Limit-Reset).
        assert result.retry_after_s == 5.0
    else:
        # A server error backs off exponentially (10 s × 2^attempt, plus jitter).
        assert 40.0 <= result.retry_after_s <= 60.0
    [again] = jpush_channel.send([_message(rid, "k1")])
    assert again.status is DeliveryStatus.DELIVERED and len(jpush.delivered_to(rid)) == 1


def test_wrong_secret_is_a_failure_not_a_retry(jpush_server: JPushServer, jpush: JPushStandin) -> None:
    channel = JPushChannel(APP_KEY, "not-the-secret", base_url=jpush_server.base_url)
    try:
        [result] = channel.send([_message(registration_ids(1)[0], "k1")])
    finally:
        channel.close()
    assert result.status is DeliveryStatus.FAILED and result.error_code == "UNAUTHORIZED"
    assert jpush.stats()["errors_by_code"] == {"1004": 1} and jpush.pushes == []


def test_unreachable_jpush_is_retried(jpush: JPushStandin) -> None:
    with JPushServer(JPushStandin()) as gone:
        url = gone.base_url
    channel = JPushChannel(APP_KEY, "x", base_url=url, timeout_s=2)
    try:
        [result] = channel.send([_message(registration_ids(1)[0], "k1")])
    finally:
        channel.close()
    assert result.status is DeliveryStatus.RETRY and result.error_code == "UNAVAILABLE"


def test_results_follow_the_batch_order_and_repeated_keys_are_sent_once(
    jpush_channel: JPushChannel, jpush: JPushStandin
) -> None:
    a, b = registration_ids(2)
    batch = [
        _message(a, "k-a", body="甲"),
        _message(None, "k-none"),
        _message(b, "k-b", body="乙"),
        _message(a, "k-a", body="甲"),
    ]
    results = jpush_channel.send(batch)
    assert [r.dedupe_key for r in results] == ["k-a", "k-none", "k-b", "k-a"]
    assert results[1].status is DeliveryStatus.FAILED and results[1].error_code == "NO_TOKEN"
    assert jpush.stats()["push_requests"] == 2


def test_pushes_run_on_the_channel_threads_not_the_caller(
    jpush_server: JPushServer, jpush: JPushStandin
) -> None:
    seen: set[str] = set()
    original = jpush.dispatch

    def spy(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        seen.add(headers.get("user-agent", ""))
        return original(method, path, headers, body)

    jpush.dispatch = spy  # type: ignore[method-assign]
    channel = JPushChannel(APP_KEY, jpush.master_secret, base_url=jpush_server.base_url, concurrency=4)
    threads: set[str] = set()
    real_send = channel._send_chunk

    def record(messages: Any) -> Any:
        threads.add(threading.current_thread().name)
        return real_send(messages)

    channel._send_chunk = record  # type: ignore[method-assign]
    try:
        batch = [_message(rid, f"k{i}", body=f"通知 {i}") for i, rid in enumerate(registration_ids(12))]
        assert all(r.status is DeliveryStatus.DELIVERED for r in channel.send(batch))
    finally:
        channel.close()
        del jpush.dispatch
    assert threads and all(name.startswith("jpush") for name in threads)
    assert threading.current_thread().name not in threads
    assert seen == {"jpush-api-python-client"}


def test_switched_on_without_credentials_refuses_to_build() -> None:
    with pytest.raises(ValueError, match="app key or master secret"):
        build_jpush_channel(APP_KEY, None)
    with pytest.raises(ValueError, match="base URL"):
        register_zone("ftp://example")


def _batch_channel(server: JPushServer) -> JPushChannel:
    return JPushChannel(APP_KEY, server.app.master_secret, base_url=server.base_url, batch_single=True)


def test_batch_single_sends_different_content_in_one_request_answered_per_message(
    jpush_server: JPushServer, jpush: JPushStandin
) -> None:
    ids = registration_ids(1200)
    jpush.unregister(ids[7], ids[1100])
    batch = [_message(rid, f"k{i}", body=f"通知 {i}") for i, rid in enumerate(ids)]
    # Two with the same content still share a normal push.
    batch += [
        _message(rid, f"same{i}", body="同一条") for i, rid in enumerate(registration_ids(2, start=5000))
    ]
    channel = _batch_channel(jpush_server)
    try:
        results = channel.send(batch)
    finally:
        channel.close()
    dead = {i for i, r in enumerate(results) if r.status is DeliveryStatus.INVALID_TOKEN}
    assert dead == {7, 1100} and {results[7].error_code, results[1100].error_code} == {"1011"}
    assert all(r.status is DeliveryStatus.DELIVERED for i, r in enumerate(results) if i not in dead)
    # 1,200 different messages in two requests (1,000 + 200), the shared one in a push of its own.
    stats = jpush.stats()
    assert stats["batch_requests"] == 2 and stats["push_requests"] == 1
    assert jpush.delivered_to(ids[0])[0]["notification"]["android"]["alert"] == "通知 0"
    assert jpush.delivered_to(ids[1199])[0]["notification"]["android"]["alert"] == "通知 1199"


def test_batch_single_rate_limit_retries_every_message(
    jpush_server: JPushServer, jpush: JPushStandin
) -> None:
    jpush.rate_limit_reset_s = 3
    jpush.fail_next(1, "rate")
    channel = _batch_channel(jpush_server)
    try:
        batch = [_message(rid, f"k{i}", body=f"通知 {i}") for i, rid in enumerate(registration_ids(3))]
        results = channel.send(batch)
    finally:
        channel.close()
    assert {(r.status, r.error_code, r.retry_after_s) for r in results} == {
        (DeliveryStatus.RETRY, "2002", 3.0)
    }
    assert jpush.pushes == []
