"""Complaints (投诉举报, Art. 14/17), supervisor patrol reports, their photos, timeline and idempotency keys."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Numeric, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.auth.models import Role
from backend.complaints.weighing import GoodsClass
from backend.db import enum_type, utcnow
from geo import CoordSystem


class ComplaintCategory(StrEnum):
    """What the complaint alleges (the bad-record kinds of Art. 8 a consumer can witness)."""

    short_weight = "short_weight"  # 缺斤短两
    instrument_cheating = "instrument_cheating"  # 计量作弊
    unverified_instrument = "unverified_instrument"  # 计量器具未经检定
    overdue_instrument = "overdue_instrument"  # 计量器具超过检定周期
    net_content = "net_content"  # 定量包装商品净含量不足
    other = "other"


class ComplaintSource(StrEnum):
    """Who filed: a consumer (device or registered account) or a volunteer integrity supervisor (Art. 17)."""

    consumer = "consumer"
    supervisor = "supervisor"


class PatrolFinding(StrEnum):
    """What a supervisor found on patrol."""

    instrument_without_valid_mark = "instrument_without_valid_mark"  # 器具无有效检定标识
    suspected_cheating = "suspected_cheating"  # 疑似计量作弊
    commitment_not_displayed = "commitment_not_displayed"  # 未公示诚信计量承诺
    other = "other"


class ComplaintStatus(StrEnum):
    """Where a complaint stands; each change is a timeline event."""

    received = "received"  # 已受理登记（待分派）
    routed = "routed"  # 已分派至管辖部门
    accepted = "accepted"  # 已受理
    rejected = "rejected"  # 不予受理
    investigating = "investigating"  # 调查处理中
    substantiated = "substantiated"  # 经查属实
    unsubstantiated = "unsubstantiated"  # 经查不属实
    mediated = "mediated"  # 调解达成协议
    closed = "closed"  # 已办结


class RoutingStatus(StrEnum):
    """Whether the complaint has reached the bureau with jurisdiction (Art. 6)."""

    pending = "pending"
    routed = "routed"
    needs_review = "needs_review"  # no rule decided: staff route it by hand


class PhotoKind(StrEnum):
    """What a photo shows."""

    receipt = "receipt"  # 小票
    scale_display = "scale_display"  # 秤的显示屏
    goods = "goods"  # 商品
    other = "other"


class PhotoStatus(StrEnum):
    """A photo's processing state; a rejected photo never takes its complaint with it."""

    pending = "pending"
    processed = "processed"
    rejected = "rejected"


