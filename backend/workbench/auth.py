"""Workbench sign-in: server-side sessions behind an HttpOnly SameSite=Strict cookie, CSRF tokens, idle timeout.

Passwords, throttling and account checks are ``backend.auth``'s own (``service.authenticate``, the API's
``login`` rate-limit bucket); this module only keeps the browser's session and decides who may use the pages.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from fastapi import Request, Response
from sqlalchemy import delete
from sqlmodel import Session, col, select

from backend.auth.models import BUREAU_READERS, Account, Role
from backend.auth.scope import Scope
from backend.auth.security import token_digest
from backend.auth.service import term_is_current
from backend.config import get_settings
from backend.db import utcnow
from backend.jurisdictions.models import Jurisdiction
from backend.workbench.models import WorkbenchSession

#: A session unused for this long is signed out (a shared office computer left open).
IDLE_TIMEOUT: Final = timedelta(minutes=30)
#: A session's last use is written at most this often: a page view is then a read-only transaction (no row
#: update, no WAL flush at commit), and a session ends at most this much before thirty idle minutes.
TOUCH_EVERY: Final = timedelta(minutes=1)
#: Roles the workbench serves; everyone else is told so on a 403 page.
WORKBENCH_ROLES: Final = frozenset({Role.staff, Role.auditor, Role.admin})
#: Roles that may take actions (the others read only, and are shown no action's form).
ACTING_ROLES: Final = frozenset({Role.staff, Role.admin})
#: The pre-sign-in cookie that pairs with the sign-in form's hidden field (login CSRF).
LOGIN_COOKIE: Final = "gp_wb_login"
PATH: Final = "/workbench"


def cookie_name() -> str:
    """The session cookie; ``__Host-`` (Secure, no Domain, Path=/) wherever the site is served over HTTPS."""
    return "__Host-gp_wb" if _secure() else "gp_wb"


def _secure() -> bool:
    return get_settings().environment in ("staging", "production")


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@dataclass(frozen=True)
class SignedIn:
    """The account behind a request's session, its staff scope and the session's CSRF token."""

    account: Account
    scope: Scope
    csrf_token: str
    session: WorkbenchSession

    @property
    def can_act(self) -> bool:
        """Whether this account may take actions (a read-only auditor may not)."""
        return self.account.role in ACTING_ROLES


def scope_of(session: Session, account: Account) -> Scope | None:
    """The staff scope of a workbench account (as ``StaffScope`` builds it), or None if it has none."""
    if account.role == Role.admin:
        return Scope(account, "/")
    if account.role not in BUREAU_READERS or not account.jurisdiction_code:
        return None
    jurisdiction = session.get(Jurisdiction, account.jurisdiction_code)
    return Scope(account, jurisdiction.path) if jurisdiction is not None else None


def start(session: Session, response: Response, account: Account) -> WorkbenchSession:
    """Open a session for ``account`` and set its cookie on ``response``."""
    assert account.id is not None
    token = secrets.token_urlsafe(32)
    row = WorkbenchSession(
        id_hash=token_digest(token),
        account_id=account.id,
        csrf_token=secrets.token_urlsafe(32),
    )
    session.add(row)
    session.flush()
    response.set_cookie(
        cookie_name(),
        token,
        httponly=True,
        secure=_secure(),
        samesite="strict",
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path=PATH)
    return row


def current(session: Session, request: Request) -> SignedIn | None:
    """The live session of the request, touched; None when absent, idle too long, or its account is unusable."""
    token = request.cookies.get(cookie_name())
    if not token:
        return None
    # The session, its account and the account's division in one round trip (every page starts here); the
    # division stays in the session's identity map, where scope_of and the scope's queries find it.
    found = session.execute(
        select(WorkbenchSession, Account, Jurisdiction)
        .join(Account, col(Account.id) == col(WorkbenchSession.account_id))
        .outerjoin(Jurisdiction, col(Jurisdiction.code) == col(Account.jurisdiction_code))
        .where(col(WorkbenchSession.id_hash) == token_digest(token))
    ).first()
    if found is None:
        return None
    row, account, _division = found
    now = utcnow()
    if now - _aware(row.last_seen_at) > IDLE_TIMEOUT:
        session.delete(row)
        session.flush()
        return None
    if not account.is_active or not term_is_current(account, date.today()):
        return None
    scope = scope_of(session, account) if account.role in WORKBENCH_ROLES else None
    if scope is None:
        return None
    if now - _aware(row.last_seen_at) >= TOUCH_EVERY:
        row.last_seen_at = now
        session.add(row)
    return SignedIn(account, scope, row.csrf_token, row)


def end(session: Session, request: Request, response: Response) -> None:
    """Sign out: delete the session row and the cookie."""
    token = request.cookies.get(cookie_name())
    if token:
        session.execute(delete(WorkbenchSession).where(col(WorkbenchSession.id_hash) == token_digest(token)))
    response.delete_cookie(cookie_name(), path="/", secure=_secure(), httponly=True, samesite="strict")


def csrf_ok(expected: str, given: str | None) -> bool:
    """Whether a form's CSRF field matches, compared in constant time."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def login_token(request: Request) -> str:
    """The pre-sign-in token of the browser (kept if it has one)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def set_login_cookie(response: Response, token: str) -> None:
    """Remember the sign-in form's token in a short-lived strict cookie."""
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, httponly=True, secure=_secure(), samesite="strict", path=PATH
    )
