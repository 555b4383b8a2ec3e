"""API shapes for inspections, inspection plans, reminders and interviews, department notices."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from backend.common.audience import Audience
from backend.common.schemas import IsoDay
from backend.operators.models import Sector
from backend.records.rules import IntegrityClass, RecordKind
from backend.supervision.models import InspectionResult, InterviewKind, InterviewStatus, NoticeChannel

JurisdictionCode = Annotated[str, Field(pattern=r"^\d{6}$")]
#: A year, half-year, quarter or month: 2026, 2026-H2, 2026-Q3, 2026-07.
PeriodKey = Annotated[str, Field(pattern=r"^\d{4}(-(H[12]|Q[1-4]|(0[1-9]|1[0-2])))?$")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class InspectionItemKind(StrEnum):
    """What an inspection checks (Art. 14(2))."""

    verification_marks = "verification_marks"  # 检定合格标志
    scale_accuracy = "scale_accuracy"  # 计量器具准确度（核查砝码等）
    net_content_sampling = "net_content_sampling"  # 定量包装商品净含量抽查
    commitment_displayed = "commitment_displayed"  # 诚信计量承诺公示
    other = "other"


class InstrumentFinding(StrEnum):
    """What a failed instrument item found; each becomes the matching Art. 13(3) record."""

    unverified = "unverified"
    failed_verification = "failed_verification"
    overdue = "overdue"

    @property
    def record_kind(self) -> RecordKind:
        """The record kind for this finding."""
        return {
            InstrumentFinding.unverified: RecordKind.INSTRUMENT_UNVERIFIED,
            InstrumentFinding.failed_verification: RecordKind.INSTRUMENT_FAILED_VERIFICATION,
            InstrumentFinding.overdue: RecordKind.INSTRUMENT_OVERDUE,
        }[self]


_INSTRUMENT_ITEMS = frozenset({InspectionItemKind.verification_marks, InspectionItemKind.scale_accuracy})


class InspectionItem(_Input):
    """One checked item and its result; a failed instrument item may say what was wrong with which instrument."""

    item: InspectionItemKind
    result: InspectionResult
    note: str = Field(default="", max_length=500)
    instrument_id: int | None = None
    instrument_finding: InstrumentFinding | None = None

    @model_validator(mode="after")
    def _finding_fits(self) -> InspectionItem:
        """An instrument finding belongs only to a failed instrument item."""
        if self.instrument_finding is not None and (
            self.item not in _INSTRUMENT_ITEMS or self.result is not InspectionResult.failed
        ):
            raise ValueError(
                "instrument_finding 仅适用于不合格的计量器具检查项 / only for failed instrument items"
            )
        return self


class InspectionCreate(_Input):
    """A supervision inspection as recorded by the inspector."""

    operator_id: int
    inspected_on: IsoDay
    items: list[InspectionItem] = Field(min_length=1, max_length=30)
    notes: str = Field(default="", max_length=4000)
    plan_entry_id: int | None = None


class InspectionRead(BaseModel):
    """A recorded inspection with the records its failures produced."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    model_config = ConfigDict(from_attributes=True)
    id: int
    operator_id: int
    inspector_id: int
    inspected_on: date
    items: list[InspectionItem]
    result: InspectionResult
    notes: str
    plan_entry_id: int | None
    record_ids: list[int]
    created_at: datetime


class PlanRates(_Input):
    """Share of each class to inspect in the period (Art. 11-12); a worse class is never inspected less."""

    untrustworthy: float = Field(default=1.0, ge=0, le=1)
    basically_trustworthy: float = Field(default=0.3, ge=0, le=1)
    trustworthy: float = Field(default=0.1, ge=0, le=1)


class PlanCreate(_Input):
    """Draw a period's inspection plan for a jurisdiction in your scope."""

    period_key: PeriodKey
    jurisdiction_code: JurisdictionCode
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="省略时随机生成并保存 / generated and stored when omitted",
    )
    rates: PlanRates | None = None


class PlanEntryRead(BaseModel):
    """One drawn operator."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    operator_id: int
    operator_name: str
    uscc: str
    jurisdiction_code: str
    cls: IntegrityClass
    stratum_size: int
    stratum_quota: int
    draw_ticket: str


class PlanRead(BaseModel):
    """A stored plan: the seed and rates that reproduce it, and the drawn operators."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    period_key: str
    jurisdiction_code: str
    seed: str = Field(description="十进制文本，避免 JavaScript 丢失精度 / decimal text, safe for JavaScript")
    rates: dict[str, float]
    created_by_id: int | None
    created_at: datetime
    entries: list[PlanEntryRead]


class PlanSummary(BaseModel):
    """A plan in a listing."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    period_key: str
    jurisdiction_code: str
    seed: str
    entry_count: int
    created_at: datetime


class KeySupervisionItem(BaseModel):
    """An untrustworthy operator under key supervision (Art. 12(1))."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    operator_id: int
    name: str
    uscc: str
    sector: Sector
    jurisdiction_code: str
    as_of: date
    rules: list[str]


class InterviewCreate(_Input):
    """Schedule a reminder (提醒) or an interview (约谈) of an operator (Art. 12(2))."""

    operator_id: int
    kind: InterviewKind
    scheduled_at: AwareDatetime | None = None
    place: str = Field(default="", max_length=200)
    subject: str = Field(min_length=1, max_length=2000)
    legal_basis: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _interview_needs_time_and_place(self) -> InterviewCreate:
        """An interview is a meeting: it needs a time and a place; a reminder may have neither."""
        if self.kind is InterviewKind.interview and (self.scheduled_at is None or not self.place):
            raise ValueError("约谈须写明时间和地点 / an interview needs scheduled_at and place")
        return self


class InterviewOutcome(_Input):
    """What came of the interview."""

    outcome: str = Field(min_length=1, max_length=4000)


class InterviewCancel(_Input):
    """Why the interview is cancelled."""

    reason: str = Field(min_length=1, max_length=2000)


class InterviewRead(BaseModel):
    """A reminder or interview as both staff and the operator see it."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    model_config = ConfigDict(from_attributes=True)
    id: int
    operator_id: int
    kind: InterviewKind
    scheduled_at: datetime | None
    place: str
    subject: str
    legal_basis: str
    class_at_scheduling: IntegrityClass
    status: InterviewStatus
    outcome: str | None
    cancel_reason: str | None
    acknowledged_at: datetime | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime


class NoticeCreate(_Input):
    """A notice sent to another department or the local government (Art. 12(3))."""

    operator_id: int
    department: str = Field(
        min_length=1, max_length=100, description="如：县发展和改革局 / e.g. the county DRC"
    )
    sent_at: AwareDatetime
    content: str = Field(min_length=1, max_length=4000)
    channel: NoticeChannel


class NoticeRead(BaseModel):
    """A recorded department notice."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    model_config = ConfigDict(from_attributes=True)
    id: int
    operator_id: int
    department: str
    sent_at: datetime
    content: str
    channel: NoticeChannel
    created_by_id: int | None
    created_at: datetime
