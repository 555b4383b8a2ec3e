"""API shapes for cases: staff views with history and deadlines, step bodies, transfers, operator findings.

Privacy by construction (Art. 18): only ``CaseDetail`` carries the complaint with the filer's identity and
evidence (its read is audited); summaries, transfers and the operator's findings have no such fields.
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.cases.figures import BasisSource
from backend.cases.models import (
    ArbitrationResult,
    CaseAction,
    CaseKind,
    CaseOutcome,
    CaseState,
    HandledBy,
    NoticeMethod,
    PauseCause,
    RejectionReason,
)
from backend.common.audience import Audience
from backend.common.schemas import IsoDay
from backend.complaints.models import ComplaintCategory
from backend.complaints.schemas import (
    ComplaintOperatorView,
    ComplaintStaffRead,
    RoutingStaffRead,
    UTCDatetime,
)
from backend.records.rules import IntegrityClass, RecordKind


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ---- step bodies ------------------------------------------------------------------------------------------


class CaseNote(_Body):
    """An optional note for a step (accept, investigate)."""

    note: str = Field(default="", max_length=2000)


class CaseReject(_Body):
    """Why the case is not accepted: a reason from the list, who handles it elsewhere, the earlier case."""

    reason: RejectionReason
    #: Required with ``handled_elsewhere``: a court, an arbitration body or a consumer association.
    handled_by: HandledBy | None = None
    #: With ``duplicate``: the earlier case (in your jurisdiction) this one repeats.
    duplicate_of_case_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    note: str = Field(default="", max_length=2000)


class HandledByOption(BaseModel):
    """A body that may already handle the complaint (with ``handled_elsewhere``)."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    handled_by: HandledBy
    label: str


class RejectionReasonRead(BaseModel):
    """One reason on the list for not accepting a complaint (SAMR Order No. 20, Art. 15), as staff pick it."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    reason: RejectionReason
    #: In the reader's language (zh-CN first); also what the filer reads on their timeline.
    label: str
    #: The bodies to name with this reason (``handled_by`` is required exactly when this is not empty).
    handled_by: list[HandledByOption]
    #: Whether the earlier case may be cited (``duplicate_of_case_id``).
    cites_case: bool


class CaseSubstantiate(_Body):
    """The investigation's findings and the integrity records they make (verified: Art. 13 经调查核实)."""

    findings: str = Field(min_length=1, max_length=4000)
    #: The date of the facts; the geotag's capture date, else the day the complaint arrived, when omitted.
    fact_date: IsoDay | None = None
    #: The operator the investigation found, when the complaint named none (must be in your jurisdiction).
    operator_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    #: Records besides ``complaint_substantiated`` the findings establish (short weight, cheating,
    #: instrument unverified/failed/overdue, net content).
    record_kinds: list[RecordKind] = Field(default_factory=list, max_length=6)
    #: For instrument records: which instrument (the complaint's, when omitted) and whether still used
    #: in trade (Art. 13(3)).
    instrument_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    instrument_still_in_use: bool | None = None
    evidence_refs: list[str] = Field(default_factory=list, max_length=20)


class CaseFindings(_Body):
    """What the investigation found, for an unsubstantiated complaint."""

    findings: str = Field(min_length=1, max_length=4000)


class CaseMediate(_Body):
    """The mediation agreement reached (its gist)."""

    agreement: str = Field(min_length=1, max_length=4000)


class CaseClose(_Body):
    """Closing: a reason is required when no finding was made (terminating)."""

    reason: str = Field(default="", max_length=2000)


class CaseOperatorNotified(_Body):
    """How the operator was told that mediation was terminated (it has no app account to be told through)."""

    method: NoticeMethod
    note: str = Field(default="", max_length=2000, description="who was told, when, the letter's number…")


class CaseReopen(_Body):
    """Why the case is reopened."""

    reason: str = Field(min_length=1, max_length=2000)


