"""Task plumbing: configuration, one push channel per process, start-up report, retry scheduling, beat."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from backend.config import Settings
from backend.notices import channel
from backend.notices.delivery import SendReport
from notifications.channels import DeliveryStatus, OutgoingMessage
from notifications.jpush import JPushChannel
from notifications.push import PushChannel
from tests.support.jpush_standin import APP_KEY, MASTER_SECRET
from workers import notifications_tasks as tasks
from workers.celery_app import celery_app


def test_settings_read_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GONGPING_FIREBASE_CREDENTIALS", "/etc/gongping/fcm.json")
    monkeypatch.setenv("GONGPING_FCM_ENDPOINT", "http://10.0.0.5:8080")
    settings = Settings()
    assert settings.fcm_credentials == Path("/etc/gongping/fcm.json")
    assert settings.fcm_endpoint == "http://10.0.0.5:8080"
    assert Settings(fcm_credentials=Path("/x.json")).fcm_credentials == Path("/x.json")
    monkeypatch.delenv("GONGPING_FIREBASE_CREDENTIALS")
    assert Settings().fcm_credentials is None


def _settings(monkeypatch: pytest.MonkeyPatch, **values: Any) -> None:
    monkeypatch.setattr(channel, "get_settings", lambda: Settings(**values))
    channel.close_push_channel()


def _jpush_only(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    """Settings with FCM off and JPush on, fully configured but for ``base_url``."""
    _settings(
        monkeypatch,
        fcm_credentials=None,
        jpush_enabled=True,
        jpush_app_key=APP_KEY,
        jpush_master_secret=MASTER_SECRET,
        jpush_base_url=base_url,
    )


def test_without_credentials_push_is_off_and_the_worker_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _settings(monkeypatch, fcm_credentials=None)
    with caplog.at_level(logging.INFO):
        channel.announce()
    assert "push notifications OFF" in caplog.text and "推送通知已关闭" in caplog.text
    assert channel.push_channel() is None
    assert tasks.retry_due_task.apply().get() == 0


def test_unusable_credentials_stop_the_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = tmp_path / "fcm.json"
    broken.write_text("{not json")
    _settings(monkeypatch, fcm_credentials=broken)
    with pytest.raises(SystemExit, match="unusable FCM credentials"):
        channel.announce()
    _settings(monkeypatch, fcm_credentials=tmp_path / "missing.json")
    with pytest.raises(SystemExit):
        channel.announce()


def test_one_channel_per_process_rebuilt_after_a_fork(
    monkeypatch: pytest.MonkeyPatch, service_account: Path, fcm_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _settings(monkeypatch, fcm_credentials=service_account, fcm_endpoint=fcm_server.base_url)
    try:
        with caplog.at_level(logging.INFO):
            channel.announce()
        assert "push notifications ON" in caplog.text and "gongping-test" in caplog.text
        first = channel.push_channel()
        assert first is not None and channel.push_channel() is first
        assert first.providers == {"fcm"}
        fcm = first.channel("fcm")
        assert isinstance(fcm, PushChannel)
        assert fcm.send_url == f"{fcm_server.base_url}/v1/projects/gongping-test/messages:send"
        monkeypatch.setattr(channel.os, "getpid", lambda: -1)  # as a forked child sees it
        second = channel.push_channel()
        assert second is not None and second is not first
        assert isinstance(second.channel("fcm"), PushChannel)
        first.close()
    finally:
        channel.close_push_channel()


def test_jpush_alone_turns_push_on_and_is_routed_by_provider(
    monkeypatch: pytest.MonkeyPatch, jpush_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _jpush_only(monkeypatch, jpush_server.base_url)
    try:
        with caplog.at_level(logging.INFO):
            channel.announce()
        assert "JPush ON" in caplog.text and "极光推送已开启" in caplog.text
        router = channel.push_channel()
        assert router is not None and router.providers == {"jpush"}
        jp = router.channel("jpush")
        assert isinstance(jp, JPushChannel) and jp.push_url == f"{jpush_server.base_url}/v3/push"
        # A message for a provider that is off is refused, not sent anywhere.
        fcm_message = OutgoingMessage(
            dedupe_key="k",
            recipient_ref="r",
            token="tok",
            title="t",
            body="b",
            data={},
            collapse_key="c",
            ttl_seconds=60,
            platform="android",
            provider="fcm",
        )
        [result] = router.send([fcm_message])
        assert result.status is DeliveryStatus.FAILED and result.error_code == "PROVIDER_OFF"
    finally:
        channel.close_push_channel()


def test_jpush_switched_on_without_its_secret_stops_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    _settings(monkeypatch, fcm_credentials=None, jpush_enabled=True, jpush_app_key=APP_KEY)
    with pytest.raises(SystemExit, match="GONGPING_JPUSH_MASTER_SECRET"):
        channel.announce()
    _jpush_only(monkeypatch, "not a url")
    with pytest.raises(SystemExit, match="JPush base URL"):
        channel.announce()


def test_jpush_is_off_by_default() -> None:
    settings = Settings()
    assert settings.jpush_enabled is False and settings.jpush_master_secret is None


def test_soon_retries_go_by_countdown_on_the_same_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.send_push_task, "apply_async", lambda **kw: sent.append(kw))
    report = SendReport(retry={1: 7.0, 2: 9.5, 3: 3600.0})
    tasks._schedule_retries(report, "notify-q")
    # Row 3 waits an hour: that is the retry sweep's job, not a countdown held in a worker's memory.
    assert sent == [{"args": [[1, 2]], "countdown": 9.5, "queue": "notify-q"}]


def test_tasks_are_registered_and_scheduled() -> None:
    celery_app.loader.import_default_modules()
    names = {
        "gongping.notifications.dispatch",
        "gongping.notifications.send_push",
        "gongping.notifications.retry_due",
        "gongping.notifications.sweep_due_instruments",
        "gongping.notifications.sweep_interview_reminders",
    }
    assert names <= set(celery_app.tasks)
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert names - {"gongping.notifications.dispatch", "gongping.notifications.send_push"} <= scheduled
