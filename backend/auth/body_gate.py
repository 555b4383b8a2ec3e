"""Authenticate before any body is read.

FastAPI reads and parses a route's body (JSON, form, file uploads) before it resolves the route's dependencies,
so the account check in ``CurrentUser`` comes after a deactivated account's upload has been received. This
module runs that same check (token, then the account: active, in term) before the route sees a byte of the
body, for every route that parses a body and needs an account (by wrapping the route's ``handle``, which runs
after routing and before FastAPI reads the body); routes that accept an optional account are checked only when
a token is sent. Routes that read their body themselves (the complaint upload) check the
account in their own dependency before reading.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.auth.dependencies import _current_account, _optional_account
from backend.db import get_session, new_read_only_session
from backend.errors import AppError, error_body
from backend.i18n import request_locale


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    found: set[Callable[..., Any]] = set()
    for sub in dependant.dependencies:
        if sub.call is not None:
            found.add(sub.call)
        found |= _calls(sub)
    return found


def auth_requirement(route: APIRoute) -> bool | None:
    """True when the route parses a body and needs an account, False when the account is optional, None when
    the route parses no body or takes no account."""
    if route.body_field is None:
        return None
    calls = _calls(route.dependant)
    if _current_account in calls:
        return True
    if _optional_account in calls:
        return False
    return None


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def account_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, descending into included routers (lazily included ones keep their own routes)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from account_routes(original.routes)
        elif isinstance(route, APIRoute):
            yield route
        elif isinstance(route, Mount):
            yield from account_routes(route.routes)


def gate_routes(app: FastAPI) -> None:
    """Check the account before the body on every route of ``app`` that parses a body and takes an account."""
    for route in account_routes(app.routes):
        required = auth_requirement(route)
        # Routers are module objects shared by every app built in a process: wrap each route once. The
        # route's handle() runs once routing chose it, before FastAPI's request handler reads the body.
        if required is not None and not getattr(route.handle, _GATED, False):
            gated = _gated(route.handle, required=required, methods=frozenset(route.methods or ()))
            setattr(route, "handle", gated)  # noqa: B010 (a method)


_GATED = "__gongping_account_before_body__"


def _gated(inner: ASGIApp, *, required: bool, methods: frozenset[str]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)  # headers only: without receive nothing of the body can be read here
        token = _bearer(request)
        # Another method on the same path (routing's partial match) is the route's own 405, whoever calls.
        if (required or token) and scope.get("method") in methods:
            try:
                await _check(scope["app"], request, token)
            except AppError as exc:
                response = JSONResponse(
                    error_body(exc.code, exc.message(request_locale(request)), exc.details),
                    status_code=exc.status,
                    headers=exc.headers,
                )
                await response(scope, receive, send)
                return
        await inner(scope, receive, send)

    setattr(app, _GATED, True)
    return app


async def _check(app: FastAPI, request: Request, token: str | None) -> None:
    """The route's own account check, on a session from the app's session dependency (or its override)."""
    provider = app.dependency_overrides.get(get_session)
    if provider is None:
        # Only reads: a read-only session neither takes nor waits for SQLite's write lock.
        session: Session = new_read_only_session()
        try:
            await run_in_threadpool(_current_account, request, session, token)
        finally:
            session.close()
        return
    args = (request,) if inspect.signature(provider).parameters else ()
    if inspect.isasyncgenfunction(provider):
        agen = provider(*args)
        session = await agen.__anext__()
        try:
            await run_in_threadpool(_current_account, request, session, token)
        finally:
            with suppress(StopAsyncIteration):
                await agen.__anext__()
        return
    gen = provider(*args)
    session = next(gen)
    try:
        await run_in_threadpool(_current_account, request, session, token)
    finally:
        next(gen, None)