class CaseDeadlineExtend(_Body):
    """Extend a running deadline by what its basis allows (the tip-off's, with the bureau head's approval)."""

    #: The deadline (``key`` of the case's deadlines); the only extendable one running when omitted.
    key: str | None = Field(default=None, max_length=40)
    reason: str = Field(min_length=1, max_length=2000, description="the approval: who approved, its number…")


class CaseDeadlinePause(_Body):
    """Leave testing, inspection, quarantine or appraisal time out of a running pausable deadline."""

    key: str | None = Field(default=None, max_length=40)
    first_day: IsoDay
    #: The last day not counted (inclusive); may be ahead when the testing is scheduled.
    last_day: IsoDay
    cause: PauseCause
    reason: str = Field(min_length=1, max_length=2000)


class CaseTransfer(_Body):
    """Where to transfer the case and why."""

    jurisdiction_code: str = Field(pattern=r"^\d{6}$")
    reason: str = Field(min_length=1, max_length=2000)


# ---- staff views ------------------------------------------------------------------------------------------


class DeadlinePauseRead(BaseModel):
    """A period a deadline does not count (first and last day inclusive) and why."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    first_day: date
    last_day: date
    cause: PauseCause


class DeadlineRead(BaseModel):
    """A statutory deadline in working days, with its legal basis and whether the calendar is exact."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    key: str
    start_date: date
    due_on: date
    due_before: UTCDatetime
    working_days: int
    #: False when a year of the period has no published holiday schedule yet (weekdays were assumed).
    calendar_exact: bool
    legal_basis: str
    #: The cited regulation was replaced before the period started: confirm the figure.
    basis_superseded: bool
    #: Where the figure comes from: ``statute`` (the regulation cited), ``deployment`` (this system's
    #: configuration) or ``bureau`` (a bureau's own rule, named in ``legal_basis``).
    basis_source: BasisSource
    #: Working days the bureau head may add once (0: not extendable), and whether they were added.
    extension_working_days: int
    extended: bool
    #: Whether testing or appraisal time is left out of this deadline, and the periods left out so far.
    pausable: bool
    pauses: list[DeadlinePauseRead]
    ended_at: UTCDatetime | None
    ended_by: str | None
    overdue_at: UTCDatetime | None


class CaseEventRead(BaseModel):
    """One step of the case as staff see it."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    at: UTCDatetime
    action: CaseAction
    from_state: CaseState | None
    to_state: CaseState
    from_jurisdiction: str | None
    to_jurisdiction: str | None
    reason: str
    details: dict[str, Any]
    actor_id: int | None
    actor_role: str


class CaseSummary(BaseModel):
    """A line of the staff work list (no filer identity, location or evidence)."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    id: int
    case_no: str
    kind: CaseKind
    state: CaseState
    category: ComplaintCategory
    complaint_id: int
    jurisdiction_code: str | None
    triage: bool
    operator_id: int | None
    operator_name: str | None
    received_at: UTCDatetime
    due_on: date | None
    overdue: bool
    escalated: bool
    escalated_to: str | None
    outcome: CaseOutcome | None
    low_confidence: bool | None
    location_mismatch: bool | None


class CaseRead(CaseSummary):
    """A case with its decisions, deadlines and routing; what every step answers."""

    bureau_name: str | None
    assignee_id: int | None
    accepted_at: UTCDatetime | None
    decided_at: UTCDatetime | None
    closed_at: UTCDatetime | None
    escalated_at: UTCDatetime | None
    rejection_reason: RejectionReason | None
    handled_by: HandledBy | None
    duplicate_of_id: int | None
    findings: str
    record_ids: list[int]
    routing: RoutingStaffRead
    deadlines: list[DeadlineRead]
    updated_at: UTCDatetime


class CaseDetail(CaseRead):
    """A case with the complaint's evidence and the filer's identity, and the full history; audited (Art. 20)."""

    complaint: ComplaintStaffRead
    history: list[CaseEventRead]


