"""API shapes for complaints: the submission, and separate read families for the filer, staff, operator, public.

Privacy by construction (Art. 18): only the ``STAFF`` family carries the filer's identity, contact, precise
location, originals and EXIF; ``ComplaintOperatorView`` and ``SimilarCounts`` simply have no such fields.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from backend.auth.models import Role
from backend.common.audience import Audience
from backend.common.schemas import Latitude, Longitude
from backend.complaints.models import (
    ComplaintCategory,
    ComplaintSource,
    ComplaintStatus,
    PatrolFinding,
    PhotoKind,
    PhotoStatus,
    RoutingStatus,
)
from backend.complaints.weighing import GoodsClass
from geo import CoordSystem, UnknownCoordSystemError, parse_coord_system


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC, so naive means UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A timestamp in answers: always with its offset (UTC).
UTCDatetime = Annotated[datetime, AfterValidator(_utc)]

#: At most this many photos per complaint.
MAX_PHOTOS = 6
MAX_DESCRIPTION_CHARS = 2000


def _coord_system(value: object) -> CoordSystem:
    if isinstance(value, CoordSystem | str):
        try:
            return parse_coord_system(value)
        except UnknownCoordSystemError:
            pass
    raise PydanticCustomError(
        "invalid_coord_system",
        "不支持的坐标系，可选 wgs84、gcj02、bd09 / unknown coordinate system: use wgs84, gcj02 or bd09",
    )


CoordSystemIn = Annotated[CoordSystem, BeforeValidator(_coord_system)]
Grams = Annotated[Decimal, Field(gt=0, le=1_000_000, max_digits=12, decimal_places=3)]


class LocationIn(BaseModel):
    """The geotag as the phone's map SDK gives it (GCJ-02 for Amap/Tencent, BD-09 for Baidu, WGS-84 for GPS)."""

    model_config = ConfigDict(extra="forbid")
    lon: Longitude
    lat: Latitude
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000, allow_inf_nan=False)
    coord_system: CoordSystemIn
    captured_at: AwareDatetime | None = None


class WeighingIn(BaseModel):
    """The settled weight (on the receipt) and the re-weighed one, in grams, and the class of goods."""

    model_config = ConfigDict(extra="forbid")
    declared_g: Grams
    measured_g: Grams
    #: The row of 附表1/附表2 of Order No. 66; grain, vegetables and fruit when not given.
    goods_class: GoodsClass = GoodsClass.STAPLE_FOOD


class ContactIn(BaseModel):
    """How the bureau may reach the filer about the outcome (optional; staff only ever see it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(default="", max_length=50)
    phone: str = Field(min_length=5, max_length=32, pattern=r"^\+?[0-9][0-9 \-]{3,30}$")


class ComplaintSubmission(BaseModel):
    """The JSON part ``complaint`` of ``POST /api/v1/complaints``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    category: ComplaintCategory
    #: Supervisors only: what the patrol found.
    finding: PatrolFinding | None = None
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    #: The token of a scanned code (the part after ``/q/``), instead of or besides the ids below.
    qr_token: str | None = Field(default=None, min_length=1, max_length=200)
    operator_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    stall_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    instrument_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    location: LocationIn | None = None
    #: Where it happened in words, for a report without a geotag (geocoded when the bureau runs a geocoder).
    address: str | None = Field(default=None, min_length=2, max_length=200)
    weighing: WeighingIn | None = None
    contact: ContactIn | None = None
    #: The kind of each ``photos`` part, in the same order; all ``other`` when omitted.
    photo_kinds: list[PhotoKind] = Field(default_factory=list, max_length=MAX_PHOTOS)


# ---- answers to the filer ------------------------------------------------------------------------------


class PhotoStatusRead(BaseModel):
    """A photo's processing state."""

    __audience__: ClassVar[Audience] = Audience.FILER
    id: int
    kind: PhotoKind
    status: PhotoStatus


class RoutingRead(BaseModel):
    """Whether the complaint has reached the bureau with jurisdiction."""

    __audience__: ClassVar[Audience] = Audience.FILER
    status: RoutingStatus
    jurisdiction_code: str | None


class RoutingCandidate(BaseModel):
    """A jurisdiction routing considered, with its distance (rules 1, 4) or share of the accuracy circle (6)."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    code: str
    name: str | None
    distance_m: float | None = None
    overlap_share: float | None = None


class RoutingStaffRead(RoutingRead):
    """How routing decided, for handling staff: the rule, its reason and the flags to check."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    #: 1 known operator, 2 containing county, 3 shared border, 4 nearest county, 5 unroutable (triage),
    #: 6 accuracy circle across counties; null before routing.
    rule: int | None
    reason_code: str | None
    reason: str | None
    candidates: list[RoutingCandidate]
    low_confidence: bool | None
    #: Rule 1: the geotag lies farther than the configured distance from the operator's registered location.
    location_mismatch: bool | None
    operator_distance_m: float | None
    routed_at: UTCDatetime | None


