"""What the app reads at start: versions, limits, push, quiet hours, terms, support and feature flags."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from backend.common.audience import Audience
from notifications.channels import Provider


class UploadLimits(BaseModel):
    """Limits a photo and a complaint must keep (checked again by the server)."""

    max_photo_bytes: int
    max_photos: int
    max_request_bytes: int
    max_photo_pixels: int
    accepted_types: list[str]
    upload_ttl_seconds: int = Field(description="an upload not named by a complaint within this is deleted")


class QuietHours(BaseModel):
    """Pushes that are not urgent are held between ``start`` and ``end`` in the device's (else this) zone."""

    start: str = Field(examples=["22:00"])
    end: str = Field(examples=["08:00"])
    timezone: str


class SupportContact(BaseModel):
    """Where a user of the app can ask for help (the bureau's service lines, never a person)."""

    hotline: str | None = Field(examples=["12315"])
    mailbox: str | None = Field(description="a service mailbox address")
    url: str | None


class AppConfigRead(BaseModel):
    """The app's bootstrap (public; the same for every caller)."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    min_versions: dict[str, str] = Field(
        description="per platform (android, ios, web): older apps get 426 app_version_unsupported"
    )
    store_urls: dict[str, str]
    uploads: UploadLimits
    push_enabled: bool
    push_providers: list[Provider] = Field(
        description="开启的推送服务：无谷歌服务的安卓手机在含 jpush 时以 provider=jpush 注册 / the push providers "
        "that are on; a phone without Google services registers with provider=jpush when it is listed"
    )
    quiet_hours: QuietHours
    terms_version: str
    privacy_version: str
    support: SupportContact
    features: dict[str, bool]
