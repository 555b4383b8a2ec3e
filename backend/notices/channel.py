"""This process's push channel: built once per process, after a fork, and checked at worker start-up.

The firebase App's connection pool and cached access token do not survive ``fork``, so prefork children build
their own (``workers/notifications_tasks.py`` calls :func:`push_channel` from ``worker_process_init``). Without
credentials push is off and every notice still reaches the in-app inbox.
"""

from __future__ import annotations

import logging
import os
import threading

from backend.config import get_settings
from notifications.push import PushChannel, build_push_channel

log = logging.getLogger(__name__)

_lock = threading.Lock()
_channel: tuple[int, PushChannel | None] | None = None


def push_channel() -> PushChannel | None:
    """This process's push channel (None when push is off), built on first use after a fork."""
    global _channel
    with _lock:
        if _channel is None or _channel[0] != os.getpid():
            settings = get_settings()
            channel = build_push_channel(
                settings.fcm_credentials, settings.fcm_endpoint, concurrency=settings.fcm_concurrency
            )
            _channel = (os.getpid(), channel)
        return _channel[1]


def close_push_channel() -> None:
    """Release this process's channel (tests, worker shutdown)."""
    global _channel
    with _lock:
        if _channel is not None and _channel[0] == os.getpid() and _channel[1] is not None:
            _channel[1].close()
        _channel = None


def announce() -> None:
    """Say at start-up whether push is on; unusable credentials raise ``SystemExit`` (stop the worker)."""
    settings = get_settings()
    if settings.fcm_credentials is None:
        log.warning(
            "推送通知已关闭：未配置 GONGPING_FIREBASE_CREDENTIALS，仅写入站内信 / "
            "push notifications OFF: GONGPING_FIREBASE_CREDENTIALS is not set; the in-app inbox still works"
        )
        return
    from firebase_admin import credentials

    # Parse it here, in the parent: a typo must stop the worker, not silently make every notice inbox-only.
    # SystemExit, because Celery logs and swallows ordinary exceptions raised by signal handlers.
    try:
        certificate = credentials.Certificate(os.fspath(settings.fcm_credentials))
    except (OSError, ValueError) as exc:
        log.critical("FCM credentials %s unusable: %s", settings.fcm_credentials, exc)
        raise SystemExit(
            f"GONGPING_FIREBASE_CREDENTIALS 文件无法使用 / unusable FCM credentials file: {exc}"
        ) from exc
    log.info(
        "推送通知已开启 / push notifications ON: project=%s endpoint=%s",
        certificate.project_id,
        settings.fcm_endpoint or "https://fcm.googleapis.com",
    )
