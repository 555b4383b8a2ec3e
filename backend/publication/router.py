"""The publication gate for staff (Art. 18) and the published untrustworthy list for everyone (Art. 19)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from backend import audit, ratelimit
from backend.auth.dependencies import StaffScope
from backend.common.schemas import IsoDay, Page, PageLimit, PageOffset
from backend.config import get_settings
from backend.db import SessionDep, get_session
from backend.errors import error_responses
from backend.i18n import Locale, request_locale
from backend.operators.models import Sector
from backend.publication import listing, service
from backend.publication.models import PublicationStatus, RecordPublication
from backend.publication.schemas import (
    PublicationApprove,
    PublicationQueueItem,
    PublicationRead,
    PublicationReason,
    PublicationRequest,
    RecordPublicationState,
    UntrustworthyListPublic,
    UntrustworthyPagePublic,
)
from backend.records.dependencies import StaffRecord
from backend.records.schemas import kind_labels

router = APIRouter(prefix="/api/v1")

_ERRORS = error_responses(401, 403, 404)
_CHANGE_ERRORS = {**_ERRORS, **error_responses(409, 422)}
#: Public answers change slowly; a minute of caching at the edge, as for the public profile.
PUBLIC_CACHE = "public, max-age=60"
# The downloads stream rows as they are read: the session must outlive the route function, so it is closed
# when the response has been sent rather than before (read-only, nothing to commit).
StreamSessionDep = Annotated[Session, Depends(get_session, scope="request")]


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _read(publication: RecordPublication) -> PublicationRead:
    return PublicationRead.model_validate(publication)


@router.get(
    "/publishing/queue",
    response_model=Page[PublicationQueueItem],
    tags=["publication"],
    responses=_ERRORS,
)
def publication_queue(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    status_: Annotated[PublicationStatus | None, Query(alias="status")] = PublicationStatus.pending,
    operator_id: int | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[PublicationQueueItem]:
    """Publication requests in your jurisdiction (pending by default), oldest first; audited (Art. 20)."""
    rows, total = service.queue(
        session, scope, status=status_, operator_id=operator_id, limit=limit, offset=offset
    )
    audit.service.record(
        session,
        actor=scope.user,
        action="publication.list",
        entity_type=service.ENTITY,
        entity_id="*",
        after={
            "filters": {"status": status_, "operator_id": operator_id},
            "publication_ids": [r.publication.id for r in rows],
        },
        request_id=_request_id(request),
    )
    items = [
        PublicationQueueItem(
            **_read(r.publication).model_dump(),
            operator_name=r.operator_name,
            kind=r.record.kind,
            kind_label_zh=kind_labels(r.record.kind)["kind_label_zh"],
            kind_label_en=kind_labels(r.record.kind)["kind_label_en"],
            fact_date=r.record.fact_date,
            record_state=r.record.state,
            can_review=r.can_review,
        )
        for r in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/records/{record_id}/publication",
    response_model=RecordPublicationState,
    tags=["publication"],
    responses=_ERRORS,
)
def record_publication(
    request: Request, session: SessionDep, scope: StaffScope, record: StaffRecord
) -> RecordPublicationState:
    """Whether the record is public, its open request and every earlier one; audited (Art. 20)."""
    audit.service.record_read(
        session,
        actor=scope.user,
        action="publication.read",
        entity_type="integrity_record",
        entity_id=record.id or 0,
        request_id=_request_id(request),
    )
    rows = service.history(session, record.id or 0)
    current = next(
        (r for r in rows if r.status in (PublicationStatus.pending, PublicationStatus.published)), None
    )
    return RecordPublicationState(
        record_id=record.id or 0,
        public_eligible=record.public_eligible,
        current=_read(current) if current else None,
        history=[_read(r) for r in rows],
    )


@router.post(
    "/records/{record_id}/publication/request",
    response_model=PublicationRead,
    status_code=status.HTTP_201_CREATED,
    tags=["publication"],
    responses=_CHANGE_ERRORS,
)
def request_publication(
    session: SessionDep, scope: StaffScope, record: StaffRecord, body: PublicationRequest
) -> PublicationRead:
    """Queue a verified record for publication; another staff member must review it (Art. 18)."""
    return _read(service.request(session, record=record, actor=scope.user, note=body.note))


@router.post(
    "/records/{record_id}/publication/approve",
    response_model=PublicationRead,
    tags=["publication"],
    responses=_CHANGE_ERRORS,
)
def approve_publication(
    session: SessionDep, scope: StaffScope, record: StaffRecord, body: PublicationApprove
) -> PublicationRead:
    """Confirm the three confidentiality checks and publish (not by whoever entered, verified or asked for it)."""
    return _read(service.approve(session, record=record, actor=scope.user, data=body))


@router.post(
    "/records/{record_id}/publication/refuse",
    response_model=PublicationRead,
    tags=["publication"],
    responses=_CHANGE_ERRORS,
)
def refuse_publication(
    session: SessionDep, scope: StaffScope, record: StaffRecord, body: PublicationReason
) -> PublicationRead:
    """Refuse a pending publication request, with reasons."""
    return _read(service.refuse(session, record=record, actor=scope.user, reason=body.reason))


@router.post(
    "/records/{record_id}/publication/unpublish",
    response_model=PublicationRead,
    tags=["publication"],
    responses=_CHANGE_ERRORS,
)
def unpublish_record(
    session: SessionDep, scope: StaffScope, record: StaffRecord, body: PublicationReason
) -> PublicationRead:
    """Take a published record down, with reasons; public pages drop it within their 60 s cache lifetime."""
    return _read(service.unpublish(session, record=record, actor=scope.user, reason=body.reason))


# --- the published untrustworthy list (public) ---------------------------------------------------------------

JurisdictionCode = Annotated[
    str | None, Query(pattern=r"^\d{6}$", description="GB/T 2260 code; its subdivisions are included")
]
SearchTerm = Annotated[str | None, Query(max_length=100, description="part of the name, or the exact code")]
SinceFrom = Annotated[IsoDay | None, Query(description="listed as 失信 on or after this day")]
SinceTo = Annotated[IsoDay | None, Query(description="listed as 失信 on or before this day")]
_DOWNLOAD_NAME = {"zh-CN": "失信经营者名单", "en": "untrustworthy-operators"}
_JSON_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/UntrustworthyEntryPublic"},
                }
            }
        },
        "description": "the whole filtered list as a JSON array",
    },
    **error_responses(422, 429),
}


def _download(
    request: Request, session: Session, flt: listing.ListFilter, fmt: Literal["csv", "json"]
) -> StreamingResponse:
    ratelimit.limit(request, "public-untrustworthy-download", get_settings().public_search_rate)
    locale: Locale = request_locale(request)
    # Built (and its filters checked) before the first byte, so bad input is a 422, never a broken download.
    stmt = listing.build_query(session, flt)
    chunks: Iterator[bytes]
    if fmt == "csv":
        chunks, media = listing.csv_chunks(session, stmt, locale), "text/csv; charset=utf-8"
    else:
        chunks, media = listing.json_chunks(session, stmt, locale), "application/json"
    name = _DOWNLOAD_NAME[locale]
    disposition = (
        f"attachment; filename=\"untrustworthy-operators.{fmt}\"; filename*=UTF-8''{quote(name)}.{fmt}"
    )
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={
            "Content-Disposition": disposition,
            "Cache-Control": PUBLIC_CACHE,
            "Vary": "Accept-Language",
        },
    )


@router.get(
    "/public/untrustworthy",
    response_model=UntrustworthyPagePublic,
    tags=["public"],
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "a page as JSON, or with format=csv the whole list",
        },
        **error_responses(422, 429),
    },
)
def untrustworthy_list(
    request: Request,
    response: Response,
    session: StreamSessionDep,
    jurisdiction_code: JurisdictionCode = None,
    sector: Sector | None = None,
    q: SearchTerm = None,
    since_from: SinceFrom = None,
    since_to: SinceTo = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=listing.MAX_OFFSET)] = 0,
    format: Literal["json", "csv"] = "json",
) -> UntrustworthyPagePublic | Response:
    """The published list of untrustworthy (失信) operators (public, Art. 19); format=csv downloads all of it.

    The CSV has Simplified Chinese headers, English ones with ``?lang=en`` or ``Accept-Language: en``.
    """
    flt = listing.ListFilter(jurisdiction_code, sector, q, since_from, since_to)
    if format == "csv":
        return _download(request, session, flt, "csv")
    ratelimit.limit(request, "public-untrustworthy", get_settings().public_search_rate)
    response.headers["Cache-Control"] = PUBLIC_CACHE
    response.headers["Vary"] = "Accept-Language"
    return listing.page(session, flt, limit=limit, offset=offset, locale=request_locale(request))


@router.get(
    "/public/untrustworthy.json",
    response_model=UntrustworthyListPublic,
    response_class=StreamingResponse,
    tags=["public"],
    responses=_JSON_RESPONSES,
)
def untrustworthy_json(
    request: Request,
    session: StreamSessionDep,
    jurisdiction_code: JurisdictionCode = None,
    sector: Sector | None = None,
    q: SearchTerm = None,
    since_from: SinceFrom = None,
    since_to: SinceTo = None,
) -> StreamingResponse:
    """The whole published untrustworthy list as one JSON array, streamed (public)."""
    flt = listing.ListFilter(jurisdiction_code, sector, q, since_from, since_to)
    return _download(request, session, flt, "json")
