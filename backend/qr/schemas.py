"""API shapes for QR codes: the public profile behind a scan, and the staff view of a printable code."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel

from backend.common.audience import Audience
from backend.instruments.models import VerificationState
from backend.operators.models import Sector
from backend.qr.tokens import SubjectKind
from backend.records.rules import IntegrityClass


class QRKind(StrEnum):
    """What a code stands for, as written in URLs and JSON."""

    operator = "operator"  # 单位码
    stall = "stall"  # 摊位码
    instrument = "instrument"  # 一器一码

    @property
    def subject_kind(self) -> SubjectKind:
        """The token's subject kind."""
        return {
            QRKind.operator: SubjectKind.OPERATOR,
            QRKind.stall: SubjectKind.STALL,
            QRKind.instrument: SubjectKind.INSTRUMENT,
        }[self]

    @classmethod
    def of(cls, kind: SubjectKind) -> QRKind:
        """The URL kind of a token's subject kind."""
        return {
            SubjectKind.OPERATOR: cls.operator,
            SubjectKind.STALL: cls.stall,
            SubjectKind.INSTRUMENT: cls.instrument,
        }[kind]


class SelfCommitmentPublic(BaseModel):
    """Whether and when the operator signed the integrity self-commitment (a good record, Art. 8)."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    text_version: str
    signed_on: date
    text: str


class OperatorPublic(BaseModel):
    """An operator's public basic information (Art. 8/19); no legal representative, phone or coordinates."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    id: int
    uscc: str
    name: str
    sector: Sector
    sector_name: str
    address: str
    is_demonstration_unit: bool
    #: 守信 / 基本守信 / 失信 (Art. 10); null when not rated, or while a 失信 class awaits publication review.
    integrity_class: IntegrityClass | None = None
    #: The class's name in the reader's language ("暂无评级 / not yet rated" when null).
    integrity_class_name: str
    #: What the class means, in plain words from Art. 10.
    integrity_class_explanation: str
    #: The rating date of a stored class; null for the no-record baseline.
    integrity_class_as_of: date | None = None
    self_commitment: SelfCommitmentPublic | None


class StallPublic(BaseModel):
    """A market stall; the holder's name is masked (张**)."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    id: int
    number: str
    name: str
    holder_name_masked: str


class InstrumentPublic(BaseModel):
    """A measuring instrument with its verification state and validity."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    id: int
    type_code: str
    type_name: str
    maker: str
    model: str
    serial: str
    verification_state: VerificationState
    last_verified_on: date | None
    valid_until: date | None


class QRProfilePublic(BaseModel):
    """What a consumer sees after scanning a genuine code."""

    __audience__: ClassVar[Audience] = Audience.PUBLIC
    kind: QRKind
    operator: OperatorPublic
    stall: StallPublic | None
    instruments: list[InstrumentPublic]
    #: How many instruments there are in all (the list stops at a page's worth for large markets).
    instruments_total: int


class QRCodeRead(BaseModel):
    """A code as staff print it: the signed token, the URL it encodes, and its serial."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    kind: QRKind
    subject_id: int
    serial: int
    kid: int
    token: str
    url: str