class ComplaintCreated(BaseModel):
    """The answer to a submission (201 the first time, 200 for a retry with the same key and body)."""

    __audience__: ClassVar[Audience] = Audience.FILER
    id: int
    #: The number to quote to the bureau (``TS2026…``/``JB2026…``), the one its case and the notices carry.
    case_no: str
    status: ComplaintStatus
    created_at: UTCDatetime
    photos: list[PhotoStatusRead]
    routing: RoutingRead


class SubjectRead(BaseModel):
    """Who the complaint is about, when known."""

    __audience__: ClassVar[Audience] = Audience.FILER
    operator_id: int | None
    operator_name: str | None
    stall_id: int | None
    stall_number: str | None
    instrument_id: int | None
    instrument_serial: str | None
    via_qr: bool


class LocationRead(BaseModel):
    """The geotag: WGS-84 and the figures as sent."""

    __audience__: ClassVar[Audience] = Audience.FILER
    lon: float
    lat: float
    original_lon: float
    original_lat: float
    coord_system: CoordSystem
    accuracy_m: float | None
    captured_at: UTCDatetime | None


class WeighingRead(BaseModel):
    """The weighing figures and the check against Order No. 66 (null figures when the Order sets no limit)."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    declared_g: Decimal
    measured_g: Decimal
    goods_class: GoodsClass
    #: False when the settled weight lies outside the Order's tables, so no permitted deviation applies.
    checked: bool
    shortfall_g: Decimal | None
    shortfall_pct: Decimal | None
    permitted_g: Decimal | None
    within_tolerance: bool | None
    table_ref: str | None
    explanation: str


class ContactRead(BaseModel):
    """The contact given for feedback."""

    __audience__: ClassVar[Audience] = Audience.FILER
    name: str
    phone: str


class PhotoRead(BaseModel):
    """A photo as its filer sees it: metadata-free renditions only."""

    __audience__: ClassVar[Audience] = Audience.FILER
    id: int
    kind: PhotoKind
    status: PhotoStatus
    reject_reason: str | None
    reject_message: str | None
    display_url: str | None
    thumbnail_url: str | None


class TimelineEntry(BaseModel):
    """One step of the complaint's progress."""

    __audience__: ClassVar[Audience] = Audience.FILER
    at: UTCDatetime
    status: ComplaintStatus
    note: str


class ComplaintRead(BaseModel):
    """A complaint as its filer sees it, with the timeline."""

    __audience__: ClassVar[Audience] = Audience.FILER
    id: int
    source: ComplaintSource
    category: ComplaintCategory
    finding: PatrolFinding | None
    description: str
    status: ComplaintStatus
    created_at: UTCDatetime
    updated_at: UTCDatetime
    subject: SubjectRead
    location: LocationRead | None
    address: str | None
    weighing: WeighingRead | None
    contact: ContactRead | None
    photos: list[PhotoRead]
    routing: RoutingRead
    timeline: list[TimelineEntry]


class ComplaintSummary(BaseModel):
    """A line of the filer's own list."""

    __audience__: ClassVar[Audience] = Audience.FILER
    id: int
    source: ComplaintSource
    category: ComplaintCategory
    status: ComplaintStatus
    created_at: UTCDatetime
    operator_name: str | None
    photo_count: int
    routing: RoutingRead


# ---- handling staff -------------------------------------------------------------------------------------


class FilerRead(BaseModel):
    """Who filed (staff only)."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    account_id: int
    role: Role
    display_name: str


class PhotoStaffRead(BaseModel):
    """A photo with its evidence: the original's hash and size, EXIF (GPS, time, camera), reuse flags."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    kind: PhotoKind
    status: PhotoStatus
    reject_reason: str | None
    reject_message: str | None
    original_sha256: str
    original_bytes: int
    original_format: str
    width: int
    height: int
    phash: str | None
    duplicate_of_photo_ids: list[int]
    evidence: dict[str, Any] | None
    created_at: UTCDatetime
    processed_at: UTCDatetime | None
    display_url: str | None
    thumbnail_url: str | None
    original_url: str


class ComplaintStaffRead(BaseModel):
    """A complaint with everything handling staff need, identity and evidence included; every read is audited."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    source: ComplaintSource
    category: ComplaintCategory
    finding: PatrolFinding | None
    description: str
    status: ComplaintStatus
    created_at: UTCDatetime
    updated_at: UTCDatetime
    filer: FilerRead
    contact: ContactRead | None
    subject: SubjectRead
    location: LocationRead | None
    address: str | None
    weighing: WeighingRead | None
    short_weight: bool | None
    photos: list[PhotoStaffRead]
    routing: RoutingStaffRead
    timeline: list[TimelineEntry]


# ---- the operator and the public -------------------------------------------------------------------------


class ComplaintOperatorView(BaseModel):
    """A complaint as the operator it concerns sees it: what is alleged, never who, where exactly, or the photos."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    id: int
    category: ComplaintCategory
    finding: PatrolFinding | None
    status: ComplaintStatus
    received_on: date
    stall_number: str | None
    instrument_serial: str | None
    weighing: WeighingRead | None
    photo_count: int


class SimilarCounts(BaseModel):
    """How many others reported the same thing recently: counts only, nothing about anyone."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    basis: Literal["operator", "area"]
    category: ComplaintCategory | None
    days: int
    radius_m: int | None
    count: int
