"""Sign-in, token rotation, device credentials, activation and account administration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend import audit
from backend.audit.service import SYSTEM, snapshot
from backend.auth import service
from backend.auth.dependencies import BearerClaims, StaffScope, account_for
from backend.auth.models import Role
from backend.auth.schemas import (
    AccountCreate,
    AccountRead,
    ActivationRequest,
    ConsumerRegistration,
    DeviceCredential,
    DeviceRegistration,
    RefreshRequest,
    TokenResponse,
)
from backend.auth.security import AccessClaims
from backend.db import SessionDep, read_only
from backend.errors import AppError, error_responses, forbidden, not_found
from backend.jurisdictions.models import Jurisdiction
from backend.ratelimit import client_address, limit

router = APIRouter(prefix="/api/v1", tags=["auth"])

_AUTH_ERRORS = error_responses(401, 422, 429)


def _pair(pair: service.TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/token", response_model=TokenResponse, responses=_AUTH_ERRORS)
def token(
    request: Request, session: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenResponse:
    """Sign in with username and password (OAuth2 password flow)."""
    limit(request, "login", "30/minute")
    account = service.authenticate(session, form.username, form.password, client_address(request))
    return _pair(service.issue_tokens(session, account))


@router.post("/auth/refresh", response_model=TokenResponse, responses=_AUTH_ERRORS)
def refresh(session: SessionDep, body: RefreshRequest) -> TokenResponse:
    """Rotate a refresh token; reusing a rotated one revokes the whole sign-in."""
    return _pair(service.rotate(session, body.refresh_token))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(session: SessionDep, body: RefreshRequest) -> None:
    """Revoke the sign-in a refresh token belongs to."""
    service.logout(session, body.refresh_token)


@router.post("/auth/device", response_model=DeviceCredential, status_code=201, responses=_AUTH_ERRORS)
def register_device(request: Request, session: SessionDep, body: DeviceRegistration) -> DeviceCredential:
    """Register the app on first start: an anonymous credential, no phone number needed."""
    limit(request, "device", "20/hour")
    account, secret = service.register_device(session, body.locale)
    pair = service.issue_tokens(session, account)
    return DeviceCredential(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        device_id=account.username,
        device_secret=secret,
    )


@router.post(
    "/auth/register",
    response_model=AccountRead,
    status_code=201,
    responses={**_AUTH_ERRORS, **error_responses(409)},
)
def register_consumer(request: Request, session: SessionDep, body: ConsumerRegistration) -> AccountRead:
    """Create a consumer account."""
    limit(request, "register", "10/hour")
    account = service.create_account(
        session,
        actor=SYSTEM,
        username=body.username,
        password=body.password,
        role=Role.consumer,
        locale=body.locale,
    )
    return AccountRead.model_validate(account)


@router.post(
    "/auth/activate", response_model=AccountRead, status_code=201, responses=error_responses(400, 409, 422)
)
def activate(request: Request, session: SessionDep, body: ActivationRequest) -> AccountRead:
    """Create an operator user account with the one-time code staff issued."""
    limit(request, "activate", "10/minute")
    account = service.activate(
        session,
        code=body.code,
        username=body.username,
        password=body.password,
        display_name=body.display_name,
    )
    return AccountRead.model_validate(account)


@router.get("/me", response_model=AccountRead, tags=["me"], responses=error_responses(401))
@read_only
async def me(session: SessionDep, claims: BearerClaims) -> AccountRead:
    """The signed-in account."""
    # The app's first call on every start: one worker-thread hop for the account (the dependency needs none).
    return await run_in_threadpool(_me, session, claims)


def _me(session: Session, claims: AccessClaims) -> AccountRead:
    return AccountRead.model_validate(account_for(session, claims))


# Who may create which roles: admins create anything; staff appoint colleagues and supervisors in their scope.
_STAFF_CREATABLE = {Role.staff, Role.supervisor}
_NEEDS_JURISDICTION = {Role.staff, Role.auditor, Role.supervisor}


@router.post(
    "/accounts",
    response_model=AccountRead,
    status_code=201,
    tags=["accounts"],
    responses=error_responses(401, 403, 409, 422),
)
def create_account(session: SessionDep, scope: StaffScope, body: AccountCreate) -> AccountRead:
    """Create a staff, auditor (admins only), supervisor, institution, association or department account."""
    actor = scope.user
    if body.role in (Role.operator, Role.consumer, Role.consumer_device):
        raise AppError(
            422,
            "role_not_creatable",
            "该角色通过激活或注册创建",
            "this role is created by activation or sign-up",
        )
    if actor.role != Role.admin and body.role not in _STAFF_CREATABLE:
        raise forbidden()
    if body.role in _NEEDS_JURISDICTION and body.jurisdiction_code is None:
        raise AppError(422, "jurisdiction_required", "须指定辖区", "jurisdiction_code is required")
    if body.jurisdiction_code is not None:
        jurisdiction = session.get(Jurisdiction, body.jurisdiction_code)
        if jurisdiction is None:
            raise AppError(
                422, "invalid_jurisdiction_code", "行政区划代码不存在", "unknown jurisdiction code"
            )
        if not scope.covers(jurisdiction.path):
            raise forbidden("不能在本辖区以外创建账号", "outside your jurisdiction")
    account = service.create_account(
        session,
        actor=actor,
        username=body.username,
        password=body.password,
        role=body.role,
        display_name=body.display_name,
        jurisdiction_code=body.jurisdiction_code,
        organisation=body.organisation,
        locale=body.locale,
        term_starts_on=body.term_starts_on,
        term_ends_on=body.term_ends_on,
    )
    return AccountRead.model_validate(account)


@router.post(
    "/accounts/{account_id}/deactivate",
    response_model=AccountRead,
    tags=["accounts"],
    responses=error_responses(401, 403, 404),
)
def deactivate_account(session: SessionDep, scope: StaffScope, account_id: int) -> AccountRead:
    """Disable an account in your scope and revoke its sign-ins."""
    from backend.auth.models import Account

    account = session.get(Account, account_id)
    if account is None or account.id == scope.user.id:
        raise not_found("账号", "account")
    if scope.path != "/":
        jurisdiction = (
            session.get(Jurisdiction, account.jurisdiction_code) if account.jurisdiction_code else None
        )
        if jurisdiction is None or not scope.covers(jurisdiction.path):
            raise not_found("账号", "account")
    before = snapshot(account, service.AUDIT_EXCLUDE)
    account.is_active = False
    session.add(account)
    session.flush()
    audit.service.record(
        session,
        actor=scope.user,
        action="account.deactivate",
        entity_type="account",
        entity_id=account_id,
        before=before,
        after=snapshot(account, service.AUDIT_EXCLUDE),
    )
    return AccountRead.model_validate(account)
