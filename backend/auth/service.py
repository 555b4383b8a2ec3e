"""Sign-in with growing delays, refresh-token rotation with reuse detection, devices and activation."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import SYSTEM, Actor, snapshot
from backend.auth import throttle
from backend.auth.models import Account, ActivationCode, RefreshToken, Role
from backend.auth.security import (
    AccessClaims,
    check_password_policy,
    create_access_token,
    dummy_hash,
    hash_password,
    new_opaque_token,
    token_digest,
    unauthorized,
    verify_password,
)
from backend.config import get_settings
from backend.dates import bureau_date
from backend.db import aware, utcnow
from backend.errors import AppError, conflict

AUDIT_EXCLUDE = ("password_hash",)


@dataclass(frozen=True)
class TokenPair:
    """An access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    expires_in: int


def _aware(at: datetime | None) -> datetime | None:
    return None if at is None else aware(at)


def authenticate(session: Session, username: str, password: str, address: str = "unknown") -> Account:
    """Check a username and password from ``address``, with growing delays per (account, address); 401 on
    failure, 429 while this address must wait (backend/auth/throttle.py)."""
    pair = throttle.check(session, username, address)
    account = session.exec(select(Account).where(col(Account.username) == username.strip())).first()
    ok = verify_password(account.password_hash if account else dummy_hash(), password)
    if account is None or not ok or not account.is_active or not term_is_current(account, bureau_date()):
        throttle.record_failure(session, username, address, pair, account)
        error = unauthorized("invalid_credentials", "用户名或密码错误", "wrong username or password")
        error.keep_changes = True
        raise error
    throttle.record_success(session, pair)
    return account


def term_is_current(account: Account, today: date) -> bool:
    """Volunteer supervisors act only within their appointment term (Art. 17)."""
    if account.role != Role.supervisor:
        return True
    if account.term_starts_on and today < account.term_starts_on:
        return False
    return not (account.term_ends_on and today > account.term_ends_on)


def issue_tokens(session: Session, account: Account, family_id: str | None = None) -> TokenPair:
    """A new access token and a refresh token in ``family_id`` (a new family at sign-in)."""
    assert account.id is not None
    s = get_settings()
    token, digest = new_opaque_token()
    session.add(
        RefreshToken(
            token_hash=digest,
            account_id=account.id,
            family_id=family_id or uuid.uuid4().hex,
            expires_at=utcnow() + timedelta(days=s.refresh_token_days),
        )
    )
    session.flush()
    claims = AccessClaims(account.id, account.role.value, account.jurisdiction_code, account.operator_id)
    return TokenPair(create_access_token(claims), token, s.access_token_minutes * 60)


class RefreshReused(AppError):
    """A rotated refresh token came back: its whole family is revoked, and that must be committed."""


