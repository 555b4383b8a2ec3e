"""SMS contacts (with consent), SMS messages (one per required notice and operator) and daily counters."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Column, Date, DateTime, ForeignKey, Index, Integer, Text
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow


class SmsStatus(StrEnum):
    """Where one SMS stands; only ``pending`` rows are ever claimed, so a message is sent at most once."""

    pending = "pending"  # waiting for next_attempt_at (quiet hours, a retry after a failed delivery)
    sending = "sending"  # claimed and committed before the provider was called; its answer not recorded
    sent = "sent"  # the provider accepted it (BizId); waiting for the delivery receipt
    delivered = "delivered"  # the receipt says the phone got it
    not_reached = "not_reached"  # failed after the retries, refused, or no receipt: staff phone or write
    skipped = (
        "skipped"  # never sent: no phone, a cap or the budget, a variable too long, the notice went stale
    )


FINAL = frozenset({SmsStatus.delivered, SmsStatus.not_reached, SmsStatus.skipped})


class ConsentSource(StrEnum):
    """Who recorded the contact person's consent to be sent SMS."""

    operator = "operator"  # the operator's own account, in the app
    staff = "staff"  # bureau staff, from a signed form or a recorded call (the note says which)


class SmsContact(SQLModel, table=True):
    """An operator's contact person's mobile number, kept only while they consent to SMS notices."""

    __tablename__ = "sms_contact"

    operator_id: int = Field(
        foreign_key="operator.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    # Eleven digits, no +86: what Aliyun takes for a mainland number.
    phone: str = Field(max_length=11)
    consent_source: ConsentSource = Field(sa_type=enum_type(ConsentSource))
    consent_by_id: int = Field(foreign_key="account.id")
    consent_note: str = Field(default="", max_length=200)
    consent_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class SmsMessage(SQLModel, table=True):
    """One SMS for one required notice to one operator: claimed, sent once, tracked to its receipt."""

    __tablename__ = "sms_message"
    __table_args__ = (
        Index("ix_sms_message_due", "status", "next_attempt_at"),
        Index("ix_sms_message_operator", "operator_id", "id"),
        Index("ix_sms_message_bureau_month", "jurisdiction_code", "created_at"),
    )

    # Also the provider's OutId: a message whose sender died is found again by it, never sent again blindly.
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    # Unique per (event, kind, operator): however often the sweep meets the notice, one row, one SMS.
    dedupe_key: str = Field(max_length=64, unique=True)
    event_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=40)
    operator_id: int = Field(foreign_key="operator.id")
    inbox_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), ForeignKey("inbox_notification.id")),
    )
    # The bureau that pays for it: the operator's jurisdiction when the message was made.
    jurisdiction_code: str = Field(max_length=6)
    # Why it was made: "no_device" (sent at once) or "unread" (the push was not read in time).
    trigger: str = Field(max_length=16)
    template_key: str = Field(default="", max_length=40)
    params: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The number while the message is in flight (the provider's records are looked up by it); erased once final.
    phone: str | None = Field(default=None, max_length=11)
    phone_masked: str = Field(default="", max_length=11)
    status: SmsStatus = Field(default=SmsStatus.pending, sa_type=enum_type(SmsStatus))
    reason: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    claimed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    receipt_checked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    biz_id: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class SmsDailyCount(SQLModel, table=True):
    """SMS charged per bureau-local day and scope (``all``, ``operator:{id}``): the caps count here, atomically."""

    __tablename__ = "sms_daily_count"

    day: date = Field(sa_column=Column(Date, primary_key=True))
    scope: str = Field(max_length=32, primary_key=True)
    sent: int = 0
