"""Locale negotiation: Simplified Chinese first, English on request."""

from __future__ import annotations

from typing import Literal

from starlette.requests import HTTPConnection

Locale = Literal["zh-CN", "en"]
SUPPORTED_LOCALES: tuple[Locale, ...] = ("zh-CN", "en")


def normalise_locale(raw: str | None) -> Locale:
    """Map any locale tag to one we serve; Chinese variants and unknowns fall back to zh-CN."""
    if raw and raw.strip().lower().startswith("en"):
        return "en"
    return "zh-CN"


def request_locale(conn: HTTPConnection) -> Locale:
    """The locale of a request: ``?lang=`` wins, then the first Accept-Language tag, else zh-CN."""
    lang = conn.query_params.get("lang")
    if lang:
        return normalise_locale(lang)
    header = conn.headers.get("accept-language", "")
    first = header.split(",")[0].split(";")[0].strip()
    return normalise_locale(first or None)


def explicit_locale(conn: HTTPConnection) -> Locale | None:
    """The locale a request asks for with ``?lang=`` or ``Accept-Language``; None when it asks for none."""
    if conn.query_params.get("lang") or conn.headers.get("accept-language", "").strip():
        return request_locale(conn)
    return None
