"""This process's push channels: built once per process, after a fork, and checked at worker start-up.

Two providers carry pushes: FCM (firebase-admin; on when its service-account credentials are configured) and
JPush (the ``jpush`` SDK; on when ``GONGPING_JPUSH_ENABLED``), each device by the provider it registered with.
:class:`PushRouter` is the one channel the delivery code sends through: it hands each message to its device's
provider. Connection pools, cached access tokens and thread pools do not survive ``fork``, so prefork children
build their own (``workers/push_signals.py`` calls :func:`push_channel` from ``worker_process_init``). With no
provider on, push is off and every notice still reaches the in-app inbox.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from backend.config import get_settings
from notifications.channels import Channel, DeliveryResult, DeliveryStatus, OutgoingMessage
from notifications.jpush import build_jpush_channel, register_zone
from notifications.push import build_push_channel

log = logging.getLogger(__name__)


class ClosableChannel(Channel, Protocol):
    """A provider's channel: sends, and releases its connections."""

    def close(self) -> None:
        """Release connections, loops and pools."""
        ...


class PushRouter:
    """One channel over the providers that are on: each message goes to its device's provider, in one call each.

    A batch with devices of several providers sends to them at the same time (one on the caller's thread,
    the others on the router's own threads), so a mixed batch waits for the slowest provider's round trips,
    not for their sum: FCM from China and JPush are each tens of milliseconds away.
    """

    name = "push"

    def __init__(self, channels: Mapping[str, ClosableChannel]) -> None:
        """Route to ``channels`` by provider name (``fcm``, ``jpush``)."""
        self._channels = dict(channels)
        self.providers = frozenset(self._channels)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def channel(self, provider: str) -> ClosableChannel | None:
        """The provider's channel, or None when that provider is off."""
        return self._channels.get(provider)

    def send(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send ``batch``: one result per message, same order; a provider that is off refuses its messages."""
        by_provider: dict[str, list[int]] = {}
        for index, message in enumerate(batch):
            by_provider.setdefault(message.provider, []).append(index)
        results: dict[int, DeliveryResult] = {}
        sends: list[tuple[list[int], ClosableChannel]] = []
        for provider, indexes in by_provider.items():
            channel = self._channels.get(provider)
            if channel is None:
                # Written while the provider was on (it has been switched off since): nothing can send it.
                for i in indexes:
                    results[i] = DeliveryResult(
                        batch[i].dedupe_key, DeliveryStatus.FAILED, error_code="PROVIDER_OFF", detail=provider
                    )
                continue
            sends.append((indexes, channel))
        if sends:
            (first_indexes, first_channel), others = sends[0], sends[1:]
            pool = self._thread_pool() if others else None
            futures = [
                (indexes, pool.submit(channel.send, [batch[i] for i in indexes]))
                for indexes, channel in others
                if pool is not None
            ]
            try:
                results.update(
                    zip(first_indexes, first_channel.send([batch[i] for i in first_indexes]), strict=True)
                )
            finally:
                # Always collected: a provider's delivered messages must be recorded even if another raised.
                for indexes, future in futures:
                    results.update(zip(indexes, future.result(), strict=True))
        return [results[i] for i in range(len(batch))]

    def close(self) -> None:
        """Release every provider's channel and the router's threads."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for channel in self._channels.values():
            channel.close()

    def _thread_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=max(len(self._channels) - 1, 1), thread_name_prefix="push-router"
                )
            return self._pool


_lock = threading.Lock()
_channel: tuple[int, PushRouter | None] | None = None


def build_router() -> PushRouter | None:
    """The providers that are on, from the settings; None when none is."""
    settings = get_settings()
    channels: dict[str, ClosableChannel] = {}
    fcm = build_push_channel(
        settings.fcm_credentials, settings.fcm_endpoint, concurrency=settings.fcm_concurrency
    )
    if fcm is not None:
        channels["fcm"] = fcm
    if settings.jpush_enabled:
        secret = settings.jpush_master_secret
        channels["jpush"] = build_jpush_channel(
            settings.jpush_app_key,
            secret.get_secret_value() if secret is not None else None,
            settings.jpush_base_url,
            concurrency=settings.jpush_concurrency,
            apns_production=settings.jpush_apns_production,
            batch_single=settings.jpush_batch_single,
        )
    return PushRouter(channels) if channels else None


def push_channel() -> PushRouter | None:
    """This process's push channel (None when push is off), built on first use after a fork."""
    global _channel
    with _lock:
        if _channel is None or _channel[0] != os.getpid():
            _channel = (os.getpid(), build_router())
        return _channel[1]


def providers_of(channel: PushRouter | None) -> frozenset[str] | None:
    """The providers whose devices get push rows: those of ``channel`` (None when push is off)."""
    return channel.providers if channel is not None else None


def close_push_channel() -> None:
    """Release this process's channel (tests, worker shutdown)."""
    global _channel
    with _lock:
        if _channel is not None and _channel[0] == os.getpid() and _channel[1] is not None:
            _channel[1].close()
        _channel = None


def announce() -> None:
    """Say at start-up which push providers are on; unusable settings raise ``SystemExit`` (stop the worker)."""
    settings = get_settings()
    _announce_fcm()
    if not settings.jpush_enabled:
        log.warning(
            "极光推送已关闭（GONGPING_JPUSH_ENABLED 未开启）/ JPush OFF: GONGPING_JPUSH_ENABLED is not set"
        )
        return
    # Checked here, in the parent, for the same reason as the FCM credentials below.
    if not settings.jpush_app_key or settings.jpush_master_secret is None:
        log.critical("JPush is enabled without an app key or master secret")
        raise SystemExit(
            "已开启极光推送但缺少 GONGPING_JPUSH_APP_KEY 或 GONGPING_JPUSH_MASTER_SECRET / "
            "JPush enabled without GONGPING_JPUSH_APP_KEY or GONGPING_JPUSH_MASTER_SECRET"
        )
    if settings.jpush_base_url:
        try:
            register_zone(settings.jpush_base_url)
        except ValueError as exc:
            raise SystemExit(f"GONGPING_JPUSH_BASE_URL 无效 / invalid JPush base URL: {exc}") from exc
    log.info(
        "极光推送已开启 / JPush ON: app_key=%s base=%s",
        settings.jpush_app_key,
        settings.jpush_base_url or "https://api.jpush.cn",
    )


def _announce_fcm() -> None:
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
