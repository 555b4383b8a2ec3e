"""The worker's half of the public page store: beat renders again what a change dropped."""

from __future__ import annotations

import pytest
import redis
from sqlmodel import Session

from backend.auth.models import Role
from backend.config import get_settings
from backend.public import store as public_store
from tests.factories import make_account, make_operator
from workers import public_tasks
from workers.celery_app import celery_app


def test_beat_runs_the_refresh_every_few_seconds() -> None:
    entry = celery_app.conf.beat_schedule["public-refresh"]
    assert entry["task"] == "gongping.public.refresh" and entry["schedule"] <= 10
    assert "gongping.public.refresh" in celery_app.tasks


def test_without_a_store_the_task_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "public_store_url", "")
    assert public_tasks.refresh_public_pages() == 0


def test_the_task_renders_dropped_pages_again_through_the_app(
    committed_session: Session, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "public_store_url", redis_url)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    public_tasks._app.cache_clear()
    try:
        staff = make_account(committed_session, Role.staff)
        operator = make_operator(committed_session, staff, name="夜市称重服务部")
        committed_session.commit()
        path = f"/api/v1/public/operators/{operator.id}"
        # What an invalidation leaves behind for the worker: the dropped answers' keys, in both languages.
        client.rpush(public_store.REFRESH_KEY, public_store.page_key(path, b"", "zh-CN"))
        client.rpush(public_store.REFRESH_KEY, public_store.page_key(path, b"", "en"))
        assert public_tasks.refresh_public_pages() == 2
        stored = client.get(public_store.page_key(path, b"", "zh-CN"))
        assert (
            stored is not None and "夜市称重服务部" in public_store.StoredAnswer.decode(stored).body.decode()
        )
        assert client.llen(public_store.REFRESH_KEY) == 0
        assert public_tasks.refresh_public_pages() == 0  # nothing left to do
    finally:
        public_tasks._app.cache_clear()
        client.flushdb()
        client.close()
