"""Conditional GETs for what the app polls: a cheap validator first, the body only when it changed.

Each route computes its validator from a few aggregates (counts, the largest id, the last change) in one
indexed query, so an unchanged poll answers 304 without building, serialising or sending the body. The
validator also covers whatever else shapes the body (the language, the page asked for).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Personal data: only the caller's own cache may keep it, and must ask again before reusing it.
PRIVATE_REVALIDATE = "private, no-cache"
_VARY = "Authorization, Accept-Language"


def make_etag(*parts: object) -> str:
    """A weak validator over ``parts`` (their text forms, in order)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f'W/"{digest}"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, ``*`` included)."""
    if not if_none_match:
        return False
    candidates: Iterable[str] = (t for t in if_none_match.split(",") if t.strip())
    wanted = _opaque(etag)
    return any(t.strip() == "*" or _opaque(t) == wanted for t in candidates)


def not_modified(request: Request, etag: str, cache_control: str = PRIVATE_REVALIDATE) -> Response | None:
    """A 304 when the request already holds ``etag``, else None (then call :func:`tag`)."""
    if matches(request.headers.get("if-none-match"), etag):
        return Response(
            status_code=304, headers={"ETag": etag, "Cache-Control": cache_control, "Vary": _VARY}
        )
    return None


def tag(response: Response, etag: str, cache_control: str = PRIVATE_REVALIDATE) -> None:
    """Put the validator and the caching rules on a full answer."""
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = cache_control
    response.headers["Vary"] = _VARY


class BodyEtagMiddleware:
    """ETag and 304 for public answers served from memory or the shared store: the validator is the body's hash.

    Those answers are usually not rendered at all (``backend.public.cache``), so hashing the bytes on their way
    out is the cheap validator there; a matching ``If-None-Match`` then saves the transfer.
    """

    def __init__(
        self, app: ASGIApp, *, prefixes: tuple[str, ...], private_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.prefixes = prefixes
        #: Small personal answers (``/api/v1/me``): tagged too, and kept by the caller's cache only.
        self.private_paths = private_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        private = path in self.private_paths
        if (
            scope["type"] != "http"
            or scope.get("method") not in ("GET", "HEAD")
            or not (private or path.startswith(self.prefixes))
        ):
            await self.app(scope, receive, send)
            return
        if_none_match = dict(scope.get("headers") or []).get(b"if-none-match", b"").decode("latin-1")
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] != 200 or any(
                    k.lower() == b"etag" for k, _v in message.get("headers", [])
                ):
                    start = None
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            etag = make_etag(hashlib.sha256(body).hexdigest())
            headers = [*start.get("headers", []), (b"etag", etag.encode())]
            if private and not any(k.lower() == b"cache-control" for k, _v in headers):
                headers += [(b"cache-control", PRIVATE_REVALIDATE.encode()), (b"vary", _VARY.encode())]
            if matches(if_none_match, etag):
                kept = {b"cache-control", b"vary", b"etag", b"content-location", b"expires", b"date"}
                headers = [(k, v) for k, v in headers if k.lower() in kept]
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered)
