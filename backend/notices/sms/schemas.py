"""SMS contact, reach and report schemas (the phone number is never in a public schema)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from backend.notices.sms.models import ConsentSource


class SmsContactUpdate(BaseModel):
    """The operator's own contact number for SMS notices, with the contact person's consent."""

    model_config = ConfigDict(extra="forbid")
    phone: str = Field(max_length=24, description="mainland mobile number; +86 / 0086 / spaces accepted")
    consent: bool = Field(description="the contact person agrees to receive SMS notices at this number")


class StaffSmsContactUpdate(SmsContactUpdate):
    """Staff record the number with how consent was given (a signed form, a recorded call)."""

    consent_note: str = Field(min_length=2, max_length=200)


class SmsContactRead(BaseModel):
    """The contact number as its owner or the bureau sees it (never the public)."""

    model_config = ConfigDict(from_attributes=True)
    operator_id: int
    phone: str
    consent_source: ConsentSource
    consent_note: str
    consent_at: datetime


class NoticeReachRead(BaseModel):
    """How one required notice reached one operator, channel by channel."""

    model_config = ConfigDict(from_attributes=True)
    event_id: int
    kind: str
    operator_id: int
    operator_name: str
    jurisdiction_code: str
    notified_at: datetime
    read_at: datetime | None
    push_devices: int
    push_delivered_at: datetime | None
    sms_status: str | None = Field(
        description="pending, sending, sent, delivered, not_reached, skipped; null: none"
    )
    sms_reason: str | None = Field(description="why skipped or not reached: no_phone, operator_daily_cap, …")
    sms_trigger: str | None = Field(description="no_device (sent at once) or unread (after the delay)")
    sms_phone: str | None = Field(description="masked: 138****1234")
    sms_sent_at: datetime | None
    sms_delivered_at: datetime | None
    reached_by: str | None = Field(description="inbox_read, sms_delivered or push_delivered; null: not yet")
    reached_at: datetime | None
    follow_up: bool = Field(description="nobody read it and SMS did not reach: phone or write, and record it")


class NoticeReachPage(BaseModel):
    """A page of reach, newest first; pass ``next_before_id`` as ``before_id`` for the next."""

    items: list[NoticeReachRead]
    next_before_id: int | None


class SmsBureauMonthRead(BaseModel):
    """SMS of one bureau in one month: sent is what the provider accepted (what is billed)."""

    jurisdiction_code: str
    bureau_name: str
    month: str
    sent: int
    delivered: int
    not_reached: int
    skipped: int


class SmsReportRead(BaseModel):
    """The month's SMS per bureau, and the skipped / not reached ones by reason."""

    month: str
    bureaus: list[SmsBureauMonthRead]
    reasons: dict[str, int]
