"""Devices, the in-app inbox and preferences: what an account does with its own notifications.

The message catalogue (kinds, categories, which may be muted) is the pure ``notifications`` library; the
backend reads it so the API validates preferences against the very table the workers deliver by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.db import utcnow
from backend.errors import AppError, not_found
from backend.i18n import Locale
from backend.notices.models import Device, InboxNotification, NotificationPreference
from backend.notices.schemas import CategoryRead, DeviceCreate, PreferencesRead
from notifications.templates import KINDS

#: What each category is called in the settings screen.
CATEGORY_LABELS: dict[str, tuple[str, str]] = {
    "verification": ("计量器具检定提醒", "instrument verification reminders"),
    "enforcement": ("约谈与违法认定通知", "interviews and findings"),
    "rating": ("诚信等级变更", "integrity class changes"),
    "correction": ("信息更正结果", "correction decisions"),
    "publication": ("诚信信息公开与撤下", "publication of integrity information"),
    "complaint": ("投诉进展", "complaint progress"),
    "supervision": ("监督报告结果", "supervision report outcomes"),
    "case_work": ("案件办理", "case work"),
}


def token_digest(token: str) -> str:
    """The SHA-256 of a push token (FCM token or JPush registration id): the unique key of a device row."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Registration:
    """A registered device and whether this call created it."""

    device: Device
    created: bool


def register_device(
    session: Session, *, account: Account, data: DeviceCreate, retry: bool = True
) -> Registration:
    """Register or refresh a token: a known token moves to this account, an installation's new token replaces its old one."""
    assert account.id is not None
    now = utcnow()
    by_token = session.execute(
        select(Device).where(col(Device.token_hash) == token_digest(data.token)).with_for_update()
    ).scalar_one_or_none()
    by_installation = None
    if data.installation_id is not None:
        by_installation = session.execute(
            select(Device)
            .where(
                col(Device.account_id) == account.id,
                col(Device.installation_id) == data.installation_id,
                col(Device.active),
            )
            .order_by(col(Device.id).desc())
            .limit(1)
            .with_for_update()
        ).scalar_one_or_none()
    if by_token is not None and by_installation is not None and by_installation.id != by_token.id:
        # The installation's previous token is superseded by one that is already registered: keep one row.
        by_installation.active = False
        by_installation.deactivated_reason = "replaced"
        session.add(by_installation)
        by_installation = None
    device = by_token or by_installation
    created = device is None
    if device is None:
        device = Device(
            account_id=account.id,
            token=data.token,
            token_hash=token_digest(data.token),
            platform=data.platform,
            provider=data.provider,
        )
    # A token re-registered by another account moved with the phone (sign-out, sign-in): it now belongs here.
    device.account_id = account.id
    device.token = data.token
    device.token_hash = token_digest(data.token)
    device.platform = data.platform
    # An installation may move between providers (the same phone, now registered through JPush).
    device.provider = data.provider
    device.locale = data.locale
    device.timezone = data.timezone
    device.app_version = data.app_version
    device.installation_id = data.installation_id or device.installation_id
    device.active = True
    device.deactivated_reason = None
    device.last_seen = now
    if not created:
        session.add(device)
        session.flush()
        return Registration(device, created)
    try:
        with session.begin_nested():
            session.add(device)
            session.flush()
    except IntegrityError:
        if not retry:
            raise
        # The app retried while its first request was in flight: that one inserted the token, so update it.
        return register_device(session, account=account, data=data, retry=False)
    return Registration(device, created)


def own_device(session: Session, account: Account, device_id: int) -> Device:
    """One of the account's devices; 404 for anyone else's."""
    device = session.get(Device, device_id)
    if device is None or device.account_id != account.id:
        raise not_found("设备", "device")
    return device


def deactivate_device(session: Session, device: Device, reason: str = "unregistered_by_user") -> None:
    """Stop pushing to a device (kept, so past deliveries stay explained)."""
    device.active = False
    device.deactivated_reason = reason
    session.add(device)
    session.flush()


def list_devices(session: Session, account: Account) -> Sequence[Device]:
    """The account's active devices, newest first."""
    return (
        session.execute(
            select(Device)
            .where(col(Device.account_id) == account.id, col(Device.active))
            .order_by(col(Device.id).desc())
        )
        .scalars()
        .all()
    )


