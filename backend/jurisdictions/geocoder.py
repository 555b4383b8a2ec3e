"""Address → point for reports without a geotag, through a configurable Nominatim-compatible geocoder."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from geopy.exc import GeopyError
from geopy.geocoders import Nominatim

from backend.config import get_settings


@dataclass(frozen=True)
class GeocodedPoint:
    """A WGS-84 point found for an address (Nominatim answers in WGS-84)."""

    lon: float
    lat: float
    display_name: str


class GeocoderUnavailable(Exception):
    """The geocoder is off, unreachable or failed; the report waits for staff to place it."""


def geocode(address: str) -> GeocodedPoint | None:
    """The best match for ``address`` in China, None when nothing matches; raises GeocoderUnavailable."""
    settings = get_settings()
    if not settings.geocoder_url:
        raise GeocoderUnavailable("geocoder not configured (GONGPING_GEOCODER_URL)")
    parts = urlsplit(settings.geocoder_url)
    geocoder = Nominatim(
        domain=parts.netloc + parts.path.rstrip("/"),
        scheme=parts.scheme or "https",
        user_agent="gongping-metrology-supervision",
        timeout=settings.geocoder_timeout_s,
    )
    try:
        found = geocoder.geocode(address, country_codes="cn", language="zh-CN")
    except GeopyError as exc:
        raise GeocoderUnavailable(str(exc)) from exc
    if found is None:
        return None
    return GeocodedPoint(float(found.longitude), float(found.latitude), str(found.address))
