"""Browse the division tree and its bureaus."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from backend.db import SessionDep
from backend.errors import error_responses, not_found
from backend.i18n import request_locale
from backend.jurisdictions import locator, service
from backend.jurisdictions.models import DivisionLevel
from backend.jurisdictions.schemas import (
    JurisdictionDetail,
    JurisdictionRead,
    LocateResponse,
    RoutingCandidate,
)

router = APIRouter(prefix="/api/v1/jurisdictions", tags=["jurisdictions"])


def _read(j: object) -> JurisdictionRead:
    return JurisdictionRead.model_validate(j, from_attributes=True)


@router.get("", response_model=list[JurisdictionRead])
def list_children(
    session: SessionDep, parent: str | None = None, level: DivisionLevel | None = None
) -> list[JurisdictionRead]:
    """Provinces, or the direct children of ``parent``."""
    return [_read(j) for j in service.children(session, parent, level)]


@router.get(
    "/locate",
    response_model=LocateResponse,
    responses=error_responses(422),
)
def locate(
    request: Request,
    session: SessionDep,
    lon: Annotated[float, Query(description="longitude in the given coordinate system")],
    lat: Annotated[float, Query(description="latitude in the given coordinate system")],
    coord_system: Annotated[
        str, Query(description="wgs84 | gcj02 | bd09 (Chinese map SDKs give GCJ-02 or BD-09)")
    ] = "wgs84",
    accuracy_m: Annotated[float | None, Query(ge=0, le=100_000)] = None,
) -> LocateResponse:
    """Which county bureau a report from this point goes to (so the app can say so before sending)."""
    found = locator.locate(lon, lat, coord_system, accuracy_m)
    decision = found.decision
    county = service.get(session, found.code) if found.code else None
    chain = service.ancestors(session, county) if county else []
    by_level = {j.level: j for j in chain}
    locale = request_locale(request)
    return LocateResponse(
        code=county.code if county else None,
        name=county.name if county else None,
        city=by_level[DivisionLevel.prefecture].name if DivisionLevel.prefecture in by_level else None,
        province=by_level[DivisionLevel.province].name if DivisionLevel.province in by_level else None,
        bureau_name=county.bureau_name if county else None,
        triage_province_code=decision.province_code if county is None else None,
        rule=int(decision.rule),
        reason_code=decision.reason.code,
        reason=decision.reason.zh if locale == "zh-CN" else decision.reason.en,
        low_confidence=decision.low_confidence,
        candidates=[
            RoutingCandidate(code=c.code, name=c.name, distance_m=c.distance_m, overlap_share=c.overlap_share)
            for c in decision.candidates
        ],
        wgs84={"lon": round(found.lon, 7), "lat": round(found.lat, 7)},
    )


@router.get("/{code}", response_model=JurisdictionDetail, responses={404: {"description": "unknown code"}})
def get_jurisdiction(session: SessionDep, code: str) -> JurisdictionDetail:
    """One division with its ancestors and bureau."""
    jurisdiction = service.get(session, code)
    if jurisdiction is None:
        raise not_found("行政区划", "jurisdiction")
    base = _read(jurisdiction)
    return JurisdictionDetail(
        **base.model_dump(), ancestors=[_read(a) for a in service.ancestors(session, jurisdiction)]
    )
