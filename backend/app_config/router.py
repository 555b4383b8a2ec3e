"""The app's bootstrap (``GET /api/v1/app/config``) and the app-link association files under ``/.well-known/``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backend.app_config.schemas import AppConfigRead, QuietHours, SupportContact, UploadLimits
from backend.complaints.schemas import MAX_PHOTOS
from backend.config import Settings, get_settings
from backend.media.processing import ImageFormat
from notifications.policy import QUIET_END, QUIET_START

router = APIRouter(tags=["app"])

#: Short: a changed minimum version or flag reaches every app within five minutes.
CONFIG_CACHE = "public, max-age=300"
#: The association files are fetched by Google's and Apple's verifiers (and their CDNs) now and then.
WELL_KNOWN_CACHE = "public, max-age=3600"


@router.get("/api/v1/app/config", response_model=AppConfigRead)
def app_config() -> JSONResponse:
    """What the app needs before anything else: minimum versions, limits, push, quiet hours, terms, flags.

    Never refused for an old `X-App-Version`, so an outdated app can still learn that, and where, to update.
    """
    settings = get_settings()
    body = AppConfigRead(
        min_versions=dict(settings.app_min_versions),
        store_urls=dict(settings.app_store_urls),
        uploads=UploadLimits(
            max_photo_bytes=settings.complaint_photo_max_bytes,
            max_photos=MAX_PHOTOS,
            max_request_bytes=settings.complaint_request_max_bytes,
            max_photo_pixels=settings.complaint_photo_max_pixels,
            accepted_types=sorted({fmt.mime_type for fmt in ImageFormat} | {"image/heif"}),
            upload_ttl_seconds=settings.upload_ttl_hours * 3600,
        ),
        push_enabled=settings.fcm_credentials is not None or settings.jpush_enabled,
        push_providers=[
            *(["fcm"] if settings.fcm_credentials is not None else []),
            *(["jpush"] if settings.jpush_enabled else []),
        ],
        quiet_hours=QuietHours(
            start=QUIET_START.strftime("%H:%M"), end=QUIET_END.strftime("%H:%M"), timezone=settings.timezone
        ),
        terms_version=settings.app_terms_version,
        privacy_version=settings.app_privacy_version,
        support=SupportContact(
            hotline=settings.app_support_hotline,
            mailbox=settings.app_support_mailbox,
            url=settings.app_support_url,
        ),
        features=dict(settings.app_features),
    )
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": CONFIG_CACHE})


def link_paths(settings: Settings) -> list[str]:
    """The paths the app claims: the QR page (`/q/*`) and, on the same host, the app-link base's `q/*`."""
    paths = ["/q/*"]
    base = settings.app_link_base_url or f"{settings.public_base_url.rstrip('/')}/app"
    prefix = urlsplit(base).path.rstrip("/")
    if prefix:
        paths.append(f"{prefix}/q/*")
    return paths


@router.get("/.well-known/assetlinks.json", include_in_schema=False)
def assetlinks() -> JSONResponse:
    """Android App Links: the package allowed to open our links (empty without one configured)."""
    settings = get_settings()
    statements: list[dict[str, Any]] = []
    if settings.android_package_name and settings.android_sha256_fingerprints:
        statements.append(
            {
                "relation": ["delegate_permission/common.handle_all_urls"],
                "target": {
                    "namespace": "android_app",
                    "package_name": settings.android_package_name,
                    "sha256_cert_fingerprints": [f.upper() for f in settings.android_sha256_fingerprints],
                },
            }
        )
    return JSONResponse(statements, headers={"Cache-Control": WELL_KNOWN_CACHE})


@router.get("/.well-known/apple-app-site-association", include_in_schema=False)
def apple_app_site_association() -> JSONResponse:
    """iOS universal links: the app allowed to open our QR links (no app listed without one configured)."""
    settings = get_settings()
    details: list[dict[str, Any]] = []
    if settings.apple_team_id and settings.apple_bundle_id:
        app_id = f"{settings.apple_team_id}.{settings.apple_bundle_id}"
        paths = link_paths(settings)
        # appIDs/components for iOS 13+, appID/paths for older versions.
        details.append(
            {
                "appIDs": [app_id],
                "components": [
                    {"/": path, "comment": "a scanned stall or instrument code"} for path in paths
                ],
                "appID": app_id,
                "paths": paths,
            }
        )
    return JSONResponse(
        {"applinks": {"apps": [], "details": details}}, headers={"Cache-Control": WELL_KNOWN_CACHE}
    )
