"""Sign-in throttling that slows password guessing without letting it lock the owner out.

Delays grow per (account, address): an attacker's failures slow the attacker's address, never the owner's
correct password from an address that has not failed. Failures against one account are also counted across
every address (the ``limits`` library, as for the other rate limits): while they exceed
``login_attack_failures`` within ``login_attack_window_seconds`` the account is under attack, an address gets
no free failure (its first wrong password already arms a delay), and the owner is told in the inbox once per
attack window.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend import ratelimit
from backend.auth.models import Account, LoginThrottle
from backend.config import get_settings
from backend.db import utcnow
from backend.errors import AppError
from backend.notices.models import InboxNotification

#: The inbox kind of the notice; no push (the inbox is where the owner looks after signing in).
ATTACK_NOTICE_KIND = "sign_in_attack"
ATTACK_NOTICE_CATEGORY = "account"


def username_key(username: str) -> str:
    """The account part of a throttle key: case- and space-insensitive, so spelling cannot dodge it."""
    return username.strip().lower()[:64]


def pair_key(username: str, address: str) -> str:
    """The throttle row of one (account, address) pair: a digest, as the pair can be longer than the key."""
    return hashlib.sha256(f"{username_key(username)}\x00{address}".encode()).hexdigest()


def login_delay_seconds(failures: int, free_failures: int | None = None) -> int:
    """Delay after ``failures`` consecutive failures: free at first, then doubling up to the cap."""
    s = get_settings()
    over = failures - (s.login_free_failures if free_failures is None else free_failures)
    if over < 0:
        return 0
    return int(min(s.login_max_delay_seconds, math.pow(2, over)))


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def check(session: Session, username: str, address: str) -> LoginThrottle | None:
    """The pair's throttle row; 429 with Retry-After while this address must still wait for this account."""
    throttle = session.get(LoginThrottle, pair_key(username, address))
    blocked = _aware(throttle.blocked_until) if throttle else None
    now = utcnow()
    if blocked and blocked > now:
        retry = max(1, math.ceil((blocked - now).total_seconds()))
        raise AppError(
            429,
            "login_throttled",
            f"登录失败次数过多，请 {retry} 秒后再试",
            f"too many failed sign-ins; try again in {retry} s",
            {"retry_after": retry},
            headers={"Retry-After": str(retry)},
        )
    return throttle


def _attack_rate() -> str:
    s = get_settings()
    return f"{s.login_attack_failures}/{s.login_attack_window_seconds} second"


def under_attack(username: str) -> bool:
    """Count one failure against the account (any address); True once they exceed the attack threshold."""
    return not ratelimit.count("login-account", username_key(username), _attack_rate())


def record_failure(
    session: Session, username: str, address: str, throttle: LoginThrottle | None, account: Account | None
) -> None:
    """Count a failed sign-in: the pair's delay grows (from the first failure while under attack)."""
    attacked = under_attack(username)
    throttle = throttle or LoginThrottle(key=pair_key(username, address), failures=0)
    throttle.failures += 1
    delay = login_delay_seconds(throttle.failures, 0 if attacked else None)
    throttle.blocked_until = utcnow() + timedelta(seconds=delay) if delay else None
    session.add(throttle)
    session.flush()
    if attacked and account is not None:
        notify_owner(session, account)


def record_success(session: Session, throttle: LoginThrottle | None) -> None:
    """A correct password clears its pair's failures (other addresses keep theirs)."""
    if throttle is not None:
        session.delete(throttle)
        session.flush()


def notify_owner(session: Session, account: Account) -> bool:
    """Tell the owner in the inbox that someone is guessing the password: once per attack window."""
    assert account.id is not None
    s = get_settings()
    now = utcnow()
    window = timedelta(seconds=s.login_attack_window_seconds)
    recent = session.execute(
        select(col(InboxNotification.id)).where(
            col(InboxNotification.recipient_id) == account.id,
            col(InboxNotification.kind) == ATTACK_NOTICE_KIND,
            col(InboxNotification.created_at) > now - window,
        )
    ).first()
    if recent is not None:
        return False
    minutes = max(1, s.login_attack_window_seconds // 60)
    failures = s.login_attack_failures
    if account.locale == "en":
        title = "Someone is trying to guess your password"
        body = (
            f"More than {failures} sign-ins with a wrong password were made to your account within {minutes} "
            "minutes. The addresses they came from are being slowed down; your own devices that have not failed "
            "can still sign in. If you are worried your password is known, ask your market regulation bureau "
            "to reset it."
        )
    else:
        title = "有人正在尝试猜测您的登录密码"
        body = (
            f"{minutes} 分钟内，您的账号出现超过 {failures} 次密码错误的登录尝试。这些尝试来自的地址已被限速；"
            "您本人未出错的设备仍可正常登录。如担心密码已泄露，请联系所属市场监管部门重置密码。"
        )
    bucket = int(now.timestamp()) // s.login_attack_window_seconds
    notice = InboxNotification(
        recipient_id=account.id,
        kind=ATTACK_NOTICE_KIND,
        category=ATTACK_NOTICE_CATEGORY,
        locale="en" if account.locale == "en" else "zh-CN",
        title=title,
        body=body,
        deep_link="gongping://me",
        data={"kind": ATTACK_NOTICE_KIND, "window_seconds": s.login_attack_window_seconds},
        dedupe_key=f"{ATTACK_NOTICE_KIND}:{account.id}:{bucket}",
    )
    try:
        # A concurrent failure may have written this window's notice first: one is enough.
        with session.begin_nested():
            session.add(notice)
            session.flush()
    except IntegrityError:
        return False
    return True
