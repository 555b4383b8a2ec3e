"""Public endpoints, no sign-in: the QR landing page, its script, and the public operator query (Art. 19)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from backend import ratelimit
from backend.config import get_settings
from backend.db import SessionDep, read_only
from backend.errors import error_responses, not_found
from backend.i18n import request_locale
from backend.operators.models import Sector
from backend.public import page, service
from backend.public.schemas import OperatorSearchPublic
from backend.public.store import seconds_until
from backend.qr.schemas import QRProfilePublic

router = APIRouter(tags=["public"])

#: Public answers change slowly; a minute of caching at the edge absorbs scan peaks.
PUBLIC_CACHE = "public, max-age=60"
_HTML: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/html": {}}, "description": "the landing page"},
    404: {"content": {"text/html": {}}, "description": "warning page: a forged code"},
    410: {"content": {"text/html": {}}, "description": "warning page: a revoked code"},
}
OperatorId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _public_headers(response: Response) -> None:
    response.headers["Cache-Control"] = PUBLIC_CACHE
    # Names of sectors and classes follow the caller's language.
    response.headers["Vary"] = "Accept-Language, Accept-Encoding"


def storable(request: Request, operator_ids: Iterable[int], fresh_until: date | None) -> None:
    """Let the shared store keep this answer under the operators it shows (``public.cache``/``public.store``)."""
    request.state.public_operator_ids = tuple(operator_ids)
    request.state.public_fresh_seconds = seconds_until(fresh_until)


@router.get(
    "/api/v1/public/operators",
    response_model=OperatorSearchPublic,
    responses=error_responses(422, 429),
)
@read_only
def search_operators(
    request: Request,
    response: Response,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=100, description="part of the name, or the exact code")] = None,
    jurisdiction_code: Annotated[
        str | None, Query(pattern=r"^\d{6}$", description="GB/T 2260 code; required unless q is a code")
    ] = None,
    sector: Sector | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    offset: Annotated[int, Query(ge=0, le=service.MAX_SEARCH_OFFSET)] = 0,
) -> OperatorSearchPublic:
    """Search operators by name or unified social credit code within a jurisdiction (public)."""
    ratelimit.limit(request, "public-search", get_settings().public_search_rate)
    _public_headers(response)
    return service.search(
        session,
        q=q,
        jurisdiction_code=jurisdiction_code,
        sector=sector,
        limit=limit,
        offset=offset,
        locale=request_locale(request),
    )


@router.get(
    "/api/v1/public/operators/{operator_id}",
    response_model=QRProfilePublic,
    responses=error_responses(404, 422),
)
@read_only
def operator_profile(
    request: Request, response: Response, session: SessionDep, operator_id: OperatorId
) -> QRProfilePublic:
    """An operator's public profile: basic information, class, self-commitment and instruments (public)."""
    operator = service.active_operator(session, operator_id)
    _public_headers(response)
    profile = service.operator_profile(session, operator, request_locale(request))
    storable(request, (operator_id,), service.fresh_until(profile))
    return profile


@router.get("/q/{token}", response_class=HTMLResponse, responses=_HTML)
@read_only
def qr_page(request: Request, session: SessionDep, token: str) -> HTMLResponse:
    """The page a scanned sticker opens: profile and complaint form, or a warning for a forged or revoked code."""
    rendered = service.qr_page(session, token[:512], request_locale(request))
    if rendered.status == 200:
        storable(request, rendered.operator_ids, rendered.fresh_until)
    return HTMLResponse(
        rendered.html,
        status_code=rendered.status,
        headers={
            "Content-Security-Policy": page.CONTENT_SECURITY_POLICY,
            "Cache-Control": PUBLIC_CACHE,
            "Vary": "Accept-Language, Accept-Encoding",
        },
    )


@router.get("/app/q/{token}", status_code=307, include_in_schema=False)
def app_link(request: Request, token: str) -> RedirectResponse:
    """The https link the app claims; without the app installed it lands back on the page."""
    target = f"/q/{quote(token[:512], safe='')}"
    lang = request.query_params.get("lang")
    if lang in ("zh-CN", "en"):
        target += f"?lang={lang}"
    return RedirectResponse(target, status_code=307)


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str, v: str | None = None) -> Response:
    """The page's script; immutable under its content hash, briefly cached otherwise."""
    file = page.STATIC_FILES.get(name)
    if file is None:
        raise not_found("文件", "file")
    cache = "public, max-age=31536000, immutable" if v == file.digest else "public, max-age=300"
    return Response(
        file.body, media_type=file.media_type, headers={"Cache-Control": cache, "ETag": f'"{file.digest}"'}
    )
