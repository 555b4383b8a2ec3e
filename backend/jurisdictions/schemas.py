"""API shapes for jurisdictions."""

from __future__ import annotations

from pydantic import BaseModel

from backend.jurisdictions.models import DivisionLevel


class JurisdictionRead(BaseModel):
    """A division with its bureau."""

    code: str
    name: str
    level: DivisionLevel
    parent_code: str | None
    bureau_name: str


class JurisdictionDetail(JurisdictionRead):
    """A division with its ancestors, from the province down."""

    ancestors: list[JurisdictionRead]


class RoutingCandidate(BaseModel):
    """Another county that was considered (a shared border, the nearest, an accuracy circle's overlap)."""

    code: str
    name: str | None
    distance_m: float | None
    overlap_share: float | None


class LocateResponse(BaseModel):
    """Where a report from this point would go, and why."""

    code: str | None
    name: str | None
    city: str | None
    province: str | None
    bureau_name: str | None
    triage_province_code: str | None
    rule: int
    reason_code: str
    reason: str
    low_confidence: bool
    candidates: list[RoutingCandidate]
    wgs84: dict[str, float]
