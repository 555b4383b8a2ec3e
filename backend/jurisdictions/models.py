"""Administrative divisions (GB/T 2260) and the bureau that supervises each (Art. 4, 6)."""

from __future__ import annotations

from enum import StrEnum

from sqlmodel import Field, SQLModel

from backend.db import enum_type


class DivisionLevel(StrEnum):
    """Levels of mainland China's administrative divisions that carry a market-regulation bureau."""

    province = "province"
    prefecture = "prefecture"
    county = "county"


class Jurisdiction(SQLModel, table=True):
    """One division; ``path`` (``/110000/110100/110101/``) makes ancestor and descendant queries prefix scans."""

    __tablename__ = "jurisdiction"

    code: str = Field(primary_key=True, min_length=6, max_length=6)
    name: str = Field(max_length=64)
    level: DivisionLevel = Field(sa_type=enum_type(DivisionLevel))
    parent_code: str | None = Field(default=None, foreign_key="jurisdiction.code", index=True, max_length=6)
    path: str = Field(max_length=40, index=True)
    bureau_name: str = Field(max_length=96)
