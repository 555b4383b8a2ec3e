"""Who is calling: the bearer's account, role checks and the staff jurisdiction scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from backend.auth.models import Account, Role
from backend.auth.scope import Scope as Scope  # re-exported: code importing Scope from here still works
from backend.auth.security import decode_access_token, unauthorized
from backend.auth.service import term_is_current
from backend.dates import bureau_date
from backend.db import SessionDep
from backend.errors import forbidden
from backend.jurisdictions.models import Jurisdiction

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def _current_account(session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Account:
    if not token:
        raise unauthorized("not_authenticated", "请先登录", "not authenticated")
    claims = decode_access_token(token)
    account = session.get(Account, claims.account_id)
    if account is None or not account.is_active or not term_is_current(account, bureau_date()):
        raise unauthorized("invalid_token", "账号不可用", "account disabled")
    return account


def _optional_account(
    session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Account | None:
    return _current_account(session, token) if token else None


CurrentUser = Annotated[Account, Depends(_current_account)]
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
    if user.role != Role.staff or not user.jurisdiction_code:
        raise forbidden("仅限市场监管部门工作人员", "staff only")
    jurisdiction = session.get(Jurisdiction, user.jurisdiction_code)
    if jurisdiction is None:
        raise forbidden("账号未绑定有效辖区", "account has no valid jurisdiction")
    return Scope(user, jurisdiction.path)


StaffScope = Annotated[Scope, Depends(_staff_scope)]
AdminUser = Annotated[Account, Depends(require_roles(Role.admin))]
