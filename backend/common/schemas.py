"""Shapes shared across domains: coordinates, pages."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Annotated, ClassVar, Generic, Self, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

T = TypeVar("T")


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticCustomError(
            "invalid_coordinates", "坐标必须是有限数值 / coordinates must be finite numbers"
        )
    return value


def _longitude(value: float) -> float:
    if not -180.0 <= _finite(value) <= 180.0:
        raise PydanticCustomError("invalid_coordinates", "经度须在 -180 到 180 之间 / longitude out of range")
    return value


def _latitude(value: float) -> float:
    if not -90.0 <= _finite(value) <= 90.0:
        raise PydanticCustomError("invalid_coordinates", "纬度须在 -90 到 90 之间 / latitude out of range")
    return value


Longitude = Annotated[float, AfterValidator(_longitude)]
Latitude = Annotated[float, AfterValidator(_latitude)]


class LonLat(BaseModel):
    """A WGS-84 point."""

    model_config = ConfigDict(extra="forbid")
    lon: Longitude
    lat: Latitude


class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int
    limit: int
    offset: int


PageLimit = Annotated[int, Field(ge=1, le=200)]
PageOffset = Annotated[int, Field(ge=0, le=1_000_000)]


class PartialUpdate(BaseModel):
    """A PATCH body: a field left out is unchanged; ``null`` clears only the fields listed in ``CLEARABLE``.

    Every other field is required in storage, so an explicit ``null`` there is a 422, not a failed write.
    """

    CLEARABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _refuse_null(self) -> Self:
        nulled = sorted(
            name
            for name in self.model_fields_set
            if getattr(self, name) is None and name not in self.CLEARABLE
        )
        if nulled:
            raise PydanticCustomError(
                "null_not_allowed",
                "这些字段不能为 null / these fields cannot be null: {fields}",
                {"fields": ", ".join(nulled)},
            )
        return self


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> object:
    # Pydantic's lax mode reads 0, "0" or "1700000000" as a Unix time (and a datetime as its day); a day
    # is written YYYY-MM-DD, as a JSON string. A ``date`` object is what our own code builds models with.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DAY.fullmatch(value.strip()):
        raise PydanticCustomError("date_format", "日期格式应为 YYYY-MM-DD / a date is written YYYY-MM-DD")
    return value.strip()


#: A calendar day as a ``YYYY-MM-DD`` string only (query filters and request bodies).
IsoDay = Annotated[date, BeforeValidator(_iso_day)]
