"""Device registration, the in-app inbox and notification preferences of the signed-in account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend.auth.dependencies import BearerClaims, CurrentUser
from backend.auth.security import AccessClaims
from backend.common.etag import not_modified, tag
from backend.common.schemas import PageLimit, PageOffset
from backend.db import SessionDep, read_only
from backend.errors import error_responses
from backend.i18n import request_locale
from backend.notices import reading, service
from backend.notices.schemas import (
    DeviceCreate,
    DeviceRead,
    NotificationPage,
    NotificationRead,
    PreferencesRead,
    PreferencesUpdate,
    ReadAllResult,
)

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.post(
    "/devices",
    response_model=DeviceRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": DeviceRead, "description": "already registered; refreshed"},
        **error_responses(401, 422),
    },
)
def register_device(
    session: SessionDep, user: CurrentUser, body: DeviceCreate, response: Response
) -> DeviceRead:
    """Register this app installation's push token (any signed-in account, anonymous devices too).

    `provider` says who carries the pushes: `fcm` (the default: iOS, Android with Google services) with the
    FCM registration token, or `jpush` (Android phones without Google services) with the JPush registration
    id (11 or 19 lower-case hex characters, as the JPush SDK reports it). An unknown provider is 422
    `invalid_push_provider`; a token not shaped as its provider issues them is 422 `invalid_push_token`.
    Nothing is stored in either case.
    """
    registration = service.register_device(session, account=user, data=body)
    if not registration.created:
        response.status_code = status.HTTP_200_OK
    return DeviceRead.model_validate(registration.device)


@router.get("/devices", response_model=list[DeviceRead], responses=error_responses(401))
def list_devices(session: SessionDep, user: CurrentUser) -> list[DeviceRead]:
    """Your devices that receive pushes."""
    return [DeviceRead.model_validate(d) for d in service.list_devices(session, user)]


@router.delete(
    "/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404)
)
def delete_device(session: SessionDep, user: CurrentUser, device_id: int) -> None:
    """Stop pushes to one of your devices (on sign-out)."""
    service.deactivate_device(session, service.own_device(session, user, device_id))


@router.get(
    "/me/notifications",
    response_model=NotificationPage,
    tags=["me"],
    responses={304: {"description": "unchanged since the ETag sent"}, **error_responses(401, 422)},
)
@read_only
async def list_notifications(
    request: Request,
    response: Response,
    session: SessionDep,
    claims: BearerClaims,
    unread_only: Annotated[bool, Query()] = False,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
) -> NotificationPage | Response:
    """Your inbox, newest first, with how many are unread.

    Titles and bodies follow `?lang=` or `Accept-Language`, else the locale your device registered with.
    Send the `ETag` back as `If-None-Match` to get 304 when nothing changed.
    """
    # A poll the app repeats: the account, the validator and the page in one worker-thread hop; the account
    # and the validator in one statement, so an unchanged poll is one round trip.
    return await run_in_threadpool(_inbox, request, response, session, claims, unread_only, limit, offset)


def _inbox(
    request: Request,
    response: Response,
    session: Session,
    claims: AccessClaims,
    unread_only: bool,
    limit: int,
    offset: int,
) -> NotificationPage | Response:
    user, state = reading.polled_inbox(
        session, request, claims, unread_only=unread_only, limit=limit, offset=offset
    )
    unchanged = not_modified(request, state.etag)
    if unchanged is not None:
        return unchanged
    tag(response, state.etag)
    rows = service.inbox_page(session, user, unread_only=unread_only, limit=limit, offset=offset)
    return NotificationPage(
        items=[reading.to_read(r, state.locale) for r in rows],
        total=state.total,
        unread=state.unread,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/me/notifications/read-all", response_model=ReadAllResult, tags=["me"], responses=error_responses(401)
)
def read_all(session: SessionDep, user: CurrentUser) -> ReadAllResult:
    """Mark every notification read."""
    updated = service.mark_all_read(session, user)
    return ReadAllResult(updated=updated, unread=service.unread_count(session, user))


@router.post(
    "/me/notifications/{notification_id}/read",
    response_model=NotificationRead,
    tags=["me"],
    responses=error_responses(401, 404),
)
def read_one(
    request: Request, session: SessionDep, user: CurrentUser, notification_id: int
) -> NotificationRead:
    """Mark one notification read."""
    row = service.mark_read(session, user, notification_id)
    return reading.to_read(row, reading.reader_locale(session, request, user))


@router.get(
    "/me/notification-preferences",
    response_model=PreferencesRead,
    tags=["me"],
    responses=error_responses(401),
)
def get_preferences(request: Request, session: SessionDep, user: CurrentUser) -> PreferencesRead:
    """Which categories' pushes you have muted; legally required notices cannot be muted."""
    return service.preferences(session, user, request_locale(request))


@router.put(
    "/me/notification-preferences",
    response_model=PreferencesRead,
    tags=["me"],
    responses=error_responses(401, 422),
)
def put_preferences(
    request: Request, session: SessionDep, user: CurrentUser, body: PreferencesUpdate
) -> PreferencesRead:
    """Mute the pushes of optional categories (the inbox still receives everything)."""
    return service.set_preferences(session, user, body.muted_categories, request_locale(request))
