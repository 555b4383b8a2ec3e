"""Open311 GeoReport v2 endpoints (the prose specification's paths), in JSON and XML.

Errors keep the app's JSON error shape for ``.json`` and take GeoReport's ``<errors>`` document for ``.xml``,
with the same status either way. Bad arguments are 400 as GeoReport clients expect, an unknown or revoked
``api_key`` is 403, an unknown service or request 404.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, TypeAdapter
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import ratelimit
from backend.config import get_settings
from backend.db import SessionDep
from backend.errors import AppError, ErrorResponse, error_body
from backend.i18n import Locale, request_locale
from backend.open311 import service, xml
from backend.open311.schemas import (
    Open311Request,
    Open311RequestCreated,
    Open311Service,
    Open311ServiceDefinition,
)

router = APIRouter(prefix="/open311/v2", tags=["open311"])

Format = Annotated[Literal["json", "xml"], Path(description="json or xml")]

_XML_MEDIA = "text/xml; charset=utf-8"
_SERVICES_CACHE = "public, max-age=3600"
_REQUESTS_CACHE = "public, max-age=60"


def _doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": ErrorResponse,
            "content": {"text/xml": {"schema": {"type": "string"}}},
            "description": "the app's error shape (json) or GeoReport's <errors> document (xml)",
        }
        for status in statuses
    }


#: The 200 answer also comes as GeoReport XML.
_OK: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/xml": {"schema": {"type": "string"}}}, "description": "JSON or XML"}
}


def _json(payload: Any, status: int = 200, cache: str | None = None) -> Response:
    headers = {"Cache-Control": cache, "Vary": "Accept-Language"} if cache else {"Cache-Control": "no-store"}
    return JSONResponse(payload, status_code=status, headers=headers)


def _xml(body: bytes, status: int = 200, cache: str | None = None) -> Response:
    headers = {"Cache-Control": cache, "Vary": "Accept-Language"} if cache else {"Cache-Control": "no-store"}
    return Response(body, status_code=status, media_type=_XML_MEDIA, headers=headers)


def _error(exc: AppError, fmt: str, locale: Locale) -> Response:
    headers = {**exc.headers, "Cache-Control": "no-store"}
    if fmt == "xml":
        return Response(
            xml.errors(exc.status, exc.message(locale)),
            status_code=exc.status,
            media_type=_XML_MEDIA,
            headers=headers,
        )
    return JSONResponse(
        error_body(exc.code, exc.message(locale), exc.details), status_code=exc.status, headers=headers
    )


def _list(
    items: Sequence[BaseModel], fmt: str, *, root: str, item: str, cache: str | None = None
) -> Response:
    if fmt == "xml":
        return _xml(xml.models(root, item, items), cache=cache)
    return _json([i.model_dump(mode="json") for i in items], cache=cache)


def _guard(session: Session, fmt: str, locale: Locale, work: Callable[[], Response]) -> Response:
    """Run ``work``; a domain error becomes an answer in the requested format, its changes rolled back."""
    try:
        return work()
    except AppError as exc:
        if not exc.keep_changes:
            session.rollback()
        return _error(exc, fmt, locale)


@router.get(
    "/services.{response_format}",
    response_model=list[Open311Service],
    responses={**_OK, **_doc(400)},
)
def list_services(
    request: Request,
    response_format: Format,
    jurisdiction_id: Annotated[
        str | None, Query(max_length=20, description="accepted for compatibility; the services are national")
    ] = None,
) -> Response:
    """The services (complaint categories) a client can file, named in the caller's language."""
    locale = request_locale(request)
    return _list(
        service.services(locale), response_format, root="services", item="service", cache=_SERVICES_CACHE
    )


@router.get(
    "/services/{service_code}.{response_format}",
    response_model=Open311ServiceDefinition,
    responses={**_OK, **_doc(404)},
)
def get_service_definition(
    request: Request,
    session: SessionDep,
    service_code: Annotated[str, Path(max_length=64)],
    response_format: Format,
) -> Response:
    """The extra attributes a service accepts (the scanned QR token, the operator, the weighing figures)."""
    locale = request_locale(request)

    def work() -> Response:
        definition = service.service_definition(service_code, locale)
        if response_format == "xml":
            return _xml(xml.model("service_definition", definition), cache=_SERVICES_CACHE)
        return _json(definition.model_dump(mode="json"), cache=_SERVICES_CACHE)

    return _guard(session, response_format, locale, work)


