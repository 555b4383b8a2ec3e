"""This process's SMS provider: built once per process (after a fork), None while SMS is off."""

from __future__ import annotations

import logging
import os
import threading

from backend.config import get_settings
from backend.notices.sms.provider import AliyunSms, SmsProvider
from backend.notices.sms.templates import missing_codes

log = logging.getLogger(__name__)

_lock = threading.Lock()
_provider: tuple[int, SmsProvider | None] | None = None


def sms_provider() -> SmsProvider | None:
    """The provider when SMS is on and configured; None otherwise (the inbox and push work alone)."""
    global _provider
    with _lock:
        if _provider is None or _provider[0] != os.getpid():
            settings = get_settings()
            usable = settings.sms_enabled and settings.sms_access_key_id and settings.sms_sign_name
            _provider = (os.getpid(), AliyunSms(settings) if usable else None)
        return _provider[1]


def reset() -> None:
    """Forget the provider (tests change the settings)."""
    global _provider
    with _lock:
        _provider = None


def announce() -> None:
    """Say at worker start-up whether SMS is on, and what is missing when it cannot be."""
    settings = get_settings()
    if not settings.sms_enabled:
        log.info("短信通知已关闭 / SMS notices OFF (GONGPING_SMS_ENABLED is not set)")
        return
    missing = missing_codes()
    if not settings.sms_access_key_id or not settings.sms_sign_name:
        log.critical(
            "短信已开启但未配置 AccessKey 或签名 / SMS is on without an access key or sign name: not sending"
        )
    if missing:
        log.critical(
            "短信模板未配置阿里云模板代码 / SMS templates without an Aliyun code (never sent): %s", missing
        )
    log.info("短信通知已开启 / SMS notices ON: endpoint=%s", settings.sms_endpoint)