def rotate(session: Session, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; a reused one revokes its whole family."""
    row = session.execute(
        select(RefreshToken)
        .where(col(RefreshToken.token_hash) == token_digest(refresh_token))
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise unauthorized("invalid_refresh_token", "刷新令牌无效", "invalid refresh token")
    now = utcnow()
    if row.used_at is not None or row.revoked_at is not None:
        revoke_family(session, row.family_id)
        raise RefreshReused(
            401,
            "refresh_token_reused",
            "刷新令牌已被使用，为安全起见该登录已全部失效，请重新登录",
            "refresh token reuse detected; all sessions of this sign-in are revoked",
            headers={"WWW-Authenticate": "Bearer"},
            keep_changes=True,
        )
    expires = _aware(row.expires_at)
    if expires is not None and expires <= now:
        raise unauthorized("refresh_token_expired", "刷新令牌已过期，请重新登录", "refresh token expired")
    account = session.get(Account, row.account_id)
    if account is None or not account.is_active:
        raise unauthorized("invalid_refresh_token", "刷新令牌无效", "invalid refresh token")
    row.used_at = now
    session.add(row)
    return issue_tokens(session, account, row.family_id)


def revoke_family(session: Session, family_id: str) -> None:
    """Revoke every refresh token of one sign-in."""
    session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    session.flush()


def logout(session: Session, refresh_token: str) -> None:
    """Revoke the sign-in that ``refresh_token`` belongs to (unknown tokens are ignored)."""
    row = session.execute(
        select(RefreshToken).where(col(RefreshToken.token_hash) == token_digest(refresh_token))
    ).scalar_one_or_none()
    if row is not None:
        revoke_family(session, row.family_id)


def create_account(
    session: Session,
    *,
    actor: Actor,
    username: str,
    password: str,
    role: Role,
    display_name: str = "",
    jurisdiction_code: str | None = None,
    operator_id: int | None = None,
    organisation: str | None = None,
    locale: str = "zh-CN",
    term_starts_on: date | None = None,
    term_ends_on: date | None = None,
    check_policy: bool = True,
) -> Account:
    """Create an account (audited); the username must be free."""
    username = username.strip()
    if check_policy:
        check_password_policy(password, username)
    if session.execute(select(col(Account.id)).where(col(Account.username) == username)).first() is not None:
        raise conflict("username_taken", "用户名已被使用", "username already taken")
    account = Account(
        username=username,
        password_hash=hash_password(password),
        role=role,
        display_name=display_name,
        jurisdiction_code=jurisdiction_code,
        operator_id=operator_id,
        organisation=organisation,
        locale=locale,
        term_starts_on=term_starts_on,
        term_ends_on=term_ends_on,
        appointed_by_id=actor.id if role == Role.supervisor else None,
    )
    session.add(account)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="account.create",
        entity_type="account",
        entity_id=account.id or 0,
        after=snapshot(account, AUDIT_EXCLUDE),
    )
    return account


def register_device(session: Session, locale: str) -> tuple[Account, str]:
    """A credential for an anonymous consumer device: no phone number or name is needed to complain."""
    device_id = f"dev_{uuid.uuid4().hex}"
    secret = secrets.token_urlsafe(24)
    account = create_account(
        session,
        actor=SYSTEM,
        username=device_id,
        password=secret,
        role=Role.consumer_device,
        locale=locale,
        check_policy=False,
    )
    return account, secret


def issue_activation_code(
    session: Session, *, actor: Account, operator_id: int
) -> tuple[str, ActivationCode]:
    """A one-time code (shown once) the operator uses to create its user account."""
    assert actor.id is not None
    code = "-".join(secrets.token_hex(2).upper() for _ in range(3))
    row = ActivationCode(
        code_hash=token_digest(code),
        operator_id=operator_id,
        issued_by_id=actor.id,
        expires_at=utcnow() + timedelta(days=get_settings().activation_code_days),
    )
    session.add(row)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="activation_code.issue",
        entity_type="operator",
        entity_id=operator_id,
        after={"activation_code_id": row.id, "expires_at": row.expires_at},
    )
    return code, row


def activate(session: Session, *, code: str, username: str, password: str, display_name: str) -> Account:
    """Redeem an activation code for an operator user account; each code works once."""
    row = session.execute(
        select(ActivationCode)
        .where(col(ActivationCode.code_hash) == token_digest(code.strip().upper()))
        .with_for_update()
    ).scalar_one_or_none()
    expires = _aware(row.expires_at) if row else None
    if row is None or row.used_at is not None or (expires is not None and expires <= utcnow()):
        raise AppError(
            400, "invalid_activation_code", "激活码无效或已使用", "activation code invalid or used"
        )
    account = create_account(
        session,
        actor=SYSTEM,
        username=username,
        password=password,
        role=Role.operator,
        display_name=display_name,
        operator_id=row.operator_id,
    )
    row.used_at = utcnow()
    row.account_id = account.id
    session.add(row)
    session.flush()
    return account
