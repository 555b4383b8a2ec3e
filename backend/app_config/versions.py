"""The app's version header and the minimum supported versions: old apps get 426 on the API.

The app sends ``X-App-Version: <platform>/<version>`` (``android/1.2.3``, ``ios/2.0``), or the version alone
with ``X-App-Platform: android``. Versions are dotted numbers; anything after them (``-beta``, ``+42``) is
ignored for the comparison. Requests without the header (web pages, partners, scripts), or with one that names
no known platform and version, are never refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.config import get_settings
from backend.errors import error_body
from backend.i18n import request_locale

PLATFORMS = ("android", "ios", "web")
_VERSION = re.compile(r"^(\d{1,6}(?:\.\d{1,6}){0,3})(?:[-+][0-9A-Za-z.\-+]{0,40})?$")
#: Paths the check applies to; the config itself stays reachable, so an old app can read why and where to update.
CHECKED_PREFIX = "/api/"
EXEMPT_PATHS = frozenset({"/api/v1/app/config"})


@dataclass(frozen=True)
class AppVersion:
    """A platform and its version as numbers."""

    platform: str
    version: tuple[int, ...]
    text: str


def parse_version(text: str) -> tuple[int, ...] | None:
    """``1.2.3-beta`` → (1, 2, 3); None when it is not a dotted version."""
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return version + (0,) * (4 - len(version))


def is_older(version: tuple[int, ...], minimum: tuple[int, ...]) -> bool:
    """Whether ``version`` is below ``minimum`` (1.2 == 1.2.0)."""
    return _padded(version) < _padded(minimum)


def parse_header(version_header: str, platform_header: str | None) -> AppVersion | None:
    """The app version the headers name, or None when they do not name a known platform and a version."""
    platform, _, text = version_header.strip().partition("/")
    if not text:
        platform, text = (platform_header or "").strip(), version_header.strip()
    platform = platform.lower()
    version = parse_version(text)
    if platform not in PLATFORMS or version is None:
        return None
    return AppVersion(platform, version, text)


def unsupported(app: AppVersion) -> str | None:
    """The minimum version ``app`` is below, or None when it is supported."""
    minimum_text = get_settings().app_min_versions.get(app.platform)
    if not minimum_text:
        return None
    minimum = parse_version(minimum_text)
    if minimum is None or not is_older(app.version, minimum):
        return None
    return str(minimum_text)


class AppVersionMiddleware:
    """Answer 426 ``app_version_unsupported`` to API calls from an app older than its platform's minimum."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(CHECKED_PREFIX) or path in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"x-app-version")
        app = None
        if raw is not None:
            platform = headers.get(b"x-app-platform")
            app = parse_header(raw.decode("latin-1"), platform.decode("latin-1") if platform else None)
        minimum = unsupported(app) if app is not None else None
        if app is None or minimum is None:
            await self.app(scope, receive, send)
            return
        locale = request_locale(HTTPConnection(scope))
        message = (
            f"当前应用版本 {app.text} 已停止支持，请升级至 {minimum} 或更高版本"
            if locale == "zh-CN"
            else f"app version {app.text} is no longer supported; update to {minimum} or later"
        )
        details: dict[str, str] = {"platform": app.platform, "version": app.text, "min_version": minimum}
        store_url = get_settings().app_store_urls.get(app.platform)
        if store_url:
            details["update_url"] = str(store_url)
        body = json.dumps(
            error_body("app_version_unsupported", message, details), ensure_ascii=False
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 426,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
