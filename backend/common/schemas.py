"""Shapes shared across domains: coordinates, pages."""

from __future__ import annotations

import math
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
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
