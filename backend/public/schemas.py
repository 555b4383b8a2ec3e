"""Public query shapes (Art. 19): what anyone may read about an operator, and nothing more (Art. 18)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from backend.common.audience import Audience
from backend.operators.models import Sector
from backend.records.rules import IntegrityClass


class OperatorSummaryPublic(BaseModel):
    """One hit of the public operator search: basic information and the public class."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    id: int
    uscc: str
    name: str
    sector: Sector
    sector_name: str
    address: str
    jurisdiction_code: str
    jurisdiction_name: str
    is_demonstration_unit: bool
    #: Null when not rated, or while a 失信 class awaits publication review.
    integrity_class: IntegrityClass | None
    integrity_class_name: str


class OperatorSearchPublic(BaseModel):
    """A page of the public operator search."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    items: list[OperatorSummaryPublic]
    total: int
    limit: int
    offset: int
