"""Rate limits on abuse-prone endpoints, on the ``limits`` library (memory in dev, Redis when configured)."""

from __future__ import annotations

import math
import time
from functools import lru_cache

from fastapi import Request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from backend import proxies
from backend.config import get_settings
from backend.errors import AppError


@lru_cache
def _limiter() -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(get_settings().rate_limit_storage_url))


def client_address(request: Request) -> str:
    """The caller's address, through trusted proxies only (see ``backend.proxies``)."""
    return proxies.client_address(request)


def hit(bucket: str, key: str, rate: str) -> None:
    """Count one hit of ``key`` in ``bucket``; 429 with Retry-After when over ``rate`` (e.g. "10/minute")."""
    item = parse(rate)
    limiter = _limiter()
    if not limiter.hit(item, bucket, key):
        reset_at, _remaining = limiter.get_window_stats(item, bucket, key)
        retry = max(1, math.ceil(reset_at - time.time()))
        raise AppError(
            429,
            "rate_limited",
            f"请求过于频繁，请 {retry} 秒后再试",
            f"too many requests; retry in {retry} s",
            {"retry_after": retry},
            headers={"Retry-After": str(retry)},
        )


def count(bucket: str, key: str, rate: str) -> bool:
    """Count one hit of ``key`` in ``bucket`` without refusing anything; False once over ``rate``."""
    return _limiter().hit(parse(rate), bucket, key)


def limit(request: Request, bucket: str, rate: str) -> None:
    """Rate-limit by client address."""
    hit(bucket, client_address(request), rate)


def reset() -> None:
    """Forget every counter (tests)."""
    _limiter().storage.reset()
