"""API shapes for devices, the in-app inbox and notification preferences (each for the account itself)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from backend.common.audience import Audience
from backend.notices.models import DevicePlatform

#: FCM registration tokens (and the APNs/web-push ids FCM wraps) use URL-safe base64 plus ':'.
FCM_TOKEN_PATTERN = r"^[A-Za-z0-9_:\-]+$"
MAX_TOKEN_LENGTH = 4096


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    # Only IANA zone names: ZoneInfo() alone would also open other files of the system zone directory, and
    # available_timezones() lists some of those too ("localtime", "posixrules", "Factory").
    return frozenset(available_timezones()) - {"Factory", "posixrules", "localtime"}


def _timezone(value: str) -> str:
    if value not in _zones():
        raise PydanticCustomError(
            "invalid_timezone",
            "时区须为 IANA 时区名称，如 Asia/Shanghai / timezone must be an IANA name such as Asia/Shanghai",
        )
    return value


FcmToken = Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_LENGTH, pattern=FCM_TOKEN_PATTERN)]
TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_timezone)]


class DeviceCreate(BaseModel):
    """The app registers (or refreshes) its FCM registration token."""

    model_config = ConfigDict(extra="forbid")
    token: FcmToken
    platform: DevicePlatform
    locale: Literal["zh-CN", "en"]
    timezone: TimeZoneName | None = Field(default=None, description="IANA 时区；缺省用账号时区")
    app_version: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[0-9A-Za-z.+_\-]+$")
    installation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="应用安装标识：同一安装的新令牌替换旧令牌 / the same installation's new token replaces its old one",
    )


class DeviceRead(BaseModel):
    """A registered device as its account sees it (the token itself is never echoed)."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    platform: DevicePlatform
    locale: str
    timezone: str | None
    app_version: str | None
    installation_id: str | None
    active: bool
    last_seen: datetime
    created_at: datetime


class NotificationRead(BaseModel):
    """One inbox entry."""

    # Operators read their inbox too, so it is held to the operator-facing rules (no personal data fields).
    __audience__: ClassVar[Audience] = Audience.OPERATOR
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    category: str
    title: str
    body: str
    deep_link: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPage(BaseModel):
    """One page of the inbox, newest first, with the unread count."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    items: list[NotificationRead]
    total: int
    unread: int
    limit: int
    offset: int


class ReadAllResult(BaseModel):
    """What marking everything read did."""

    updated: int
    unread: int


class CategoryRead(BaseModel):
    """A notification category and whether its pushes may be (and are) muted."""

    category: str
    label: str
    mutable: bool
    muted: bool


class PreferencesRead(BaseModel):
    """The account's muted categories; mutes silence pushes only, the inbox always receives everything."""

    muted_categories: list[str]
    categories: list[CategoryRead]


class PreferencesUpdate(BaseModel):
    """Replace the muted categories."""

    model_config = ConfigDict(extra="forbid")
    muted_categories: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(max_length=32)
