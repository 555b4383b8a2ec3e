"""A per-process micro-cache for the public read path, honouring the responses' own ``Cache-Control: public``.

The QR page and the public profile say ``public, max-age=60``: a CDN or proxy may serve them for a minute.
This does the same inside each process, so a burst of scans of the same sticker costs one database read per
process and minute, even without a proxy in front. It holds only 200 answers to anonymous GETs on the listed
paths (no ``Authorization`` or ``Cookie``), keyed by path, query and language, bounded in bytes; nothing it
holds is personal, and every process may hold a different minute-old copy, as a CDN would.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.i18n import normalise_locale

#: Paths whose public answers may be cached (each route still opts in with its own Cache-Control).
CACHED_PREFIXES = ("/q/", "/api/v1/public/operators/", "/api/v1/public/qr/")
# Never store an answer that differs per caller or must not be stored.
_PRIVATE_HEADERS = (b"authorization", b"cookie")


@dataclass(frozen=True, slots=True)
class _Entry:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    stored_at: float
    expires_at: float

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers)


def _max_age(cache_control: bytes) -> float | None:
    """The max-age of a ``public`` answer, or None when it may not be shared."""
    directives = [d.strip().lower() for d in cache_control.decode("latin-1").split(",")]
    if "public" not in directives or any(d in ("no-store", "private", "no-cache") for d in directives):
        return None
    for directive in directives:
        if directive.startswith("max-age="):
            try:
                return float(directive.removeprefix("max-age="))
            except ValueError:
                return None
    return None


class PublicCacheMiddleware:
    """Serve repeated anonymous GETs of public pages from memory for at most their max-age."""

    def __init__(self, app: ASGIApp, *, ttl_seconds: float, max_bytes: int) -> None:
        self.app = app
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, bytes, str], _Entry] = OrderedDict()
        self._bytes = 0

    def _key(self, scope: Scope) -> tuple[str, bytes, str] | None:
        if scope["method"] != "GET" or not str(scope["path"]).startswith(CACHED_PREFIXES):
            return None
        headers = dict(scope.get("headers") or [])
        if any(name in headers for name in _PRIVATE_HEADERS):
            return None
        # The answers vary by language only (``Vary: Accept-Language``): key on the language served.
        first = headers.get(b"accept-language", b"").decode("latin-1").split(",")[0].split(";")[0]
        return str(scope["path"]), bytes(scope.get("query_string", b"")), normalise_locale(first or None)

    def _get(self, key: tuple[str, bytes, str], now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _drop(self, key: tuple[str, bytes, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size

    def _put(self, key: tuple[str, bytes, str], entry: _Entry) -> None:
        if entry.size > self.max_bytes // 8:
            return
        self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._key(scope) if scope["type"] == "http" and self.ttl > 0 else None
        if key is None:
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        hit = self._get(key, now)
        if hit is not None:
            age = str(int(now - hit.stored_at)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": hit.status,
                    "headers": [*hit.headers, (b"age", age)],
                }
            )
            await send({"type": "http.response.body", "body": hit.body})
            return
        start: Message | None = None
        ttl: float | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start, ttl
            if message["type"] == "http.response.start":
                start = message
                headers = dict(message.get("headers") or [])
                max_age = _max_age(headers.get(b"cache-control", b""))
                if message["status"] == 200 and max_age and b"set-cookie" not in headers:
                    ttl = min(max_age, self.ttl)
            elif message["type"] == "http.response.body" and ttl is not None and start is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    stored = time.monotonic()
                    self._put(
                        key,
                        _Entry(200, list(start.get("headers") or []), b"".join(chunks), stored, stored + ttl),
                    )
            await send(message)

        await self.app(scope, receive, capture)
