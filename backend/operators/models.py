"""Operators (经营者, Art. 3/7/8), market stalls and self-commitments."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow


class Sector(StrEnum):
    """The eight service sectors of Art. 3."""

    market = "market"  # 集贸市场
    fuel_station = "fuel_station"  # 加油（气）站
    catering = "catering"  # 餐饮
    retail = "retail"  # 商店超市
    medical = "medical"  # 医疗机构
    optical = "optical"  # 配镜
    road_transport = "road_transport"  # 道路交通
    utility = "utility"  # 公用事业


SECTOR_NAMES_ZH: dict[Sector, str] = {
    Sector.market: "集贸市场",
    Sector.fuel_station: "加油（气）站",
    Sector.catering: "餐饮",
    Sector.retail: "商店超市",
    Sector.medical: "医疗机构",
    Sector.optical: "配镜",
    Sector.road_transport: "道路交通",
    Sector.utility: "公用事业",
}


class ManagementAssessment(StrEnum):
    """Art. 10: whether the metrology management system is sound — separates 守信 from 基本守信."""

    not_assessed = "not_assessed"
    sound = "sound"  # 计量管理制度健全，主体责任落实到位
    not_fully_sound = "not_fully_sound"  # 计量管理制度不够完善


class Operator(SQLModel, table=True):
    """A service-industry operator, keyed by its Unified Social Credit Code."""

    __tablename__ = "operator"

    id: int | None = Field(default=None, primary_key=True)
    uscc: str = Field(max_length=18, unique=True)
    name: str = Field(max_length=200, index=True)
    sector: Sector = Field(sa_type=enum_type(Sector), index=True)
    address: str = Field(max_length=300)
    legal_representative: str = Field(max_length=100)
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", index=True, max_length=6)
    lon: float | None = None
    lat: float | None = None
    phone: str | None = Field(default=None, max_length=32)
    management_assessment: ManagementAssessment = Field(
        default=ManagementAssessment.not_assessed, sa_type=enum_type(ManagementAssessment)
    )
    metrology_assurance: str = Field(default="", max_length=2000)  # 计量保证体系建设及运行情况 (Art. 8)
    is_demonstration_unit: bool = False  # 诚信计量示范单位 (notice §2)
    qr_serial: int = 1  # bumped on reprint, so a lost or copied sticker can be revoked
    is_active: bool = True
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class Stall(SQLModel, table=True):
    """A stall (摊位) inside a market operator: what a consumer actually scans."""

    __tablename__ = "stall"
    __table_args__ = (UniqueConstraint("market_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    market_id: int = Field(foreign_key="operator.id", index=True)
    number: str = Field(max_length=32)
    name: str = Field(default="", max_length=200)
    holder_name: str = Field(max_length=100)
    holder_uscc: str | None = Field(
        default=None, max_length=18, index=True
    )  # an individual business's own code
    holder_phone: str | None = Field(default=None, max_length=32)
    qr_serial: int = 1
    is_active: bool = True
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class SelfCommitment(SQLModel, table=True):
    """An operator's integrity self-commitment (自我承诺): which text it signed, who signed, when."""

    __tablename__ = "self_commitment"

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    text_version: str = Field(max_length=32)
    signer: str = Field(max_length=100)
    signed_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    withdrawn_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    account_id: int | None = Field(default=None, foreign_key="account.id")
