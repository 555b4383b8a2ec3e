"""API shapes for instruments and verifications."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from backend.common.schemas import IsoDay, PartialUpdate
from backend.instruments.models import InstrumentStatus, VerificationState


class InstrumentCreate(BaseModel):
    """A new instrument of an operator."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    type_code: str = Field(min_length=1, max_length=32)
    serial: str = Field(min_length=1, max_length=64)
    maker: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=100)
    stall_id: int | None = Field(default=None, ge=1)


class InstrumentUpdate(PartialUpdate):
    """A partial edit: maker, model, stall, retirement; ``null`` takes it off its stall."""

    CLEARABLE = frozenset({"stall_id"})
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    maker: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=100)
    stall_id: int | None = Field(default=None, ge=1)
    status: InstrumentStatus | None = None


class VerificationCreate(BaseModel):
    """One verification result."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    verified_on: IsoDay
    passed: bool
    certificate_no: str = Field(default="", max_length=64)
    institution: str = Field(default="", max_length=120)
    valid_until: IsoDay | None = None


class VerificationRead(BaseModel):
    """A verification as stored."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    instrument_id: int
    verified_on: date
    passed: bool
    certificate_no: str
    institution: str
    valid_until: date | None
    created_at: datetime


class InstrumentRead(BaseModel):
    """An instrument with its derived verification state."""

    id: int
    type_code: str
    type_name: str
    serial: str
    maker: str
    model: str
    operator_id: int
    stall_id: int | None
    status: InstrumentStatus
    qr_serial: int
    last_verified_on: date | None
    last_passed: bool | None
    valid_until: date | None
    verification_state: VerificationState


class InstrumentTypeRead(BaseModel):
    """A catalogue row."""

    model_config = ConfigDict(from_attributes=True)
    code: str
    name_zh: str
    name_en: str
    mandatory: bool
    period_months: int | None
    service_life_years: int | None
    regulation: str
