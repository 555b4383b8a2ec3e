"""API shapes for intake: single submissions, reports, jobs and their row-level errors."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.common.audience import Audience
from backend.common.schemas import IsoDay
from backend.instruments.models import VerificationState
from backend.intake.models import JobKind, JobState, ReportMeasure
from backend.operators.schemas import USCC
from backend.records.rules import IntegrityClass, RecordKind

Ref = Annotated[str, Field(min_length=1, max_length=200)]
Refs = Annotated[list[Ref], Field(max_length=20)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class VerificationSubmissionCreate(_Input):
    """One verification result; the instrument by id, by its QR code, or by serial (with the operator's USCC)."""

    instrument_id: int | None = Field(default=None, ge=1)
    instrument_code: str | None = Field(
        default=None, min_length=1, max_length=300, description="器具二维码内容或其网址 / instrument QR code"
    )
    serial: str | None = Field(default=None, min_length=1, max_length=64, description="出厂编号")
    operator_uscc: USCC | None = Field(default=None, description="经营者统一社会信用代码，用于区分同号器具")
    verified_on: IsoDay = Field(description="检定日期")
    passed: bool = Field(description="检定结果：合格 true / 不合格 false")
    certificate_no: str = Field(
        min_length=1, max_length=64, description="证书或结果通知书编号；同一器具同一编号只登记一次"
    )
    valid_until: IsoDay | None = Field(default=None, description="有效期至；合格而未填时按检定周期计算")
    notes: str = Field(default="", max_length=2000)
    overdue_in_use: bool | None = Field(
        default=None,
        description="超期使用：机构发现器具超过检定周期仍在使用；未填时由上次有效期与检定日期推断",
    )

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.instrument_id is None and self.instrument_code is None and self.serial is None:
            raise ValueError(
                "须提供 instrument_id、instrument_code 或 serial 之一 / "
                "give instrument_id, instrument_code or serial"
            )
        return self


class VerificationSubmissionRead(BaseModel):
    """A submission as stored, with the instrument's verification state after it."""

    __audience__: ClassVar[Audience] = Audience.FILER
    model_config = ConfigDict(from_attributes=True)
    id: int
    job_id: int | None
    row_number: int | None = Field(description="CSV 中的行号 / row in the uploaded file")
    instrument_id: int
    operator_id: int
    verification_record_id: int
    certificate_no: str
    verified_on: date
    passed: bool
    valid_until: date | None
    notes: str
    overdue_in_use: bool | None
    record_ids: list[int] = Field(description="由此生成的待核实诚信记录 / reported integrity records")
    created_at: datetime
    verification_state: VerificationState | None = None
    #: The operator's current integrity class (Art. 15(2): institutions apply incentives and discipline).
    operator_class: IntegrityClass | None = None


class InstrumentOperatorClassRead(BaseModel):
    """The integrity class of the operator whose instrument you verify or are asked to verify (Art. 15(2))."""

    __audience__: ClassVar[Audience] = Audience.FILER
    instrument_id: int
    operator_id: int
    operator_name: str
    operator_class: IntegrityClass
    #: The rating day the class was determined on.
    as_of: date


class ViolationReportCreate(_Input):
    """A violation an institution found (Art. 15(1)): cheating devices, unverified instruments, short weight…"""

    kind: RecordKind
    operator_id: int | None = Field(default=None, ge=1)
    operator_uscc: USCC | None = None
    instrument_id: int | None = Field(default=None, ge=1)
    instrument_code: str | None = Field(default=None, min_length=1, max_length=300)
    serial: str | None = Field(default=None, min_length=1, max_length=64)
    fact_date: IsoDay = Field(description="事实发生（发现）日期")
    summary: str = Field(min_length=1, max_length=2000)
    evidence_refs: Refs = Field(default_factory=list)
    reference: str | None = Field(default=None, min_length=1, max_length=100, description="机构文书编号")

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if not any(
            (self.operator_id, self.operator_uscc, self.instrument_id, self.instrument_code, self.serial)
        ):
            raise ValueError("须指明经营者或计量器具 / name the operator or the instrument")
        return self


class AssociationReportCreate(_Input):
    """An association's warning (警告) or censure (通报批评) of a member (Art. 16(2))."""

    measure: ReportMeasure = Field(description="warning 警告 / censure 通报批评")
    operator_id: int | None = Field(default=None, ge=1)
    operator_uscc: USCC | None = None
    fact_date: IsoDay = Field(description="作出处理的日期")
    summary: str = Field(min_length=1, max_length=2000)
    evidence_refs: Refs = Field(default_factory=list)
    reference: str | None = Field(default=None, min_length=1, max_length=100, description="通报文号")

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.operator_id is None and self.operator_uscc is None:
            raise ValueError("须提供 operator_id 或 operator_uscc / give operator_id or operator_uscc")
        if self.measure is ReportMeasure.violation:
            raise ValueError("行业组织只能报告警告或通报批评 / associations report warning or censure")
        return self


class IntakeReportRead(BaseModel):
    """A report as stored, with the integrity record it became."""

    __audience__: ClassVar[Audience] = Audience.FILER
    model_config = ConfigDict(from_attributes=True)
    id: int
    job_id: int | None
    row_number: int | None = Field(description="CSV 中的行号 / row in the uploaded file")
    measure: ReportMeasure
    kind: RecordKind
    operator_id: int
    instrument_id: int | None
    fact_date: date
    summary: str
    evidence_refs: list[str]
    reference: str | None
    record_id: int
    created_at: datetime


class JobProgress(BaseModel):
    """Rows done of the total."""

    done: int
    total: int
    percent: float


class IntakeJobRead(BaseModel):
    """A CSV job: its state, progress and counts."""

    __audience__: ClassVar[Audience] = Audience.FILER
    id: int
    kind: JobKind
    state: JobState
    filename: str
    encoding: str
    progress: JobProgress
    imported: int = Field(description="新登记的行 / rows recorded")
    duplicates: int = Field(description="此前已登记、本次跳过的行 / rows already recorded (idempotent)")
    rejected: int = Field(description="有错误未导入的行 / rows with errors")
    records_created: int = Field(description="生成的待核实诚信记录 / reported integrity records created")
    failure: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors_url: str


class RowErrorRead(BaseModel):
    """One row that was not imported, and why."""

    __audience__: ClassVar[Audience] = Audience.FILER
    row: int = Field(description="文件中的行号（表头为第 1 行）/ row number in the file, header is row 1")
    column: str | None
    code: str
    message: str
    message_zh: str
    message_en: str


# --- association memberships (Art. 16) --------------------------------------------------------------------


class MembershipCreate(_Input):
    """Register an operator as a current member, by its unified social credit code."""

    operator_uscc: USCC = Field(description="经营者统一社会信用代码")
    joined_on: IsoDay = Field(description="入会日期 / date the operator joined")
    member_number: str | None = Field(default=None, min_length=1, max_length=64, description="会员编号")


class MembershipEnd(_Input):
    """End a current membership."""

    ended_on: IsoDay = Field(description="退会日期（会员资格的最后一天）/ last day of membership")
    reason: str = Field(min_length=1, max_length=500, description="退会原因 / why it ended")


class MembershipRead(BaseModel):
    """A membership in the association's own register."""

    __audience__: ClassVar[Audience] = Audience.FILER
    model_config = ConfigDict(from_attributes=True)
    id: int
    operator_id: int
    operator_uscc: str
    operator_name: str
    member_number: str | None
    joined_on: date
    ended_on: date | None = Field(description="会员资格的最后一天；空表示在册 / last day; null while current")
    end_reason: str | None
    current: bool = Field(description="是否在册会员 / whether a member now")
    created_at: datetime
    updated_at: datetime


class OperatorMembershipRead(BaseModel):
    """An operator's membership of an association, as staff see it."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    association_id: int
    association_name: str
    member_number: str | None
    joined_on: date
    ended_on: date | None
    end_reason: str | None
    current: bool
    created_at: datetime
    updated_at: datetime


class MyMembershipRead(BaseModel):
    """One of your memberships of an industry association, as the association registered it (its reports about
    you count only for the days you were a member, Art. 16)."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    id: int
    association_name: str
    member_number: str | None
    joined_on: date
    ended_on: date | None
    end_reason: str | None
    current: bool


class MembershipImportRead(BaseModel):
    """The outcome of a membership CSV import: the good rows are added, the others reported."""

    __audience__: ClassVar[Audience] = Audience.FILER
    encoding: str
    total: int = Field(description="数据行数 / data rows in the file")
    imported: int = Field(description="新登记的会员记录 / memberships added")
    duplicates: int = Field(description="此前已登记、本次跳过的行 / rows already registered")
    rejected: int = Field(description="有错误未导入的行 / rows with errors")
    errors: list[RowErrorRead]
