"""Registered app devices, the in-app inbox, push deliveries and notification preferences."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, ForeignKey, Index, Integer, Text, text
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow


class DevicePlatform(StrEnum):
    """The app's platforms; each gets its own FCM delivery options (Android, APNs, web push)."""

    android = "android"
    ios = "ios"
    web = "web"


class PushProvider(StrEnum):
    """Who carries a device's pushes: FCM (iOS through APNs, Android with Google services) or JPush (Android
    phones sold in mainland China, which have no Google services and reach the makers' own push channels)."""

    fcm = "fcm"
    jpush = "jpush"


class PushStatus(StrEnum):
    """Where one push to one device stands; only ``pending`` rows are ever claimed for sending."""

    pending = "pending"  # waiting for next_attempt_at (quiet hours, a retry) or for its sender
    sending = "sending"  # claimed by one sender; FCM has not answered yet
    sent = "sent"  # FCM accepted it
    invalid_token = "invalid_token"  # FCM said the token is dead; the device was deactivated
    failed = "failed"  # FCM refused the message itself; not retried
    expired = "expired"  # still undelivered when its time to live ran out; the inbox entry stays
    cancelled = "cancelled"  # the device was deactivated before it could be sent


class Device(SQLModel, table=True):
    """One app installation that receives pushes for one account (consumer devices are accounts too)."""

    __tablename__ = "device"
    __table_args__ = (
        Index("ix_device_account_active", "account_id", "active"),
        Index("ix_device_installation", "account_id", "installation_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    # FCM tokens are ~160 characters but may reach 4 KB, beyond what a B-tree entry holds on PostgreSQL:
    # uniqueness is kept on the SHA-256 of the token instead.
    token: str = Field(sa_column=Column(Text, nullable=False))
    token_hash: str = Field(max_length=64, unique=True)
    platform: DevicePlatform = Field(sa_type=enum_type(DevicePlatform))
    # The token is an FCM registration token or a JPush registration id, as this says.
    provider: PushProvider = Field(
        default=PushProvider.fcm,
        sa_type=enum_type(PushProvider),
        sa_column_kwargs={"server_default": PushProvider.fcm.value},
    )
    locale: str = Field(default="zh-CN", max_length=8)
    timezone: str | None = Field(default=None, max_length=64)
    app_version: str | None = Field(default=None, max_length=32)
    installation_id: str | None = Field(default=None, max_length=128)
    active: bool = True
    deactivated_reason: str | None = Field(default=None, max_length=32)
    last_seen: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class InboxNotification(SQLModel, table=True):
    """One notification in a recipient's in-app inbox, written for every notice whatever the push does."""

    __tablename__ = "inbox_notification"
    __table_args__ = (
        Index("ix_inbox_notification_recipient", "recipient_id", "id"),
        Index("ix_inbox_notification_unread", "recipient_id", "read_at"),
        # The SMS fallback sweep reads only unread required notices whose SMS time is set (sms/sweep.py).
        Index(
            "ix_inbox_notification_sms_due",
            "sms_due_at",
            "id",
            postgresql_where=text("read_at IS NULL AND sms_due_at IS NOT NULL"),
            sqlite_where=text("read_at IS NULL AND sms_due_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    recipient_id: int = Field(foreign_key="account.id")
    event_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    kind: str = Field(max_length=40)
    category: str = Field(max_length=32)
    locale: str = Field(max_length=8)
    title: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    # {"zh-CN": {"title", "body"}, "en": {...}}: read in the language the app asks for (None on older rows,
    # which have only ``title``/``body`` in ``locale``).
    texts: dict[str, dict[str, str]] | None = Field(default=None, sa_column=Column(JSON))
    deep_link: str = Field(max_length=300)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # One inbox entry per (event, recipient): a redelivered event finds it and writes nothing.
    dedupe_key: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    read_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # When an unread required notice to an operator falls back to SMS (sms/schedule.py); cleared once the
    # sweep has handled it. Set on one inbox entry per notice and operator.
    sms_due_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class PushDelivery(SQLModel, table=True):
    """One push of one notice to one device: the unit that is claimed, sent once, retried or given up."""

    __tablename__ = "push_delivery"
    __table_args__ = (
        Index("ix_push_delivery_due", "status", "next_attempt_at"),
        Index("ix_push_delivery_event", "event_id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    # Unique per (event, recipient, 'push', device): however often the event is handled, one row, one push.
    dedupe_key: str = Field(max_length=64, unique=True)
    event_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    recipient_id: int = Field(foreign_key="account.id", index=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    inbox_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), ForeignKey("inbox_notification.id")),
    )
    kind: str = Field(max_length=40)
    category: str = Field(max_length=32)
    # The message as rendered for the device's locale and time zone, so a retry at 08:00 sends exactly it.
    title: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    collapse_key: str = Field(max_length=64)
    ttl_seconds: int
    priority: str = Field(max_length=8)
    status: PushStatus = Field(default=PushStatus.pending, sa_type=enum_type(PushStatus))
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # After this the notice is stale (FCM would drop it too): stop retrying; the inbox keeps it.
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # Set when the retry sweep hands the row to a sender, so the next sweep does not hand it out again.
    queued_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    claimed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_error: str | None = Field(default=None, max_length=500)
    provider_message_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class NotificationPreference(SQLModel, table=True):
    """The categories whose pushes an account has muted (legally required notices ignore it)."""

    __tablename__ = "notification_preference"

    account_id: int = Field(
        foreign_key="account.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    muted_categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