class TransferRead(BaseModel):
    """A transfer seen from either side: ``out`` of your jurisdiction, ``in`` to it, or ``within`` it."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    case_id: int
    case_no: str
    at: UTCDatetime
    direction: Literal["in", "out", "within"]
    from_jurisdiction: str | None
    to_jurisdiction: str | None
    reason: str
    actor_id: int | None


# ---- the operator -----------------------------------------------------------------------------------------


class OperatorFinding(BaseModel):
    """A complaint found true against your business and its records; never who filed, where exactly, or photos."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    case_no: str
    bureau_name: str | None
    decided_on: date
    complaint: ComplaintOperatorView
    record_ids: list[int]
    record_kinds: list[RecordKind]


# ---- deadline figures -------------------------------------------------------------------------------------


class DeadlineFigureRead(BaseModel):
    """A deadline as it applies in a jurisdiction: its figures, its basis and where the figure comes from."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    key: str
    working_days: int
    extension_working_days: int
    pausable: bool
    legal_basis: str
    basis_source: BasisSource
    #: The jurisdiction whose own rule applies (``bureau`` only).
    rule_jurisdiction: str | None
    #: The cited regulation has been replaced (Order No. 20 by Order No. 121 from 2026-04-15): confirm it.
    basis_superseded: bool


class DeadlineRuleWrite(_Body):
    """A bureau's own figure for one deadline, applying in its jurisdiction and below to deadlines opened
    from now on; ``legal_basis_*`` name the bureau's instrument that sets it."""

    working_days: int = Field(ge=1, le=365)
    extension_working_days: int = Field(default=0, ge=0, le=365)
    legal_basis_zh: str = Field(min_length=1, max_length=1000)
    legal_basis_en: str = Field(min_length=1, max_length=1000)


class DeadlineRuleRead(BaseModel):
    """A bureau's own deadline figure as stored."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    model_config = ConfigDict(from_attributes=True)
    jurisdiction_code: str
    key: str
    working_days: int
    extension_working_days: int
    legal_basis_zh: str
    legal_basis_en: str
    updated_by_id: int | None
    updated_at: UTCDatetime


# ---- arbitration verification (Art. 14(3)) ----------------------------------------------------------------


class ArbitrationOrder(_Body):
    """Order an arbitration verification of an instrument of the operator complained about."""

    instrument_id: int = Field(ge=1, le=2**63 - 1)
    #: The verification institution's account (role ``institution``) asked to verify it.
    institution_id: int = Field(ge=1, le=2**63 - 1)
    reason: str = Field(default="", max_length=2000)


class ArbitrationResultWrite(_Body):
    """The institution's result: pass or fail, the certificate and the day of verification."""

    passed: bool
    verified_on: IsoDay
    certificate_no: str = Field(min_length=1, max_length=64)
    notes: str = Field(default="", max_length=2000)


class ArbitrationRead(BaseModel):
    """An arbitration verification of a case as staff see it."""

    __audience__: ClassVar[Audience] = Audience.STAFF
    model_config = ConfigDict(from_attributes=True)
    id: int
    case_id: int
    instrument_id: int
    operator_id: int
    institution_id: int
    reason: str
    ordered_by_id: int | None
    ordered_at: UTCDatetime
    result: ArbitrationResult
    certificate_no: str | None
    verified_on: date | None
    result_notes: str
    result_by_id: int | None
    result_at: UTCDatetime | None


class InstitutionArbitrationRead(BaseModel):
    """An arbitration verification asked of your institution: the instrument, its operator and the operator's
    integrity class (Art. 15(2)); nothing about who complained (Art. 18)."""

    __audience__: ClassVar[Audience] = Audience.OPERATOR
    id: int
    instrument_id: int
    instrument_serial: str
    instrument_type_code: str
    operator_id: int
    operator_name: str
    operator_class: IntegrityClass
    reason: str
    ordered_at: UTCDatetime
    result: ArbitrationResult
    certificate_no: str | None
    verified_on: date | None
    result_notes: str
    result_at: UTCDatetime | None
