"""Sharing with partner departments (Art. 21): keys managed by admins and staff, the feed read with a key.

Admins manage every key; staff manage keys whose divisions all lie inside their own jurisdiction ("谁管辖、
谁负责": a county bureau shares its county with its county's departments), and see only those keys and their
reads. Partner departments themselves never sign in here: they hold a key and read the feed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from backend import ratelimit
from backend.auth.dependencies import StaffScope
from backend.common.schemas import Page, PageLimit, PageOffset
from backend.db import SessionDep
from backend.errors import error_responses
from backend.exchange import service
from backend.exchange.dependencies import FeedKey, StaffApiKey
from backend.exchange.models import ExchangeApiKey
from backend.exchange.schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyRead,
    ApiKeyRevoke,
    ApiKeyRotate,
    FeedPage,
    ReadLogRead,
)

router = APIRouter(prefix="/api/v1", tags=["exchange"])

_ERRORS = error_responses(401, 403, 404)
_CHANGE_ERRORS = {**_ERRORS, **error_responses(409, 422)}


def _issued(key: ExchangeApiKey, raw: str) -> ApiKeyIssued:
    return ApiKeyIssued.model_validate({**service.to_read(key).model_dump(), "api_key": raw})


@router.post(
    "/exchange/keys",
    response_model=ApiKeyIssued,
    status_code=status.HTTP_201_CREATED,
    responses=_CHANGE_ERRORS,
)
def create_key(
    session: SessionDep, scope: StaffScope, body: ApiKeyCreate, response: Response
) -> ApiKeyIssued:
    """Issue a partner department's key for divisions in your jurisdiction; the key is shown only now."""
    key, raw = service.create_key(session, scope=scope, data=body)
    response.headers["Cache-Control"] = "no-store"
    return _issued(key, raw)


@router.get("/exchange/keys", response_model=Page[ApiKeyRead], responses=_ERRORS)
def list_keys(
    session: SessionDep,
    scope: StaffScope,
    include_inactive: bool = False,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[ApiKeyRead]:
    """Keys you manage, newest first; revoked and expired ones only with include_inactive."""
    rows, total = service.list_in_scope(
        session, scope, include_inactive=include_inactive, limit=limit, offset=offset
    )
    return Page(items=[service.to_read(k) for k in rows], total=total, limit=limit, offset=offset)


@router.get("/exchange/keys/{key_id}", response_model=ApiKeyRead, responses=_ERRORS)
def get_key(key: StaffApiKey) -> ApiKeyRead:
    """One key you manage (never its secret)."""
    return service.to_read(key)


@router.post("/exchange/keys/{key_id}/revoke", response_model=ApiKeyRead, responses=_CHANGE_ERRORS)
def revoke_key(session: SessionDep, scope: StaffScope, key: StaffApiKey, body: ApiKeyRevoke) -> ApiKeyRead:
    """Stop a key at once."""
    return service.to_read(service.revoke_key(session, scope=scope, key=key, reason=body.reason))


@router.post(
    "/exchange/keys/{key_id}/rotate",
    response_model=ApiKeyIssued,
    status_code=status.HTTP_201_CREATED,
    responses=_CHANGE_ERRORS,
)
def rotate_key(
    session: SessionDep, scope: StaffScope, key: StaffApiKey, body: ApiKeyRotate, response: Response
) -> ApiKeyIssued:
    """Replace a key's secret (same department and scope); the old key stops now or after grace_hours."""
    new, raw = service.rotate_key(session, scope=scope, key=key, data=body)
    response.headers["Cache-Control"] = "no-store"
    return _issued(new, raw)


@router.get("/exchange/read-log", response_model=Page[ReadLogRead], responses=_ERRORS)
def read_log(
    session: SessionDep,
    scope: StaffScope,
    api_key_id: int | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[ReadLogRead]:
    """Feed calls by the keys you manage, newest first (Art. 20)."""
    rows, total = service.list_read_log(session, scope, api_key_id=api_key_id, limit=limit, offset=offset)
    return Page(items=[ReadLogRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get(
    "/feed/changes",
    response_model=FeedPage,
    response_model_exclude_unset=True,
    responses=error_responses(401, 403, 422, 429),
)
def feed_changes(
    request: Request,
    response: Response,
    session: SessionDep,
    key: FeedKey,
    cursor: Annotated[
        str | None, Query(max_length=200, description="上一页的 next_cursor；不传则从头读取 / from the start")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FeedPage:
    """Class changes and verified records (with their revocations) after the cursor, for the key's scope."""
    position = service.decode_cursor(cursor)
    result = service.read_feed(session, key, cursor=position, limit=limit)
    service.log_read(
        session,
        key,
        result,
        client_ip=ratelimit.client_address(request),
        request_id=getattr(request.state, "request_id", None),
    )
    response.headers["Cache-Control"] = "no-store"
    return FeedPage(
        events=result.events, next_cursor=service.encode_cursor(result.cursor_to), has_more=result.has_more
    )
