"""API shapes for records, ratings, corrections and supervisor reports; operator-facing shapes are separate."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.common.audience import Audience
from backend.common.schemas import IsoDay
from backend.complaints.models import PatrolFinding
from backend.operators.models import Sector
from backend.records.models import (
    CorrectionAction,
    CorrectionDecision,
    CorrectionStatus,
    CorrectionSubject,
    RatingTrigger,
    RecordChange,
    RecordSource,
)
from backend.records.rules import KIND_INFO, IntegrityClass, RecordKind, RecordState

Ref = Annotated[str, Field(min_length=1, max_length=200)]
Refs = Annotated[list[Ref], Field(max_length=20)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RecordCreate(_Input):
    """A record entered by staff (their own finding, a penalty decision, a letter from another body)."""

    operator_id: int
    kind: RecordKind
    fact_date: IsoDay = Field(description="事实发生日期 / date of the facts")
    summary: str = Field(default="", max_length=2000)
    evidence_refs: Refs = Field(default_factory=list)
    source_ref: str | None = Field(
        default=None, min_length=1, max_length=200, description="文书编号等；同一编号和类型只登记一次"
    )
    instrument_id: int | None = None
    instrument_still_in_use: bool | None = Field(default=None, description="Art. 13(3) finding")
    social_impact: bool | None = Field(default=None, description="Art. 13(2) finding")
    verified: bool = Field(
        default=False, description="已经调查核实（如行政处罚决定）则直接登记为已核实 / already verified"
    )


class RecordVerify(_Input):
    """Confirm a reported record, optionally with the findings the investigation made."""

    reason: str = Field(default="", max_length=2000)
    instrument_still_in_use: bool | None = None
    social_impact: bool | None = None


class RecordReason(_Input):
    """A change that needs its reason stated (dismiss, revoke)."""

    reason: Reason


class RecordChanges(_Input):
    """New values for a record's fields; fields not given keep their value, null clears a finding."""

    kind: RecordKind | None = None
    fact_date: IsoDay | None = None
    summary: str | None = Field(default=None, max_length=2000)
    evidence_refs: Refs | None = None
    instrument_id: int | None = None
    instrument_still_in_use: bool | None = None
    social_impact: bool | None = None

    def given(self) -> dict[str, Any]:
        """The fields the caller set; kind, date, summary and evidence cannot be set to null."""
        data = self.model_dump(include=self.model_fields_set)
        for key in ("kind", "fact_date", "summary", "evidence_refs"):
            if key in data and data[key] is None:
                del data[key]
        return data


class RecordCorrect(RecordChanges):
    """A correction: the new values and why."""

    reason: Reason

    def given(self) -> dict[str, Any]:
        """The fields to change (the reason is not one)."""
        data = super().given()
        data.pop("reason", None)
        return data


def kind_labels(kind: RecordKind) -> dict[str, Any]:
    """The labels and good/bad nature of a kind, for read shapes."""
    info = KIND_INFO[kind]
    return {"kind_label_zh": info.label_zh, "kind_label_en": info.label_en, "bad": info.bad}


class RecordRead(BaseModel):
    """A record as staff in scope see it: source, evidence and author included."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    operator_id: int
    kind: RecordKind
    kind_label_zh: str
    kind_label_en: str
    bad: bool
    fact_date: date
    source: RecordSource
    source_ref: str | None
    summary: str
    evidence_refs: list[str]
    instrument_id: int | None
    state: RecordState
    instrument_still_in_use: bool | None
    social_impact: bool | None
    public_eligible: bool
    author_id: int | None
    version: int
    created_at: datetime
    updated_at: datetime


class RecordVersionRead(BaseModel):
    """One version of a record: the full snapshot after the change, why, and by whom."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    model_config = ConfigDict(from_attributes=True)
    version: int
    change: RecordChange
    reason: str
    actor_id: int | None
    actor_role: str
    at: datetime
    snapshot: dict[str, Any]


class RecordDetail(RecordRead):
    """A record with its whole history."""

    versions: list[RecordVersionRead]


class OperatorRecordRead(BaseModel):
    """A record as its operator sees it: no author, source reference, evidence or summary (Art. 18)."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    id: int
    operator_id: int
    kind: RecordKind
    kind_label_zh: str
    kind_label_en: str
    bad: bool
    fact_date: date
    source: RecordSource
    state: RecordState
    instrument_id: int | None
    instrument_still_in_use: bool | None
    social_impact: bool | None
    version: int
    created_at: datetime
    updated_at: datetime


class ReasonRead(BaseModel):
    """One reason for a class: its rule, the article, the records behind it, an explanation."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    rule: str
    article: str
    record_ids: list[int]
    explanation_zh: str
    explanation_en: str


class RatingRead(BaseModel):
    """An operator's integrity class (Art. 10) with its reasons (Art. 13)."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    model_config = ConfigDict(populate_by_name=True)
    operator_id: int
    cls: IntegrityClass = Field(alias="class", description="守信 / 基本守信 / 失信")
    class_zh: str
    class_en: str
    as_of: date = Field(
        description="评级日期：该等级及理由自此日起有效 / the date the class and reasons were set"
    )
    rules_version: str
    reasons: list[ReasonRead]
    stored: bool = Field(
        description="false: 尚无评级记录，按现有记录即时计算 / computed now, nothing stored yet"
    )


class RatingChangeRead(BaseModel):
    """One change of class."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    model_config = ConfigDict(from_attributes=True)
    id: int
    from_cls: IntegrityClass
    to_cls: IntegrityClass
    as_of: date
    rules_version: str
    trigger: RatingTrigger
    at: datetime


