"""What every workbench route does the same way: the sign-in redirect, the message pages, loading a row or
showing why not, refusing a form, and taking a step in a savepoint with its refusal shown in place.

One implementation for the case pages (``router``), the operator file (``operators``) and the review queues
(``reviews``), so that a fix to one of them is a fix to all three.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from backend.errors import AppError
from backend.i18n import Locale
from backend.workbench import auth, render

B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")


def request_id(request: Request) -> str | None:
    """The request's id, as the middleware set it (audit entries carry it)."""
    return getattr(request.state, "request_id", None)


def to_login(request: Request) -> RedirectResponse:
    """The sign-in page, coming back to this page (path and query) afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/workbench/login?next={quote(target, safe='')}", status_code=303)


def message(request: Request, locale: Locale, key: str, status_code: int, **extra: Any) -> Response:
    """A page with one message (``key`` names its title and text) and nothing else."""
    return render.page(
        request, "message.html", {"me": None, "key": key, **extra}, locale=locale, status_code=status_code
    )


def not_found_page(request: Request, locale: Locale, exc: AppError) -> Response:
    """The 404 page for a row that is missing or outside the scope, in the error's own words."""
    return message(request, locale, "not_found", exc.status, detail=exc.message(locale))


def signed_in(session: Session, request: Request) -> auth.SignedIn | Response:
    """The signed-in user, or the redirect to the sign-in page."""
    me = auth.current(session, request)
    return me if me is not None else to_login(request)


def viewed(
    request: Request, session: Session, load: Callable[[auth.SignedIn], T]
) -> tuple[auth.SignedIn, T, Locale] | Response:
    """The signed-in user, the row ``load`` finds in their scope and the page's language; or the page that
    says why not (the sign-in redirect, or the 404 page)."""
    me = signed_in(session, request)
    if isinstance(me, Response):
        return me
    locale = render.locale_of(request)
    try:
        row = load(me)
    except AppError as exc:
        return not_found_page(request, locale, exc)
    return me, row, locale


def refused(request: Request, me: auth.SignedIn, locale: Locale, csrf: str) -> Response | None:
    """The page for a form that may not be taken: a read-only account (403) or a stale CSRF token (400)."""
    if not me.can_act:
        return message(request, locale, "read_only", 403)
    if not auth.csrf_ok(me.csrf_token, csrf):
        return message(request, locale, "csrf_failed", 400)
    return None


def action_target(
    request: Request, session: Session, csrf: str, load: Callable[[auth.SignedIn], T]
) -> tuple[auth.SignedIn, T, Locale] | Response:
    """As ``viewed``, once the account may act and the form's CSRF token matches (else the refusal's page)."""
    found = viewed(request, session, load)
    if isinstance(found, Response):
        return found
    refusal = refused(request, found[0], found[2], csrf)
    return found if refusal is None else refusal


def shown_done(request: Request, steps: Collection[str]) -> str | None:
    """The step a redirect says was just taken (``?done=``), if it is one of the page's."""
    done = request.query_params.get("done")
    return done if done in steps else None


def form_outcome(
    request: Request,
    steps: Collection[str],
    *,
    failed: str | None,
    error: str | None,
    field_errors: list[tuple[str, str]] | None,
    form: dict[str, Any] | None,
) -> dict[str, Any]:
    """What a page of forms shows of the last one: the refused form (``failed``) with its error, each field's
    error and what was typed; or the step of ``steps`` just taken."""
    return {
        "failed": failed,
        "error": error,
        "field_errors": field_errors or [],
        "form": form or {},
        "done": shown_done(request, steps),
    }


def form_body(schema: type[B], fields: dict[str, Any]) -> B:
    """The API's body from the form: blank fields left out, so the schema's defaults and checks apply."""
    data = {k: v for k, v in fields.items() if k in schema.model_fields and v not in (None, "", [])}
    return schema.model_validate(data)


class Again(Protocol):
    """The page a form came from, shown again with its refusal in place."""

    def __call__(
        self,
        *,
        status_code: int,
        error: str | None = None,
        field_errors: list[tuple[str, str]] | None = None,
    ) -> Response: ...


def take_step(
    session: Session,
    locale: Locale,
    schema: type[B],
    fields: dict[str, Any],
    take: Callable[[B], object],
    *,
    again: Again,
    done_url: str,
    after_refusal: Callable[[], object] = lambda: None,
    bare_messages: bool = False,
) -> Response:
    """Read the form as the API's body and take the step in a savepoint; then the redirect to ``done_url``, or
    the page again with the refusal (422 with each field's error, or the domain error's status and message).

    ``after_refusal`` brings the page's row back once a refused step is undone. ``bare_messages`` drops
    pydantic's "Value error, " from a rule's message (the operator file shows it so; the case page does not).
    """
    try:
        body = form_body(schema, fields)
    except ValidationError as exc:
        problems = [
            (
                ".".join(str(p) for p in e["loc"]),
                str(e["msg"]).removeprefix("Value error, ") if bare_messages else e["msg"],
            )
            for e in exc.errors()
        ]
        return again(status_code=422, field_errors=problems)
    # A refused step leaves nothing behind, unless the error says to keep its changes.
    savepoint = session.begin_nested()
    try:
        take(body)
    except AppError as exc:
        savepoint.commit() if exc.keep_changes else savepoint.rollback()
        after_refusal()
        return again(status_code=exc.status, error=exc.message(locale))
    savepoint.commit()
    return RedirectResponse(done_url, status_code=303)
