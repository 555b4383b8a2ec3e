"""API shapes for devices, the in-app inbox and notification preferences (each for the account itself)."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from backend.common.audience import Audience
from backend.notices.models import DevicePlatform, PushProvider

#: FCM registration tokens (and the APNs/web-push ids FCM wraps) use URL-safe base64 plus ':'.
FCM_TOKEN_PATTERN = r"^[A-Za-z0-9_:\-]+$"
#: A JPush registration id: 11 characters (32-bit ids) or 19 (64-bit ids, JPush SDKs since 2016), lower-case hex
#: with a fixed lead: first [01], second [0-9a], third the platform [0-2] (0 Android, 1 iOS). Only JPush's
#: client SDK issues them; JPush answers 1003 for a malformed one, so it is refused at registration instead.
JPUSH_REGISTRATION_ID_PATTERN = r"^[01][0-9a][0-2][0-9a-f]{8}(?:[0-9a-f]{8})?$"
MAX_TOKEN_LENGTH = 4096
_TOKEN_PATTERNS = {
    PushProvider.fcm: re.compile(FCM_TOKEN_PATTERN),
    PushProvider.jpush: re.compile(JPUSH_REGISTRATION_ID_PATTERN),
}


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


def _provider(value: object) -> object:
    # Before the enum check, so an unknown provider gets its own code rather than a generic enum error.
    if not isinstance(value, str) or value not in PushProvider.__members__:
        raise PydanticCustomError(
            "invalid_push_provider",
            "推送服务须为 fcm 或 jpush / provider must be fcm or jpush",
        )
    return value


PushToken = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TOKEN_LENGTH,
        description=(
            "FCM 注册令牌（provider=fcm，URL 安全 base64 与 ':'）或极光 RegistrationID（provider=jpush，"
            "11 或 19 位小写十六进制）/ the FCM registration token, or the JPush registration id"
        ),
    ),
]
Provider = Annotated[PushProvider, BeforeValidator(_provider)]
TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_timezone)]


class DeviceCreate(BaseModel):
    """The app registers (or refreshes) its push token: FCM's by default, JPush's on phones without Google services."""

    model_config = ConfigDict(extra="forbid")
    token: PushToken
    provider: Provider = Field(
        default=PushProvider.fcm,
        description="推送服务：fcm（默认）或 jpush（无谷歌服务的安卓手机）/ push provider: fcm (default) or jpush",
    )
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

    @model_validator(mode="after")
    def _token_fits_provider(self) -> DeviceCreate:
        """The token must have the shape its provider issues: a JPush id is not an FCM token and vice versa."""
        if not _TOKEN_PATTERNS[self.provider].fullmatch(self.token):
            if self.provider is PushProvider.jpush:
                raise PydanticCustomError(
                    "invalid_push_token",
                    "极光 RegistrationID 格式不正确 / not a JPush registration id (11 or 19 lower-case hex)",
                )
            raise PydanticCustomError(
                "invalid_push_token",
                "FCM 注册令牌格式不正确 / not an FCM registration token (URL-safe base64 and ':')",
            )
        return self


class DeviceRead(BaseModel):
    """A registered device as its account sees it (the token itself is never echoed)."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    provider: PushProvider
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