@router.get(
    "/requests.{response_format}",
    response_model=list[Open311Request],
    responses={**_OK, **_doc(400, 404)},
)
def list_requests(
    request: Request,
    session: SessionDep,
    response_format: Format,
    service_request_id: Annotated[str | None, Query(max_length=20_000)] = None,
    service_code: Annotated[str | None, Query(max_length=500)] = None,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    jurisdiction_id: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Consumer complaints as public service requests: the last 90 days, newest first, at most 1000.

    The public subset only: no complainant identity or contact, no photos, the complainant's own words
    replaced by a summary, coordinates rounded to about 100 m (the operator's registered place when known).
    """
    locale = request_locale(request)

    def work() -> Response:
        # Up to 1000 joined rows per call and no key needed: limited per address like the public search.
        ratelimit.limit(request, "open311-read", get_settings().public_search_rate)
        query = service.parse_query(
            service_request_id=service_request_id,
            service_code=service_code,
            start_date=start_date,
            end_date=end_date,
            status=status,
            jurisdiction_id=jurisdiction_id,
        )
        items = service.list_requests(session, query, locale)
        return _list(items, response_format, root="service_requests", item="request", cache=_REQUESTS_CACHE)

    return _guard(session, response_format, locale, work)


@router.get(
    "/requests/{service_request_id}.{response_format}",
    response_model=list[Open311Request],
    responses={**_OK, **_doc(404)},
)
def get_request(
    request: Request,
    session: SessionDep,
    service_request_id: Annotated[str, Path(max_length=40)],
    response_format: Format,
) -> Response:
    """One service request (a list of one, as the specification has it)."""
    locale = request_locale(request)

    def work() -> Response:
        ratelimit.limit(request, "open311-read", get_settings().public_search_rate)
        item = service.get_request(session, service_request_id, locale)
        return _list([item], response_format, root="service_requests", item="request", cache=_REQUESTS_CACHE)

    return _guard(session, response_format, locale, work)


_POST_FIELDS: dict[str, Any] = {
    "api_key": {"type": "string", "description": "the client's API key (also accepted as a query parameter)"},
    "service_code": {"type": "string", "description": "a complaint category (see services)"},
    "lat": {"type": "number", "description": "WGS-84 latitude"},
    "long": {"type": "number", "description": "WGS-84 longitude"},
    "address_string": {"type": "string", "description": "where, in words, when there is no lat/long"},
    "address_id": {"type": "string", "description": "accepted and ignored (no master address list)"},
    "email": {"type": "string", "description": "contact for the bureau only; never published"},
    "device_id": {"type": "string"},
    "account_id": {"type": "string", "description": "the client's own reference for the person"},
    "first_name": {"type": "string", "description": "contact for the bureau only"},
    "last_name": {"type": "string", "description": "contact for the bureau only"},
    "phone": {"type": "string", "description": "contact for the bureau only"},
    "description": {"type": "string", "maxLength": 2000},
    "media_url": {"type": "string", "description": "kept as a note for staff; never fetched or published"},
    "attribute[qr_token]": {"type": "string"},
    "attribute[operator_id]": {"type": "integer"},
    "attribute[declared_g]": {"type": "number"},
    "attribute[measured_g]": {"type": "number"},
}
_POST_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "optional: the same key and arguments file one complaint however often retried",
            "schema": {"type": "string", "minLength": 1, "maxLength": 100},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["api_key", "service_code"],
                    "properties": _POST_FIELDS,
                }
            }
        },
    },
}
_CREATED = TypeAdapter(list[Open311RequestCreated])


@router.post(
    "/requests.{response_format}",
    response_model=list[Open311RequestCreated],
    responses={**_OK, **_doc(400, 403, 409, 429)},
    openapi_extra=_POST_OPENAPI,
)
async def create_request(request: Request, session: SessionDep, response_format: Format) -> Response:
    """File a complaint with a client's api_key: lat/long (WGS-84) or address_string, service_code, description."""
    locale = request_locale(request)
    try:
        fields = dict(request.query_params)
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            try:
                async with request.form(max_files=0, max_fields=60) as form:
                    fields.update({k: v for k, v in form.items() if isinstance(v, str)})
            except StarletteHTTPException as exc:
                raise service.bad_request(
                    "invalid_form", "请求体格式无效", "malformed form body", {"reason": str(exc.detail)}
                ) from None
        key = service.idempotency_key(request.headers.get("idempotency-key"))
    except AppError as exc:
        return _error(exc, response_format, locale)

    def work() -> Response:
        client, account = service.authenticate(session, fields.pop("api_key", None))
        data = service.parse_request_in(fields)
        created = service.create_request(
            session, client=client, account=account, data=data, key=key, locale=locale
        )
        if response_format == "xml":
            return _xml(xml.models("service_requests", "request", [created]))
        return _json(_CREATED.dump_python([created], mode="json"))

    return await run_in_threadpool(_guard, session, response_format, locale, work)
