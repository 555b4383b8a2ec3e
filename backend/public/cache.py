"""Caching of the public read path: a per-process micro-cache, then the shared store, then rendering.

The QR page and the public profile say ``public, max-age=60``: a CDN or proxy may serve them for a minute.
This does the same inside each process, so a burst of scans of the same sticker costs one database read per
process and minute, even without a proxy in front. It holds only 200 answers to anonymous GETs on the listed
paths (no ``Authorization`` or ``Cookie``), keyed by path, query and language, bounded in bytes; nothing it
holds is personal, and every process may hold a different minute-old copy, as a CDN would.

Behind it, when configured, the shared store (``backend.public.store``) keeps every rendered answer for all
processes until the operator behind it changes: a code scanned once an hour is still not rendered twice.
"""

from __future__ import annotations

import gzip
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.i18n import normalise_locale
from backend.public.store import PublicStore, StoredAnswer, page_key

#: ``scope["state"]`` keys a route sets on a storable answer: the operators it shows, and for how many seconds
#: it stays true without any change (an instrument turning due or overdue at midnight), if that is bounded.
OPERATORS_STATE = "public_operator_ids"
FRESH_STATE = "public_fresh_seconds"

#: Paths whose public answers may be cached (each route still opts in with its own Cache-Control).
CACHED_PREFIXES = ("/q/", "/api/v1/public/operators/", "/api/v1/public/qr/")
# Never store an answer that differs per caller or must not be stored.
_PRIVATE_HEADERS = (b"authorization", b"cookie")


#: Bodies smaller than this go uncompressed (gzip's framing would eat the gain).
_GZIP_MIN_BYTES = 1024


@dataclass(slots=True)
class Answer:
    """A kept 200 answer in the forms a client may take: plain, and gzip-compressed when that is smaller.

    The headers are the rendered ones; the gzip form's replace Content-Length and add Content-Encoding. The
    plain body of an answer read back compressed from the store is decompressed once, on first need.
    """

    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    gzip_body: bytes | None
    gzip_headers: list[tuple[bytes, bytes]] | None = None

    def __post_init__(self) -> None:
        if self.gzip_body is not None:
            self.gzip_headers = [
                *((k, v) for k, v in self.headers if k != b"content-length"),
                (b"content-length", str(len(self.gzip_body)).encode()),
                (b"content-encoding", b"gzip"),
            ]

    @classmethod
    def rendered(cls, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        """A freshly rendered answer, compressed once here rather than per request."""
        if len(body) < _GZIP_MIN_BYTES or any(k == b"content-encoding" for k, _v in headers):
            return cls(headers, body, None)
        compressed = gzip.compress(body, compresslevel=6, mtime=0)
        return cls(headers, body, compressed if len(compressed) < len(body) else None)

    @classmethod
    def from_store(cls, stored: StoredAnswer) -> Answer:
        if stored.gzipped:
            return cls(stored.headers, None, stored.body)
        return cls(stored.headers, stored.body, None)

    def to_store(self) -> StoredAnswer:
        if self.gzip_body is not None:
            return StoredAnswer(self.headers, self.gzip_body, time.time(), gzipped=True)
        assert self.body is not None
        return StoredAnswer(self.headers, self.body, time.time())

    def form(self, gzip_ok: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """Headers and body for a client that does (or does not) accept gzip."""
        if gzip_ok and self.gzip_body is not None and self.gzip_headers is not None:
            return self.gzip_headers, self.gzip_body
        if self.body is None:
            assert self.gzip_body is not None
            self.body = gzip.decompress(self.gzip_body)
        return self.headers, self.body

    @property
    def size(self) -> int:
        return (
            len(self.body or b"")
            + len(self.gzip_body or b"")
            + 2 * sum(len(k) + len(v) for k, v in self.headers)
        )


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: Answer
    stored_at: float
    expires_at: float

    @property
    def size(self) -> int:
        return self.answer.size


def accepts_gzip(value: bytes) -> bool:
    """Whether an Accept-Encoding header admits gzip (``gzip``, ``*``; not with ``q=0``)."""
    for part in value.lower().split(b","):
        coding, _, params = part.partition(b";")
        if coding.strip() not in (b"gzip", b"*"):
            continue
        params = params.strip()
        if params.startswith(b"q="):
            try:
                return float(params[2:]) > 0
            except ValueError:
                return False
        return True
    return False


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

    def __init__(
        self, app: ASGIApp, *, ttl_seconds: float, max_bytes: int, store: PublicStore | None = None
    ) -> None:
        self.app = app
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self.store = store
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
        enabled = self.ttl > 0 or self.store is not None
        key = self._key(scope) if scope["type"] == "http" and enabled else None
        if key is None:
            await self.app(scope, receive, send)
            return
        gzip_ok = any(k == b"accept-encoding" and accepts_gzip(v) for k, v in scope.get("headers") or ())
        now = time.monotonic()
        hit = self._get(key, now) if self.ttl > 0 else None
        if hit is not None:
            await _answer(send, hit.answer, gzip_ok, now - hit.stored_at)
            return
        store_key = page_key(*key) if self.store is not None else None
        read_at: int | None = None
        if self.store is not None and store_key is not None:
            stored = await self.store.get(store_key)
            if stored is not None:
                age = max(0.0, time.time() - stored.rendered_at)
                answer = Answer.from_store(stored)
                if self.ttl > 0:
                    self._put(key, _Entry(answer, now - age, now + self.ttl))
                await _answer(send, answer, gzip_ok, age)
                return
            # Read before the database is: a change committed after this cannot be stored as current.
            read_at = await self.store.clock()
        start: Message | None = None
        max_age: float | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start, max_age
            if message["type"] == "http.response.start":
                start = message
                headers = dict(message.get("headers") or [])
                if message["status"] == 200 and b"set-cookie" not in headers:
                    max_age = _max_age(headers.get(b"cache-control", b""))
            elif message["type"] == "http.response.body" and max_age and start is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await send(message)
                    await self._keep(scope, key, store_key, read_at, start, b"".join(chunks), max_age)
                    return
            await send(message)

        await self.app(scope, receive, capture)

    async def _keep(
        self,
        scope: Scope,
        key: tuple[str, bytes, str],
        store_key: str | None,
        read_at: int | None,
        start: Message,
        body: bytes,
        max_age: float,
    ) -> None:
        """Keep a rendered answer: in this process for its max-age, in the store until its operators change."""
        answer = Answer.rendered(list(start.get("headers") or []), body)
        if self.ttl > 0:
            stored = time.monotonic()
            self._put(key, _Entry(answer, stored, stored + min(max_age, self.ttl)))
        state = scope.get("state") or {}
        operator_ids = state.get(OPERATORS_STATE)
        if self.store is None or store_key is None or read_at is None or not operator_ids:
            return
        fresh = state.get(FRESH_STATE)
        seconds = self.store.seconds if fresh is None else min(self.store.seconds, int(fresh))
        await self.store.put(store_key, answer.to_store(), operator_ids, read_at=read_at, seconds=seconds)


async def _answer(send: Send, answer: Answer, gzip_ok: bool, age: float) -> None:
    headers, body = answer.form(gzip_ok)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*headers, (b"age", str(int(age)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
