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
