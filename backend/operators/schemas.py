"""API shapes for operators and stalls: staff-facing, operator-facing and public families are separate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from backend.common.schemas import LonLat, PartialUpdate
from backend.operators.models import ManagementAssessment, Sector
from backend.operators.uscc import InvalidUSCC, normalise_uscc


def _uscc(value: str) -> str:
    try:
        return normalise_uscc(value)
    except InvalidUSCC as exc:
        raise PydanticCustomError("invalid_uscc", "{reason}", {"reason": str(exc)}) from exc


USCC = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_uscc)]
JurisdictionCode = Annotated[str, Field(pattern=r"^\d{6}$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class OperatorBase(BaseModel):
    """Fields staff provide for an operator (Art. 8 basic information)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Name
    sector: Sector
    address: str = Field(min_length=1, max_length=300)
    legal_representative: str = Field(min_length=1, max_length=100)
    jurisdiction_code: JurisdictionCode
    location: LonLat | None = None
    phone: str | None = Field(default=None, max_length=32, pattern=r"^[0-9+\- ]{5,32}$")


class OperatorCreate(OperatorBase):
    """A new operator."""

    uscc: USCC


class OperatorUpdate(PartialUpdate):
    """A partial edit by staff; every change is audited. ``null`` clears the location or the phone."""

    CLEARABLE = frozenset({"location", "phone"})
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Name | None = None
    sector: Sector | None = None
    address: str | None = Field(default=None, min_length=1, max_length=300)
    legal_representative: str | None = Field(default=None, min_length=1, max_length=100)
    jurisdiction_code: JurisdictionCode | None = None
    location: LonLat | None = None
    phone: str | None = Field(default=None, max_length=32, pattern=r"^[0-9+\- ]{5,32}$")
    management_assessment: ManagementAssessment | None = None
    metrology_assurance: str | None = Field(default=None, max_length=2000)
    is_demonstration_unit: bool | None = None
    is_active: bool | None = None


class OperatorRead(BaseModel):
    """An operator as staff in scope see it."""

    id: int
    uscc: str
    name: str
    sector: Sector
    address: str
    legal_representative: str
    jurisdiction_code: str
    location: LonLat | None
    phone: str | None
    management_assessment: ManagementAssessment
    metrology_assurance: str
    is_demonstration_unit: bool
    qr_serial: int
    is_active: bool
    created_at: datetime
    updated_at: datetime


class StallCreate(BaseModel):
    """A stall in a market."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    number: str = Field(min_length=1, max_length=32)
    name: str = Field(default="", max_length=200)
    holder_name: str = Field(min_length=1, max_length=100)
    holder_uscc: USCC | None = None
    holder_phone: str | None = Field(default=None, max_length=32, pattern=r"^[0-9+\- ]{5,32}$")


class StallUpdate(PartialUpdate):
    """A partial edit of a stall (a new holder, a closed stall); ``null`` clears the holder's code or phone."""

    CLEARABLE = frozenset({"holder_uscc", "holder_phone"})
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str | None = Field(default=None, max_length=200)
    holder_name: str | None = Field(default=None, min_length=1, max_length=100)
    holder_uscc: USCC | None = None
    holder_phone: str | None = Field(default=None, max_length=32, pattern=r"^[0-9+\- ]{5,32}$")
    is_active: bool | None = None


class StallRead(BaseModel):
    """A stall as staff see it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    market_id: int
    number: str
    name: str
    holder_name: str
    holder_uscc: str | None
    holder_phone: str | None
    qr_serial: int
    is_active: bool


class SelfCommitmentCreate(BaseModel):
    """An operator signs the integrity self-commitment."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text_version: str = Field(min_length=1, max_length=32)
    signer: str = Field(min_length=1, max_length=100)


class SelfCommitmentRead(BaseModel):
    """A signed self-commitment."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    operator_id: int
    text_version: str
    signer: str
    signed_at: datetime
    withdrawn_at: datetime | None


class ImportRowError(BaseModel):
    """Why one CSV row was not imported."""

    row: int
    code: str
    message: str


class ImportReport(BaseModel):
    """The outcome of a CSV import."""

    created: int
    updated: int
    unchanged: int
    errors: list[ImportRowError]
