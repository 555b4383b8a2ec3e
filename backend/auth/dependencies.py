"""Who is calling: the bearer's account, role checks and the staff jurisdiction scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Integer, Select, Subquery, bindparam, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from backend.auth.models import BUREAU_READERS, READ_METHODS, READ_ONLY_ROLES, Account, Role
from backend.auth.scope import Scope as Scope  # re-exported: code importing Scope from here still works
from backend.auth.security import AccessClaims, decode_access_token, unauthorized
from backend.auth.service import term_is_current
from backend.dates import bureau_date
from backend.db import SessionDep
from backend.errors import forbidden
from backend.jurisdictions.models import Jurisdiction

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def refuse_read_only(account: Account, method: str) -> None:
    """403 for a read-only account (an auditor) on anything but a read: one check for every route."""
    if account.role in READ_ONLY_ROLES and method.upper() not in READ_METHODS:
        raise forbidden("审计员账号只读，不能办理任何操作", "an auditor's account reads only")


def _usable(account: Account | None) -> Account:
    if account is None or not account.is_active or not term_is_current(account, bureau_date()):
        raise unauthorized("invalid_token", "账号不可用", "account disabled")
    return account


def account_for(session: Session, claims: AccessClaims) -> Account:
    """The account behind verified claims: active and in term (401 otherwise)."""
    return _usable(session.get(Account, claims.account_id))


#: The bound parameter a validator names the signed-in account by (see :func:`joined_to_account`).
ACCOUNT_ID = bindparam("account_id", type_=Integer)


def joined_to_account(validator: Subquery) -> Select[Any]:
    """The account's row joined to ``validator``'s, for :func:`account_with`; build it once, at import.

    ``validator`` is an aggregate without GROUP BY (always exactly one row) naming the account by
    :data:`ACCOUNT_ID`. A statement built once keeps SQLAlchemy from rebuilding it and its cache key on every
    poll, and its text stays the same for the driver's prepared-statement cache.
    """
    return (
        sa_select(Account, validator)
        .join_from(Account, validator, true())
        .where(col(Account.id) == ACCOUNT_ID)
    )


def account_with(
    session: Session, claims: AccessClaims, query: Select[Any], **params: Any
) -> tuple[Account, tuple[Any, ...]]:
    """The account behind verified claims, checked as :func:`account_for`, and its validator's columns.

    One round trip (``query`` from :func:`joined_to_account`, ``params`` its other parameters): a poll that
    answers 304 needs nothing else, and a token of an account that was deactivated or left its term finds no
    usable row and gets 401 before any validator is compared.
    """
    row = session.execute(query, {"account_id": claims.account_id, **params}).one_or_none()
    account = _usable(row[0] if row is not None else None)
    assert row is not None
    return account, tuple(row[1:])


def _current_account(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Account:
    if not token:
        raise unauthorized("not_authenticated", "请先登录", "not authenticated")
    account = account_for(session, decode_access_token(token))
    refuse_read_only(account, request.method)
    return account


async def _bearer_claims(token: Annotated[str | None, Depends(oauth2_scheme)]) -> AccessClaims:
    # On the event loop (a signature check, no database): a polled route then loads the account with
    # :func:`account_for` in its own single worker-thread hop instead of one hop for this and one for itself.
    if not token:
        raise unauthorized("not_authenticated", "请先登录", "not authenticated")
    return decode_access_token(token)


def _optional_account(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Account | None:
    return _current_account(request, session, token) if token else None


CurrentUser = Annotated[Account, Depends(_current_account)]
#: The verified bearer token only; the route loads the account itself with :func:`account_for`.
BearerClaims = Annotated[AccessClaims, Depends(_bearer_claims)]
OptionalUser = Annotated[Account | None, Depends(_optional_account)]


def require_roles(*roles: Role) -> Callable[[Account], Account]:
    """A dependency that admits only the given roles (403 otherwise)."""

    def _check(user: CurrentUser) -> Account:
        if user.role not in roles:
            raise forbidden()
        return user

    return _check


def _staff_scope(session: SessionDep, user: CurrentUser) -> Scope:
    if user.role == Role.admin:
        return Scope(user, "/")
    if user.role not in BUREAU_READERS or not user.jurisdiction_code:
        raise forbidden("仅限市场监管部门工作人员", "staff only")
    jurisdiction = session.get(Jurisdiction, user.jurisdiction_code)
    if jurisdiction is None:
        raise forbidden("账号未绑定有效辖区", "account has no valid jurisdiction")
    return Scope(user, jurisdiction.path)


StaffScope = Annotated[Scope, Depends(_staff_scope)]
AdminUser = Annotated[Account, Depends(require_roles(Role.admin))]
