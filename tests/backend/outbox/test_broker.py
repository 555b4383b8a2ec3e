"""The relay's send-only client agrees with the workers' app, and its messages reach the broker's queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.config import Settings
from backend.outbox import broker
from workers.celery_app import make_celery


def test_the_publisher_speaks_as_the_workers_listen(tmp_path: Path) -> None:
    settings = Settings(broker_url="filesystem://", broker_dir=tmp_path / "broker")
    app = make_celery(settings)
    for key, value in broker.client_conf(settings).items():
        assert app.conf[key] == value, key
    assert app.conf.task_default_queue == broker.DEFAULT_QUEUE


def test_a_relayed_task_lands_in_the_configured_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(broker_url="filesystem://", broker_dir=tmp_path / "broker")
    monkeypatch.setattr(broker, "get_settings", lambda: settings)
    broker.publisher.cache_clear()
    try:
        broker.celery_sender("gongping.test.ping", [42], "outbox-42-gongping.test.ping")
    finally:
        broker.publisher().pool.force_close_all()
        broker.publisher.cache_clear()
    [message] = list((tmp_path / "broker" / "queue").iterdir())
    body = json.loads(message.read_text(encoding="utf-8"))
    assert body["headers"]["task"] == "gongping.test.ping"
    assert body["headers"]["id"] == "outbox-42-gongping.test.ping"
    assert body["properties"]["delivery_info"]["routing_key"] == broker.DEFAULT_QUEUE