class RuleRowRead(BaseModel):
    """One row of the classification rule table: the condition, its figures and why they were chosen."""

    rule: str
    article: str
    article_zh: str
    article_en: str
    condition_zh: str
    condition_en: str
    threshold: int | None
    window_years: int | None
    window_days: int | None
    outcome_class: str | None
    choice_reasoning_zh: str
    choice_reasoning_en: str


class RequestedChange(_Input):
    """What the operator says the record should say instead."""

    kind: RecordKind | None = None
    fact_date: IsoDay | None = None
    instrument_still_in_use: bool | None = None
    social_impact: bool | None = None


class CorrectionCreate(_Input):
    """An operator's request to correct or revoke one of its records (Art. 22)."""

    action: CorrectionAction
    reasons: Reason
    document_refs: Refs = Field(default_factory=list, description="证明材料 / supporting documents")
    requested_change: RequestedChange | None = None


class OperatorInfoChange(_Input):
    """The operator's basic information as it should read (only the fields disputed)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    sector: Sector | None = None
    address: str | None = Field(default=None, min_length=1, max_length=300)
    legal_representative: str | None = Field(default=None, min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=32, pattern=r"^[0-9+\- ]{5,32}$")


class InstrumentInfoChange(_Input):
    """An instrument's data as it should read (only the fields disputed)."""

    serial: str | None = Field(default=None, min_length=1, max_length=64)
    maker: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=100)
    last_verified_on: IsoDay | None = None
    last_passed: bool | None = None
    valid_until: IsoDay | None = None


class InfoCorrectionCreate(_Input):
    """An operator's request to correct its basic information or an instrument's data (Art. 22)."""

    subject: CorrectionSubject
    #: With ``instrument``: which of your instruments.
    instrument_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    reasons: Reason
    document_refs: Refs = Field(default_factory=list, description="证明材料 / supporting documents")
    operator_change: OperatorInfoChange | None = None
    instrument_change: InstrumentInfoChange | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> InfoCorrectionCreate:
        """Basic information takes ``operator_change``; an instrument ``instrument_id`` and its change."""
        if self.subject is CorrectionSubject.record:
            raise ValueError("records are disputed at /records/{record_id}/corrections")
        wants_instrument = self.subject is CorrectionSubject.instrument
        given = self.instrument_change if wants_instrument else self.operator_change
        other = self.operator_change if wants_instrument else self.instrument_change
        if given is None or not given.model_fields_set or other is not None:
            raise ValueError(
                f"{self.subject.value} needs its own change with at least one field, and no other"
            )
        if wants_instrument != (self.instrument_id is not None):
            raise ValueError("instrument_id is given exactly for an instrument")
        return self


class CorrectionDecide(_Input):
    """Staff decision on a correction request; ``changes`` (for correct) default to what was requested:
    ``changes`` for a record, ``operator_changes`` or ``instrument_changes`` for basic information or
    instrument data (which are corrected or rejected, never revoked)."""

    decision: CorrectionDecision
    reasons: Reason
    changes: RecordChanges | None = None
    operator_changes: OperatorInfoChange | None = None
    instrument_changes: InstrumentInfoChange | None = None


class OperatorCorrectionRead(BaseModel):
    """A correction request as its operator sees it."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    model_config = ConfigDict(from_attributes=True)
    id: int
    subject: CorrectionSubject
    record_id: int | None
    instrument_id: int | None
    operator_id: int
    action: CorrectionAction
    reasons: str
    document_refs: list[str]
    requested_change: dict[str, Any] | None
    record_version: int
    status: CorrectionStatus
    due_on: date = Field(description="办理期限（工作日计算）/ decision due (working days)")
    calendar_exact: bool
    decided_at: datetime | None
    decision_reasons: str | None
    created_at: datetime
    #: The decision ran late and was escalated to this jurisdiction's bureau (set by the deadline sweep).
    overdue_at: datetime | None
    escalated_to: str | None


class CorrectionRead(OperatorCorrectionRead):
    """A correction request as staff see it, with who asked and who decided."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    requested_by_id: int
    decided_by_id: int | None
    overdue: bool


class SupervisorReportCreate(_Input):
    """A volunteer supervisor's finding about an operator (Art. 17), pending staff verification."""

    operator_id: int
    kind: RecordKind
    fact_date: IsoDay
    summary: str = Field(min_length=1, max_length=2000)
    evidence_refs: Refs = Field(default_factory=list)
    instrument_id: int | None = None
    instrument_still_in_use: bool | None = None


class SupervisorReportRead(BaseModel):
    """A supervisor's report and what staff decided about it, whichever route filed it: ``record`` (POST
    /supervisor-reports; ``id`` is the record's) or ``complaint`` (POST /complaints with photos; ``id`` is the
    complaint's, with its case number, and ``finding`` says what the patrol found)."""

    __audience__: ClassVar[Audience] = Audience.FILER
    id: int
    source: Literal["record", "complaint"] = "record"
    complaint_id: int | None = None
    case_no: str | None = None
    operator_id: int
    operator_name: str
    #: The record kind reported; None for a report filed as a complaint (``finding`` says what was found).
    kind: RecordKind | None
    finding: PatrolFinding | None = None
    kind_label_zh: str
    kind_label_en: str
    fact_date: date
    summary: str
    state: RecordState
    decision_reason: str | None
    created_at: datetime
    updated_at: datetime
