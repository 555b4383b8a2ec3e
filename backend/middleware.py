"""ASGI middleware: request ids, body-size limits and security headers."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import error_body
from backend.i18n import normalise_locale


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before they are read into memory (multipart gets a larger one)."""

    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = self.upload_limit if content_type.startswith("multipart/") else self.json_limit
        declared = headers.get(b"content-length")
        locale = normalise_locale(headers.get(b"accept-language", b"").decode("latin-1"))
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                await _send_413(send, limit, locale)
                return
        received = 0
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    rejected = True
                    raise _BodyTooLarge
            return message

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected and not started:
                # The app may catch the abandoned read and answer for itself (FastAPI turns any error while
                # reading a JSON body into 400 "error parsing the body"): the client gets the 413 instead.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if rejected and not started:
            await _send_413(send, limit, locale)


class _BodyTooLarge(Exception):
    """Raised from inside receive() to abandon a request whose streamed body passed the limit."""


async def _send_413(send: Send, limit: int, locale: str) -> None:
    import json

    message = (
        f"请求内容过大（上限 {limit} 字节）" if locale == "zh-CN" else f"request body over {limit} bytes"
    )
    body = json.dumps(
        error_body("payload_too_large", message, {"limit_bytes": limit}), ensure_ascii=False
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(self), geolocation=(self), microphone=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeadersMiddleware:
    """Attach a request id and the security headers every response should carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = request_id or uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _v in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                headers.append((b"x-request-id", request_id.encode("latin-1", "replace")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ConcurrencyLimitMiddleware:
    """Admit at most ``limit`` requests at once; the rest wait on the event loop, holding nothing.

    Sync routes take a database connection in one worker thread (the session dependency) and need another
    thread later for the handler. If more requests than the connection pool can serve were admitted, threads
    would block waiting for connections while the holders wait for threads: a deadlock until pool_timeout.
    Keeping admissions at or below the pool size (and below the thread limiter) makes that impossible.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        import asyncio

        self.app = app
        self.semaphore = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with self.semaphore:
            await self.app(scope, receive, send)