class Complaint(SQLModel, table=True):
    """A consumer complaint or a supervisor's patrol report.

    Identity (``account_id``), contact, precise location and the photos' originals and EXIF are for handling
    staff only; the schemas for operators and the public are separate classes without them (Art. 18).
    """

    __tablename__ = "complaint"
    __table_args__ = (
        Index("ix_complaint_operator_recent", "operator_id", "created_at"),
        Index("ix_complaint_area_recent", "lat", "lon", "created_at"),
        Index("ix_complaint_routing", "routing_status", "created_at"),
        # The filer's own list, newest first, and its validator (count, last id): one index range, however
        # old the account's complaints (a lone account_id index left PostgreSQL scanning the primary key).
        Index("ix_complaint_account_recent", "account_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    filer_role: Role = Field(sa_type=enum_type(Role))
    source: ComplaintSource = Field(sa_type=enum_type(ComplaintSource))
    category: ComplaintCategory = Field(sa_type=enum_type(ComplaintCategory), index=True)
    finding: PatrolFinding | None = Field(default=None, sa_type=enum_type(PatrolFinding))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    operator_id: int | None = Field(default=None, foreign_key="operator.id")
    stall_id: int | None = Field(default=None, foreign_key="stall.id", index=True)
    instrument_id: int | None = Field(default=None, foreign_key="instrument.id", index=True)
    via_qr: bool = False
    # The geotag: WGS-84 for every computation, the device's original figures kept as evidence.
    lon: float | None = None
    lat: float | None = None
    original_lon: float | None = None
    original_lat: float | None = None
    coord_system: CoordSystem | None = Field(default=None, sa_type=enum_type(CoordSystem))
    accuracy_m: float | None = None
    captured_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # Where it happened in words, when the filer has no geotag (geocoded at routing when a geocoder is set).
    address: str | None = Field(default=None, max_length=200)
    # Weighing figures (settled and re-weighed) and the Order No. 66 check made from them at intake.
    declared_g: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 3)))
    measured_g: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 3)))
    goods_class: GoodsClass | None = Field(default=None, sa_type=enum_type(GoodsClass))
    weighing_result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    short_weight: bool | None = None  # beyond the permitted negative deviation; None when not checkable
    contact_name: str | None = Field(default=None, max_length=50)
    contact_phone: str | None = Field(default=None, max_length=32)
    status: ComplaintStatus = Field(
        default=ComplaintStatus.received, sa_type=enum_type(ComplaintStatus), index=True
    )
    routing_status: RoutingStatus = Field(default=RoutingStatus.pending, sa_type=enum_type(RoutingStatus))
    jurisdiction_code: str | None = Field(
        default=None, foreign_key="jurisdiction.code", index=True, max_length=6
    )
    # How routing decided (rules 1-6 of the routing design), kept so staff can see and question it.
    routing_rule: int | None = None
    routing_reason_code: str | None = Field(default=None, max_length=40)
    routing_reason_zh: str | None = Field(default=None, max_length=500)
    routing_reason_en: str | None = Field(default=None, max_length=500)
    routing_candidates: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    routing_low_confidence: bool | None = None
    # Rule 1: the geotag's geodesic distance from the operator's registered location, and whether it exceeds
    # the configured threshold (staff should check who was really complained about).
    location_mismatch: bool | None = None
    operator_distance_m: float | None = None
    routed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ComplaintPhoto(SQLModel, table=True):
    """One uploaded photo: the original as evidence, and metadata-free renditions once processed."""

    __tablename__ = "complaint_photo"
    __table_args__ = (
        UniqueConstraint("complaint_id", "position"),
        Index("ix_complaint_photo_reuse", "status", "processed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    complaint_id: int = Field(foreign_key="complaint.id", index=True)
    position: int
    kind: PhotoKind = Field(sa_type=enum_type(PhotoKind))
    status: PhotoStatus = Field(default=PhotoStatus.pending, sa_type=enum_type(PhotoStatus))
    original_key: str = Field(max_length=512)
    original_sha256: str = Field(max_length=64, index=True)
    original_bytes: int
    original_format: str = Field(max_length=8)
    width: int
    height: int
    display_key: str | None = Field(default=None, max_length=512)
    thumbnail_key: str | None = Field(default=None, max_length=512)
    phash: str | None = Field(default=None, max_length=16, index=True)
    duplicate_of_photo_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    evidence: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    reject_reason: str | None = Field(default=None, max_length=32)
    reject_message_zh: str | None = Field(default=None, max_length=300)
    reject_message_en: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    processed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ComplaintEvent(SQLModel, table=True):
    """One step of a complaint's timeline, as the filer sees it."""

    __tablename__ = "complaint_event"

    id: int | None = Field(default=None, primary_key=True)
    complaint_id: int = Field(foreign_key="complaint.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    status: ComplaintStatus = Field(sa_type=enum_type(ComplaintStatus))
    note_zh: str = Field(default="", max_length=500)
    note_en: str = Field(default="", max_length=500)
    actor_id: int | None = Field(default=None, foreign_key="account.id")


class IdempotencyKey(SQLModel, table=True):
    """A submission's ``Idempotency-Key``: the same key and body always answer with the same complaint."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    key: str = Field(max_length=100)
    request_hash: str = Field(max_length=64)
    complaint_id: int | None = Field(default=None, foreign_key="complaint.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
