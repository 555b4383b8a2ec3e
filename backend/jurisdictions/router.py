"""Browse the division tree and its bureaus."""

from __future__ import annotations

from fastapi import APIRouter

from backend.db import SessionDep
from backend.errors import not_found
from backend.jurisdictions import service
from backend.jurisdictions.models import DivisionLevel
from backend.jurisdictions.schemas import JurisdictionDetail, JurisdictionRead

router = APIRouter(prefix="/api/v1/jurisdictions", tags=["jurisdictions"])


def _read(j: object) -> JurisdictionRead:
    return JurisdictionRead.model_validate(j, from_attributes=True)


@router.get("", response_model=list[JurisdictionRead])
def list_children(
    session: SessionDep, parent: str | None = None, level: DivisionLevel | None = None
) -> list[JurisdictionRead]:
    """Provinces, or the direct children of ``parent``."""
    return [_read(j) for j in service.children(session, parent, level)]


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
