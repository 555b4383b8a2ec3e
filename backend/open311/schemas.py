"""Open311 GeoReport v2 shapes, field names as the specification spells them.

``Open311Request`` is public: it carries no complainant identity, contact or photos, and its coordinates are
rounded to a grid of about 100 m by the field type itself (``CoarseLatitude``), so a precise geotag cannot
leave through it (Art. 18).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, field_validator

from backend.common.audience import Audience, Coarsened
from backend.common.schemas import Latitude, Longitude
from backend.complaints.models import ComplaintCategory

#: Three decimals of a degree: 111 m of latitude, at most 111 m of longitude.
COARSE_DECIMALS = 3


def _coarse(value: float | None) -> float | None:
    return None if value is None else round(value, COARSE_DECIMALS)


CoarseLatitude = Annotated[float | None, AfterValidator(_coarse), Coarsened(grid_m=100)]
CoarseLongitude = Annotated[float | None, AfterValidator(_coarse), Coarsened(grid_m=100)]

Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class Open311Service(BaseModel):
    """A service (request type): one complaint category."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    service_code: str
    service_name: str
    description: str | None
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str | None
    group: str | None


class Open311AttributeValue(BaseModel):
    """One option of a list attribute."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    key: str
    name: str


class Open311Attribute(BaseModel):
    """An extra field a service accepts, sent as ``attribute[code]``."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    variable: bool
    code: str
    datatype: Datatype
    required: bool
    datatype_description: str | None
    order: int | None
    description: str | None
    values: list[Open311AttributeValue]


class Open311ServiceDefinition(BaseModel):
    """The attributes of one service."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    service_code: str
    attributes: list[Open311Attribute]


class Open311Request(BaseModel):
    """A service request as anyone may read it: the public subset of a complaint."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    service_request_id: str
    status: Literal["open", "closed"]
    #: The stage reached (received, with the bureau, being handled, closed), never the finding itself.
    status_notes: str | None
    service_name: str | None
    service_code: str
    #: A summary made by us (category and operator); the complainant's own words are never published.
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: datetime
    updated_datetime: datetime | None
    expected_datetime: datetime | None
    #: The operator's registered address when the complaint names one; otherwise null.
    address: str | None
    address_id: str | None
    zipcode: str | None
    #: WGS-84, rounded to about 100 m: the operator's registered location, else the geotag's cell.
    lat: CoarseLatitude
    long: CoarseLongitude
    media_url: str | None


class Open311RequestCreated(BaseModel):
    """The answer to a POST: the id to follow the request by, and what happens next."""

    __audience__: ClassVar[Audience] = Audience.FILER
    service_request_id: str
    service_notice: str
    #: The client's own reference for the person when it sent one, else the account the complaint is filed under.
    account_id: str


class Open311RequestIn(BaseModel):
    """The POST arguments, as the specification names them; attributes come as ``attribute[code]``."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    service_code: ComplaintCategory
    lat: Latitude | None = None
    long: Longitude | None = None
    address_string: str | None = Field(default=None, min_length=2, max_length=200)
    address_id: str | None = Field(default=None, max_length=100)
    email: EmailStr | None = Field(default=None, max_length=254)
    device_id: str | None = Field(default=None, max_length=100)
    account_id: str | None = Field(default=None, max_length=100)
    first_name: str | None = Field(default=None, max_length=50)
    last_name: str | None = Field(default=None, max_length=50)
    phone: str | None = Field(default=None, min_length=5, max_length=32, pattern=r"^\+?[0-9][0-9 \-]{3,30}$")
    description: str | None = Field(default=None, max_length=2000)
    media_url: str | None = Field(default=None, max_length=1000, pattern=r"^https?://")
    qr_token: str | None = Field(default=None, min_length=1, max_length=200)
    operator_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    declared_g: Decimal | None = Field(default=None, gt=0, le=1_000_000, max_digits=12, decimal_places=3)
    measured_g: Decimal | None = Field(default=None, gt=0, le=1_000_000, max_digits=12, decimal_places=3)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: object) -> object:
        """Form clients send empty fields as ``""``: treat them as not given."""
        return None if value == "" else value
