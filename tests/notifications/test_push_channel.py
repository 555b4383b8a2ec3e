"""The push channel on the real firebase-admin SDK against the local FCM stand-in."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from firebase_admin import messaging

from notifications.channels import DeliveryStatus, OutgoingMessage, Platform
from notifications.compose import Device, push_messages
from notifications.policy import dedupe_key
from notifications.push import PushChannel, build_push_channel
from notifications.templates import render
from tests.support.fcm_standin import FcmStandin, StandinServer, spawn_standin_process, write_service_account


def outgoing(
    token: str | None, platform: Platform | None = "android", *, key: str | None = None, **overrides: Any
) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "dedupe_key": key or f"push:{token}",
        "recipient_ref": "operator-1",
        "token": token,
        "title": "计量器具检定即将到期",
        "body": "请及时申请周期检定。",
        "data": {"kind": "verification_due", "link": "gongping://instruments/ins-9"},
        "collapse_key": "verification:ins-9",
        "ttl_seconds": 3600,
        "priority": "normal",
        "platform": platform,
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)


@contextmanager
def own_channel(account: Path, base_url: str | None, **options: Any) -> Iterator[PushChannel]:
    """A channel of this test's own (not the session's), closed when the block ends however it ends."""
    channel = build_push_channel(str(account), base_url, **options)
    assert channel is not None
    try:
        yield channel
    finally:
        channel.close()


def test_batch_of_three_arrives_with_platform_fields(push_channel: PushChannel, fcm: FcmStandin) -> None:
    batch = [
        outgoing("android-1", "android"),
        outgoing("ios-1", "ios", priority="high", ttl_seconds=600),
        outgoing("web-1", "web"),
    ]
    before = int(time.time())
    results = push_channel.send(batch)

    assert [r.status for r in results] == [DeliveryStatus.DELIVERED] * 3
    assert [r.dedupe_key for r in results] == [m.dedupe_key for m in batch]
    assert all(
        r.provider_message_id and r.provider_message_id.startswith("projects/gongping-test/") for r in results
    )
    assert sorted(fcm.recorded_tokens()) == ["android-1", "ios-1", "web-1"]

    android = fcm.message_for("android-1")
    assert android["notification"] == {"title": "计量器具检定即将到期", "body": "请及时申请周期检定。"}
    assert android["data"] == {"kind": "verification_due", "link": "gongping://instruments/ins-9"}
    assert android["android"]["collapse_key"] == "verification:ins-9"
    assert android["android"]["ttl"] == "3600s"
    assert android["android"]["priority"] == "normal"
    assert android["android"]["notification"]["tag"] == "verification:ins-9"
    assert "apns" not in android and "webpush" not in android

    ios = fcm.message_for("ios-1")
    headers = ios["apns"]["headers"]
    assert headers["apns-collapse-id"] == "verification:ins-9"
    assert headers["apns-priority"] == "10"
    assert headers["apns-push-type"] == "alert"
    assert before + 600 <= int(headers["apns-expiration"]) <= int(time.time()) + 600
    assert ios["data"]["link"] == "gongping://instruments/ins-9"
    assert "android" not in ios

    web = fcm.message_for("web-1")
    assert web["webpush"]["headers"] == {"TTL": "3600", "Urgency": "normal"}


def test_requests_carry_the_token_minted_once_from_the_service_account(
    service_account: Path, fcm: FcmStandin, fcm_server: StandinServer
) -> None:
    with own_channel(service_account, fcm_server.base_url) as channel:
        results = channel.send([outgoing(f"tok-{i}") for i in range(60)])

    assert {r.status for r in results} == {DeliveryStatus.DELIVERED}
    # Pre-warming the token keeps 60 concurrent threads from each refreshing it.
    assert len(fcm.token_claims) == 1
    claims = fcm.token_claims[0]
    assert claims["iss"] == "firebase-adminsdk@gongping-test.iam.gserviceaccount.com"
    assert "https://www.googleapis.com/auth/cloud-platform" in claims["scope"].split()
    assert {h["authorization"] for h in fcm.request_headers} == {fcm.request_headers[0]["authorization"]}


def test_more_than_500_messages_are_split_into_send_each_async_calls(
    service_account: Path, fcm_server: StandinServer, fcm: FcmStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunk_sizes: list[int] = []
    real_send_each_async = messaging.send_each_async

    async def spy(messages: list[messaging.Message], dry_run: bool = False, app: Any = None) -> Any:
        chunk_sizes.append(len(messages))
        return await real_send_each_async(messages, dry_run=dry_run, app=app)

    monkeypatch.setattr(messaging, "send_each_async", spy)
    with own_channel(service_account, fcm_server.base_url, concurrency=500) as channel:
        results = channel.send([outgoing(f"bulk-{i}") for i in range(501)])

    assert chunk_sizes == [500, 1]
    assert len(results) == 501 and {r.status for r in results} == {DeliveryStatus.DELIVERED}
    assert fcm.stats()["delivered"] == 501


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("unregistered-1", DeliveryStatus.INVALID_TOKEN, "UNREGISTERED"),
        ("invalid-1", DeliveryStatus.INVALID_TOKEN, "INVALID_ARGUMENT"),
        ("mismatch-1", DeliveryStatus.INVALID_TOKEN, "SENDER_ID_MISMATCH"),
        ("quota-1", DeliveryStatus.RETRY, "QUOTA_EXCEEDED"),
        ("unavailable-1", DeliveryStatus.RETRY, "UNAVAILABLE"),
        ("internal-1", DeliveryStatus.RETRY, "INTERNAL"),
        ("badpayload-1", DeliveryStatus.FAILED, "INVALID_ARGUMENT"),
        ("apnsauth-1", DeliveryStatus.FAILED, "THIRD_PARTY_AUTH_ERROR"),
    ],
)
def test_fcm_errors_map_to_delivery_status(
    push_channel: PushChannel, fcm: FcmStandin, token: str, status: DeliveryStatus, code: str
) -> None:
    [result] = push_channel.send([outgoing(token)])

    assert (result.status, result.error_code) == (status, code)
    assert (result.retry_after_s is not None) == (status is DeliveryStatus.RETRY)
    assert result.detail and token not in result.detail


def test_one_bad_token_does_not_sink_the_batch(push_channel: PushChannel, fcm: FcmStandin) -> None:
    results = push_channel.send([outgoing("ok-1"), outgoing("unregistered-2"), outgoing("ok-2")])

    assert [r.status for r in results] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.INVALID_TOKEN,
        DeliveryStatus.DELIVERED,
    ]


def test_retry_after_seconds_is_honoured(push_channel: PushChannel, fcm: FcmStandin) -> None:
    fcm.retry_after = "7"

    results = push_channel.send([outgoing("quota-7"), outgoing("unavailable-7")])

    assert [r.retry_after_s for r in results] == [7.0, 7.0]


def test_retry_after_http_date_is_honoured(push_channel: PushChannel, fcm: FcmStandin) -> None:
    fcm.retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)

    [result] = push_channel.send([outgoing("quota-date")])

    assert result.retry_after_s is not None and 110 <= result.retry_after_s <= 120


def test_without_retry_after_the_delay_backs_off_exponentially(
    push_channel: PushChannel, fcm: FcmStandin
) -> None:
    fcm.retry_after = None

    first, later = push_channel.send([outgoing("unavailable-a"), outgoing("unavailable-b", attempt=3)])
    [quota] = push_channel.send([outgoing("quota-a")])

    assert first.retry_after_s is not None and 10 <= first.retry_after_s <= 15
    assert later.retry_after_s is not None and 80 <= later.retry_after_s <= 120
    # FCM asks for at least a minute before retrying QUOTA_EXCEEDED.
    assert quota.retry_after_s is not None and 60 <= quota.retry_after_s <= 90


def test_transient_errors_are_not_retried_inside_the_send(push_channel: PushChannel, fcm: FcmStandin) -> None:
    push_channel.send([outgoing("unavailable-once")])

    # The SDK's default adapter would have retried the 503 four times, sleeping through Retry-After.
    assert fcm.stats()["send_requests"] == 1


def test_flaky_token_fails_n_times_then_succeeds(push_channel: PushChannel, fcm: FcmStandin) -> None:
    message = outgoing("flaky-1")

    statuses = [push_channel.send([message])[0].status for _ in range(3)]

    assert statuses == [DeliveryStatus.RETRY, DeliveryStatus.RETRY, DeliveryStatus.DELIVERED]


def test_server_failing_next_requests_then_recovering(push_channel: PushChannel, fcm: FcmStandin) -> None:
    fcm.fail_next(2)

    results = push_channel.send([outgoing("a-1"), outgoing("a-2"), outgoing("a-3")])

    assert sorted(r.status.value for r in results) == ["delivered", "retry", "retry"]


def test_server_down_gives_retry_and_recovers(tmp_path: Path) -> None:
    with StandinServer(FcmStandin()) as server:
        account = write_service_account(tmp_path / "sa.json", server.token_uri)
        warm = build_push_channel(str(account), server.base_url)
        cold = build_push_channel(str(account), server.base_url)
        assert warm is not None and cold is not None
        try:
            assert warm.send([outgoing("before")])[0].status is DeliveryStatus.DELIVERED
            server.go_down()

            [unreachable] = warm.send([outgoing("during")])
            [no_token] = cold.send([outgoing("during")])

            server.come_up()
            [after] = warm.send([outgoing("during")])
        finally:
            warm.close()
            cold.close()

    assert (unreachable.status, unreachable.error_code) == (DeliveryStatus.RETRY, "UNAVAILABLE")
    # A channel that never got an access token cannot even authenticate while the server is down.
    assert (no_token.status, no_token.error_code) == (DeliveryStatus.RETRY, "AUTH_UNAVAILABLE")
    assert after.status is DeliveryStatus.DELIVERED


def test_repeated_dedupe_key_is_sent_once_and_missing_token_fails(
    push_channel: PushChannel, fcm: FcmStandin
) -> None:
    twin = outgoing("twin-1", key="same-key")
    results = push_channel.send(
        [twin, outgoing("twin-2", key="same-key"), outgoing(None, None, key="inbox-only")]
    )

    assert [r.status for r in results] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
    ]
    assert results[2].error_code == "NO_TOKEN"
    assert fcm.recorded_tokens() == ["twin-1"]


def test_push_is_off_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="notifications.push"):
        assert build_push_channel(None, "http://127.0.0.1:9") is None
        assert build_push_channel("", None) is None

    assert "push notifications disabled" in caplog.text


def test_missing_credentials_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        build_push_channel(str(tmp_path / "absent.json"), None)


def test_concurrency_is_capped_at_the_send_each_limit(service_account: Path) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        build_push_channel(str(service_account), None, concurrency=501)


@pytest.mark.parametrize(
    "endpoint", ["ftp://relay.example", "relay.example:443", "http://relay.example/?x=1"]
)
def test_endpoint_must_be_an_http_base_url(service_account: Path, endpoint: str) -> None:
    # Checked before any firebase App is created, so a bad setting leaves nothing behind.
    with pytest.raises(ValueError, match="FCM endpoint"):
        build_push_channel(str(service_account), endpoint)


def test_default_endpoint_is_google(service_account: Path) -> None:
    with own_channel(service_account, None) as channel:
        assert channel.send_url == "https://fcm.googleapis.com/v1/projects/gongping-test/messages:send"


def test_rendered_notice_reaches_each_device(push_channel: PushChannel, fcm: FcmStandin) -> None:
    rendered = render(
        "interview_scheduled",
        "en",
        {
            "interview_id": "iv-7",
            "bureau_name": "Xihu Bureau",
            "scheduled_at": "2026-12-01 09:30",
            "place": "Room 3",
        },
    )
    devices = [Device("dev-a", "phone-a", "android"), Device("dev-b", "phone-b", "ios")]
    batch = push_messages(
        rendered, event_id="interview:iv-7:scheduled", recipient_ref="operator-1", devices=devices
    )

    results = push_channel.send(batch)

    assert {r.status for r in results} == {DeliveryStatus.DELIVERED}
    assert results[0].dedupe_key == dedupe_key(
        "interview:iv-7:scheduled", "operator-1", "push", device_ref="dev-a"
    )
    android = fcm.message_for("phone-a")
    assert android["notification"]["title"] == "Interview notice"
    assert android["android"]["priority"] == "high"
    assert android["data"] == {
        "kind": "interview_scheduled",
        "category": "enforcement",
        "link": "gongping://interviews/iv-7",
    }
    assert fcm.message_for("phone-b")["apns"]["headers"]["apns-priority"] == "10"


def test_standin_in_its_own_process_serves_the_channel(tmp_path: Path) -> None:
    standin = spawn_standin_process()
    try:
        account = write_service_account(tmp_path / "sa.json", standin.token_uri)
        with own_channel(account, standin.base_url) as channel:
            results = channel.send([outgoing("proc-1"), outgoing("unregistered-proc")])
        stats = standin.stats()
        standin.reset()
        after_reset = standin.stats()
    finally:
        standin.close()

    assert [r.status for r in results] == [DeliveryStatus.DELIVERED, DeliveryStatus.INVALID_TOKEN]
    assert stats["delivered"] == 1 and stats["errors_by_code"] == {"UNREGISTERED": 1}
    assert stats["token_requests"] == 1
    assert after_reset["send_requests"] == 0


def test_a_message_the_sdk_cannot_encode_fails_alone(
    push_channel: PushChannel, fcm: FcmStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    import notifications.push as push

    real = push.to_fcm_message

    def corrupt(message: OutgoingMessage) -> messaging.Message:
        fcm_message = real(message)
        if message.token == "broken":
            fcm_message.data = {"count": 1}  # the SDK insists on string values
        return fcm_message

    monkeypatch.setattr(push, "to_fcm_message", corrupt)

    results = push_channel.send([outgoing("fine-1"), outgoing("broken"), outgoing("fine-2")])

    assert [r.status for r in results] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
        DeliveryStatus.DELIVERED,
    ]
    assert results[1].error_code == "INVALID_MESSAGE"
    assert sorted(fcm.recorded_tokens()) == ["fine-1", "fine-2"]


def test_a_revoked_access_token_is_refreshed_and_the_message_sent_again(
    service_account: Path, fcm: FcmStandin, fcm_server: StandinServer
) -> None:
    with own_channel(service_account, fcm_server.base_url) as channel:
        assert channel.send([outgoing("before-revoke")])[0].status is DeliveryStatus.DELIVERED
        with fcm.lock:
            fcm._issued_tokens.clear()  # FCM no longer accepts the cached token: 401 UNAUTHENTICATED

        [after] = channel.send([outgoing("after-revoke")])

    assert after.status is DeliveryStatus.DELIVERED
    # The SDK's auth flow refreshed once on the 401 and resent; nothing else was re-minted.
    assert len(fcm.token_claims) == 2
    assert fcm.stats()["errors_by_code"] == {"UNAUTHENTICATED": 1}
    assert sorted(fcm.recorded_tokens()) == ["after-revoke", "before-revoke"]


def test_requests_in_flight_never_exceed_the_concurrency(tmp_path: Path) -> None:
    # 40 messages, 4 connections, 50 ms per answer: at least ten rounds, never a fifth connection.
    with StandinServer(FcmStandin(latency_s=0.05)) as server:
        account = write_service_account(tmp_path / "sa.json", server.token_uri)
        peak = 0
        stop = False

        def watch() -> None:
            nonlocal peak
            while not stop:
                listener = server._listener
                if listener is not None:
                    peak = max(peak, len(listener.connections))
                time.sleep(0.002)

        with own_channel(account, server.base_url, concurrency=4) as channel:
            assert channel._ensure_access_token() is None
            listener = server._listener
            assert listener is not None
            # The token request's keep-alive connection is google-auth's, not the channel's.
            baseline = len(listener.connections)
            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                started = time.perf_counter()
                results = channel.send([outgoing(f"slow-{i}") for i in range(40)])
                elapsed = time.perf_counter() - started
            finally:
                stop = True
                watcher.join()

    assert {r.status for r in results} == {DeliveryStatus.DELIVERED}
    assert 1 <= peak - baseline <= 4
    assert elapsed >= 10 * 0.05


def test_an_answer_slower_than_the_timeout_is_retried_later(tmp_path: Path) -> None:
    with StandinServer(FcmStandin(latency_s=2.0)) as server:
        account = write_service_account(tmp_path / "sa.json", server.token_uri)
        with own_channel(account, server.base_url, timeout_s=0.3) as channel:
            assert channel._ensure_access_token() is None  # the token endpoint is slow too
            started = time.perf_counter()
            [late] = channel.send([outgoing("slow-answer")])
            elapsed = time.perf_counter() - started

    assert (late.status, late.error_code) == (DeliveryStatus.RETRY, "DEADLINE_EXCEEDED")
    assert elapsed < 1.5


def test_the_short_send_path_sends_what_httpx_would(
    service_account: Path, fcm: FcmStandin, fcm_server: StandinServer
) -> None:
    # The SDK's call goes the short way; the same call with an extra argument goes through httpx itself.
    with own_channel(service_account, fcm_server.base_url) as channel:
        assert channel.send([outgoing("short-path")])[0].status is DeliveryStatus.DELIVERED
        service = messaging._get_messaging_service(channel._app)
        client = service._async_client
        message = service._message_data(messaging.Message(token="httpx-path", data={"kind": "x"}), False)
        loop = channel._event_loop()
        response = loop.run_until_complete(
            client.request(
                "post",
                channel.send_url,
                headers=dict(service._fcm_headers),
                json=message,
                follow_redirects=False,
            )
        )
        assert response.status_code == 200
    short, full = fcm.request_headers
    # Same names and values but the body's length; httpx's own path differs only in what it adds itself.
    assert short.keys() == full.keys()
    assert {k: v for k, v in short.items() if k != "content-length"} == {
        k: v for k, v in full.items() if k != "content-length"
    }
    assert short["authorization"].startswith("Bearer standin-")
    assert short["content-type"] == "application/json" and "gl-python" in short["x-goog-api-client"]
    assert fcm.message_for("short-path")["data"]["kind"] == "verification_due"


def test_the_short_send_path_reads_a_streamed_answer(
    service_account: Path, fcm: FcmStandin, fcm_server: StandinServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Behind a proxy the channel keeps httpx's own transport, whose answers arrive as a stream.
    import httpx

    import notifications.push as push_module

    monkeypatch.setattr(push_module, "_transport_for", lambda url, concurrency: httpx.AsyncHTTPTransport())
    with own_channel(service_account, fcm_server.base_url) as channel:
        results = channel.send([outgoing("streamed-ok"), outgoing("unregistered-streamed")])
    assert [r.status for r in results] == [DeliveryStatus.DELIVERED, DeliveryStatus.INVALID_TOKEN]
    assert results[0].provider_message_id and results[1].error_code == "UNREGISTERED"