def unread_count(session: Session, account: Account) -> int:
    """How many inbox entries the account has not read."""
    return int(
        session.execute(
            select(func.count()).where(
                col(InboxNotification.recipient_id) == account.id, col(InboxNotification.read_at).is_(None)
            )
        ).scalar_one()
    )


def inbox_page(
    session: Session, account: Account, *, unread_only: bool, limit: int, offset: int
) -> Sequence[InboxNotification]:
    """A page of the account's inbox, newest first (its counts come with the validator, ``reading.inbox_state``)."""
    where = [col(InboxNotification.recipient_id) == account.id]
    if unread_only:
        where.append(col(InboxNotification.read_at).is_(None))
    return (
        session.execute(
            select(InboxNotification)
            .where(*where)
            .order_by(col(InboxNotification.id).desc())
            .limit(limit)
            .offset(offset)
        )
        .scalars()
        .all()
    )


def mark_read(session: Session, account: Account, notification_id: int) -> InboxNotification:
    """Mark one of the account's entries read (again is harmless); 404 for anyone else's."""
    row = session.get(InboxNotification, notification_id)
    if row is None or row.recipient_id != account.id:
        raise not_found("通知", "notification")
    if row.read_at is None:
        row.read_at = utcnow()
        session.add(row)
        session.flush()
    return row


def mark_all_read(session: Session, account: Account) -> int:
    """Mark every unread entry of the account read; returns how many changed."""
    result = session.execute(
        update(InboxNotification)
        .where(col(InboxNotification.recipient_id) == account.id, col(InboxNotification.read_at).is_(None))
        .values(read_at=utcnow())
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


#: Which message audiences each role belongs to (a supervisor's patrol reports are answered as a supervisor).
ROLE_AUDIENCES: dict[Role, frozenset[str]] = {
    Role.operator: frozenset({"operator"}),
    Role.consumer: frozenset({"complainant"}),
    Role.consumer_device: frozenset({"complainant"}),
    Role.supervisor: frozenset({"supervisor"}),
    Role.staff: frozenset({"staff"}),
    Role.admin: frozenset({"staff"}),
}


def _categories(role: Role) -> dict[str, bool]:
    """The categories of the messages ``role`` receives, and whether each holds a kind it may mute."""
    audiences = ROLE_AUDIENCES.get(role, frozenset())
    found: dict[str, bool] = {}
    for spec in KINDS.values():
        if spec.audience in audiences:
            found[spec.category] = found.get(spec.category, False) or spec.mutable
    return found


def muted_categories(session: Session, account_id: int) -> list[str]:
    """The categories whose pushes the account has muted."""
    row = session.get(NotificationPreference, account_id)
    return list(row.muted_categories) if row is not None else []


def preferences(session: Session, account: Account, locale: Locale) -> PreferencesRead:
    """The account's preferences with every category, labelled in ``locale``."""
    muted = set(muted_categories(session, account.id or 0))
    return PreferencesRead(
        muted_categories=sorted(muted),
        categories=[
            CategoryRead(
                category=category,
                label=_label(category, locale),
                mutable=mutable,
                muted=category in muted,
            )
            for category, mutable in sorted(_categories(account.role).items())
        ],
    )


def _label(category: str, locale: Locale) -> str:
    zh, en = CATEGORY_LABELS.get(category, (category, category))
    return zh if locale == "zh-CN" else en


def set_preferences(
    session: Session, account: Account, muted: Sequence[str], locale: Locale
) -> PreferencesRead:
    """Replace the muted categories; unknown categories and legally required ones are refused with 422."""
    categories = _categories(account.role)
    wanted = sorted(set(muted))
    unknown = [c for c in wanted if c not in categories]
    if unknown:
        raise AppError(
            422,
            "unknown_category",
            "通知类别不存在",
            "unknown notification category",
            {"unknown": unknown, "categories": sorted(categories)},
        )
    required = [c for c in wanted if not categories[c]]
    if required:
        names_zh = "、".join(f"“{CATEGORY_LABELS.get(c, (c, c))[0]}”" for c in required)
        names_en = ", ".join(f"'{CATEGORY_LABELS.get(c, (c, c))[1]}'" for c in required)
        raise AppError(
            422,
            "category_required",
            f"{names_zh}属于依法必须送达的通知，不能关闭",
            f"{names_en} are legally required notices and cannot be muted",
            {"required": required},
        )
    row = session.get(NotificationPreference, account.id)
    if row is None:
        row = NotificationPreference(account_id=account.id or 0)
    row.muted_categories = wanted
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return preferences(session, account, locale)
