"""Who is reading the feed: the partner department's API key, checked and rate-limited per key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from backend import ratelimit
from backend.auth.dependencies import StaffScope
from backend.config import get_settings
from backend.db import SessionDep
from backend.errors import AppError
from backend.exchange import service
from backend.exchange.models import ExchangeApiKey

api_key_header = APIKeyHeader(
    name="X-Api-Key",
    auto_error=False,
    description="合作部门共享密钥（也可用 `Authorization: ApiKey <key>`）/ the partner department's key",
)
#: Failed key checks per client address: keys cannot be guessed, but each attempt costs a lookup.
DENIED_RATE = "30/minute"


def _raw_key(request: Request, header: str | None) -> str | None:
    if header:
        return header
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "apikey" and value.strip():
        return value.strip()
    return None


def _feed_key(
    request: Request, session: SessionDep, header: Annotated[str | None, Security(api_key_header)]
) -> ExchangeApiKey:
    raw = _raw_key(request, header)
    if raw is None:
        raise AppError(
            401,
            "not_authenticated",
            "缺少共享密钥",
            "an API key is required",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    try:
        key = service.authenticate(session, raw)
    except AppError:
        ratelimit.limit(request, "exchange-feed-denied", DENIED_RATE)
        raise
    ratelimit.hit("exchange-feed", key.lookup_id, get_settings().exchange_feed_rate_per_key)
    return key


def _staff_key(session: SessionDep, scope: StaffScope, key_id: int) -> ExchangeApiKey:
    return service.get_in_scope(session, scope, key_id)


FeedKey = Annotated[ExchangeApiKey, Depends(_feed_key)]
StaffApiKey = Annotated[ExchangeApiKey, Depends(_staff_key)]
