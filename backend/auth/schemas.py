"""API shapes for sign-in and accounts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.auth.models import Role
from backend.common.schemas import IsoDay


class TokenResponse(BaseModel):
    """OAuth2 token response."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class RefreshRequest(BaseModel):
    """A refresh token to rotate or revoke."""

    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=10, max_length=200)


class DeviceRegistration(BaseModel):
    """The app's first start: only its locale."""

    model_config = ConfigDict(extra="forbid")
    locale: Literal["zh-CN", "en"] = "zh-CN"


class DeviceCredential(TokenResponse):
    """A new anonymous device's credential; the secret is shown once."""

    device_id: str
    device_secret: str


class ActivationRequest(BaseModel):
    """An operator user redeems the code staff gave them."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=4, max_length=32)
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=1, max_length=128)
    display_name: str = Field(default="", max_length=100)


class ConsumerRegistration(BaseModel):
    """A consumer who wants an account (optional; devices can complain without one)."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=1, max_length=128)
    locale: Literal["zh-CN", "en"] = "zh-CN"


class AccountCreate(BaseModel):
    """Staff or an admin creates an account."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=1, max_length=128)
    role: Role
    display_name: str = Field(default="", max_length=100)
    jurisdiction_code: str | None = Field(default=None, pattern=r"^\d{6}$")
    organisation: str | None = Field(default=None, max_length=120)
    locale: Literal["zh-CN", "en"] = "zh-CN"
    term_starts_on: IsoDay | None = None
    term_ends_on: IsoDay | None = None

    @model_validator(mode="after")
    def _term_order(self) -> AccountCreate:
        if self.term_starts_on and self.term_ends_on and self.term_ends_on < self.term_starts_on:
            raise ValueError("term_ends_on must not precede term_starts_on")
        return self


class AccountRead(BaseModel):
    """An account as its owner and administrators see it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    role: Role
    display_name: str
    jurisdiction_code: str | None
    operator_id: int | None
    organisation: str | None
    locale: str
    is_active: bool
    term_starts_on: date | None
    term_ends_on: date | None
    created_at: datetime


class ActivationCodeRead(BaseModel):
    """A freshly issued one-time code (shown once)."""

    code: str
    operator_id: int
    expires_at: datetime
