"""Cases: the bureau's handling of one complaint or patrol report, its statutory deadlines and its history."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Date, DateTime, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from backend.db import enum_type, utcnow


class CaseKind(StrEnum):
    """Which procedure applies (SAMR Order No. 20 treats the two differently)."""

    complaint = "complaint"  # 投诉: a consumer's dispute with an operator; acceptance, mediation
    tip_off = "tip_off"  # 举报: a supervisor's patrol report of a suspected violation; verification, filing


class CaseState(StrEnum):
    """Where a case stands; the allowed moves are ``service.TRANSITIONS``."""

    routed = "routed"  # 已分派，待受理
    accepted = "accepted"  # 已受理
    not_accepted = "not_accepted"  # 不予受理
    investigating = "investigating"  # 调查中
    substantiated = "substantiated"  # 经查属实
    unsubstantiated = "unsubstantiated"  # 经查不属实
    mediated = "mediated"  # 调解达成协议
    closed = "closed"  # 已办结


class CaseOutcome(StrEnum):
    """The last decision told to the filer (the ``outcome`` of the ``case.outcome`` event)."""

    not_accepted = "not_accepted"
    substantiated = "substantiated"
    not_substantiated = "not_substantiated"
    mediated = "mediated"
    terminated = "terminated"  # closed without a finding (mediation failed, withdrawn…)


class RejectionReason(StrEnum):
    """Why a complaint is not accepted (Order No. 20, Art. 15), as a fixed list."""

    out_of_time = "out_of_time"  # 超过投诉时效
    contact_missing = "contact_missing"  # 未提供真实联系方式或必要信息
    handled_elsewhere = "handled_elsewhere"  # 法院、仲裁机构或消费者协会已受理或处理
    not_metrology = "not_metrology"  # 不属于计量监督管理事项
    duplicate = "duplicate"  # 重复投诉


class HandledBy(StrEnum):
    """Who already handles a complaint rejected as ``handled_elsewhere``."""

    court = "court"  # 人民法院
    arbitration = "arbitration"  # 仲裁机构
    consumer_association = "consumer_association"  # 消费者协会


class CaseAction(StrEnum):
    """Every step of a case's history."""

    routed = "routed"
    accepted = "accepted"
    rejected = "rejected"
    investigating = "investigating"
    substantiated = "substantiated"
    unsubstantiated = "unsubstantiated"
    mediated = "mediated"
    closed = "closed"
    reopened = "reopened"
    transferred = "transferred"
    escalated = "escalated"
    # Not a change of state: staff told an operator without the app that mediation was terminated.
    operator_notified = "operator_notified"
    # Not changes of state either: a deadline extended (approved by the bureau head) or paused for testing,
    # inspection, quarantine or appraisal time; an arbitration verification ordered, and its result.
    deadline_extended = "deadline_extended"
    deadline_paused = "deadline_paused"
    arbitration_ordered = "arbitration_ordered"
    arbitration_result = "arbitration_result"


class NoticeMethod(StrEnum):
    """How staff told a party of a decision outside the app."""

    phone = "phone"  # 电话
    sms = "sms"  # 短信
    letter = "letter"  # 书面（邮寄、送达）
    in_person = "in_person"  # 当面告知


class PauseCause(StrEnum):
    """Time a pausable deadline does not count (penalty procedure rules, Art. 18)."""

    testing = "testing"  # 检测
    inspection = "inspection"  # 检验
    quarantine = "quarantine"  # 检疫
    appraisal = "appraisal"  # 鉴定（含仲裁检定）


class Case(SQLModel, table=True):
    """One complaint's or patrol report's handling, 1:1 with the complaint; the filer's timeline mirrors it."""

    # "case" is a reserved word in SQL.
    __tablename__ = "case_file"
    __table_args__ = (
        # The staff work list at each level of scope: an equality on the scope's own level keeps "newest first"
        # and "by due date" index-ordered, so a page costs the same with 100 or 10 million cases in scope.
        *(
            Index(f"ix_case_file_{level}", f"{level}_code", "id")
            for level in ("province", "prefecture", "county")
        ),
        *(
            Index(f"ix_case_file_{level}_state", f"{level}_code", "state", "id")
            for level in ("province", "prefecture", "county")
        ),
        # The workbench's queue, soonest deadline first: dated cases walked in (due_on, id) order from the scope's
        # entry (alone or within a state), so the first page, a keyset page and "due within N days" read a few
        # dozen index entries instead of sorting the scope (repository.due_ordered_ids).
        *(
            Index(f"ix_case_file_{level}_due", f"{level}_code", "due_on", "id")
            for level in ("province", "prefecture", "county")
        ),
        *(
            Index(f"ix_case_file_{level}_state_due", f"{level}_code", "state", "due_on", "id")
            for level in ("province", "prefecture", "county")
        ),
        # Overdue cases are few: one partial index serves both orders (newest first straight from it, soonest
        # due by sorting the scope's overdue entries, which carry their due date on PostgreSQL). The entries
        # carry the state too, so the queue's per-state counts of these filters are index-only scans.
        *(
            Index(
                f"ix_case_file_{level}_overdue",
                f"{level}_code",
                "id",
                postgresql_where=text("overdue"),
                sqlite_where=text("overdue"),
                postgresql_include=["due_on", "state"],
            )
            for level in ("province", "prefecture", "county")
        ),
        *(
            Index(
                f"ix_case_file_{level}_escalated",
                f"{level}_code",
                "id",
                postgresql_where=text("escalated"),
                sqlite_where=text("escalated"),
                postgresql_include=["due_on", "state"],
            )
            for level in ("province", "prefecture", "county")
        ),
        Index("ix_case_file_operator", "operator_id", "outcome"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_no: str = Field(max_length=20, unique=True)
    complaint_id: int = Field(foreign_key="complaint.id", unique=True)
    kind: CaseKind = Field(sa_type=enum_type(CaseKind))
    state: CaseState = Field(default=CaseState.routed, sa_type=enum_type(CaseState))
    # None only while nobody can be named (no province either): the national triage queue, admins only.
    jurisdiction_code: str | None = Field(default=None, foreign_key="jurisdiction.code", max_length=6)
    # The jurisdiction's ancestors by level (and itself at its own level), copied from the division tree when
    # the case is placed: scope filters become equalities the indexes above can walk in order.
    province_code: str | None = Field(default=None, max_length=6)
    prefecture_code: str | None = Field(default=None, max_length=6)
    county_code: str | None = Field(default=None, max_length=6)
    # Routing could not name a county: the case waits in its province's (or the national) triage queue.
    triage: bool = False
    # The operator complained about: from the complaint, or identified by the investigation.
    operator_id: int | None = Field(default=None, foreign_key="operator.id")
    # The staff member who accepted the case and handles it.
    assignee_id: int | None = Field(default=None, foreign_key="account.id")
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    accepted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    outcome: CaseOutcome | None = Field(default=None, sa_type=enum_type(CaseOutcome))
    rejection_reason: RejectionReason | None = Field(default=None, sa_type=enum_type(RejectionReason))
    handled_by: HandledBy | None = Field(default=None, sa_type=enum_type(HandledBy))
    duplicate_of_id: int | None = Field(default=None, foreign_key="case_file.id")
    findings: str = Field(default="", sa_column=Column(Text, nullable=False))
    # The integrity records a substantiation created (Art. 8), for the operator's findings and a later revoke.
    record_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The earliest open statutory deadline (denormalised from case_deadline for listing and sorting).
    due_on: date | None = Field(default=None, sa_column=Column(Date))
    # An open deadline has passed (set by the sweep, cleared when the step is done or the case moves on).
    overdue: bool = False
    # The parent jurisdiction told about it (Art. 6: the level above sees what the county leaves undone).
    escalated: bool = False
    escalated_to: str | None = Field(default=None, foreign_key="jurisdiction.code", max_length=6)
    escalated_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # Bumped by every step: dedupe keys of the events a step emits include it.
    version: int = 1
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class CaseDeadline(SQLModel, table=True):
    """One statutory deadline of a case, computed in working days with its legal basis (Order No. 20)."""

    __tablename__ = "case_deadline"
    __table_args__ = (
        # The sweep's scan: open deadlines by due instant.
        Index(
            "ix_case_deadline_open",
            "due_before",
            postgresql_where=text("ended_at IS NULL AND overdue_at IS NULL"),
            sqlite_where=text("ended_at IS NULL AND overdue_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    key: str = Field(max_length=40)
    start_date: date = Field(sa_column=Column(Date, nullable=False))
    due_on: date = Field(sa_column=Column(Date, nullable=False))
    # 24:00 of the due date in the bureau's time zone: overdue from this instant on.
    due_before: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    working_days: int
    # False when the calendar for some year of the period is not published yet (weekdays assumed).
    calendar_exact: bool
    legal_basis_zh: str = Field(sa_column=Column(Text, nullable=False))
    legal_basis_en: str = Field(sa_column=Column(Text, nullable=False))
    basis_superseded: bool = False
    # Where the figure comes from (``figures.BasisSource``): the cited regulation, the deployment's settings
    # or the bureau's own rule.
    basis_source: str = Field(default="statute", max_length=16)
    # What the basis allows: working days a bureau head may add (0: none), and whether testing or appraisal
    # time is not counted; ``extended`` once added, ``pauses`` the periods not counted ([first, last] days).
    extension_working_days: int = 0
    extended: bool = False
    pausable: bool = False
    pauses: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # When the step it times was done (or the deadline stopped applying: a transfer), and by which action.
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    ended_by: str | None = Field(default=None, max_length=20)
    overdue_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class CaseEvent(SQLModel, table=True):
    """One step of a case as staff see it: who, from which state and jurisdiction to which, and why."""

    __tablename__ = "case_event"
    __table_args__ = (
        Index("ix_case_event_case", "case_id", "id"),
        # Transfers are listed for both the sending and the receiving scope.
        Index("ix_case_event_transfer_from", "from_jurisdiction", "action"),
        Index("ix_case_event_transfer_to", "to_jurisdiction", "action"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id")
    action: CaseAction = Field(sa_type=enum_type(CaseAction))
    from_state: CaseState | None = Field(default=None, sa_type=enum_type(CaseState))
    to_state: CaseState = Field(sa_type=enum_type(CaseState))
    from_jurisdiction: str | None = Field(default=None, max_length=6)
    to_jurisdiction: str | None = Field(default=None, max_length=6)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    actor_id: int | None = Field(default=None, foreign_key="account.id")
    actor_role: str = Field(default="system", max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class DeadlineRule(SQLModel, table=True):
    """A bureau's own figure for a deadline (its key in ``deadlines.DEADLINE_SPECS``), applying to cases and
    corrections in its jurisdiction and below (the nearest bureau's rule wins), opened after it was set."""

    __tablename__ = "deadline_rule"
    __table_args__ = (UniqueConstraint("jurisdiction_code", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    jurisdiction_code: str = Field(foreign_key="jurisdiction.code", max_length=6)
    key: str = Field(max_length=40)
    working_days: int
    extension_working_days: int = 0
    # The bureau's instrument that sets the figure (its title and number), which staff read as the basis.
    legal_basis_zh: str = Field(sa_column=Column(Text, nullable=False))
    legal_basis_en: str = Field(sa_column=Column(Text, nullable=False))
    updated_by_id: int | None = Field(default=None, foreign_key="account.id")
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ArbitrationResult(StrEnum):
    """Where an arbitration verification (仲裁检定, Art. 14(3)) stands."""

    pending = "pending"  # ordered, no result yet
    passed = "passed"  # 合格: the instrument measures within its limits
    failed = "failed"  # 不合格


class ArbitrationVerification(SQLModel, table=True):
    """An arbitration verification of an instrument ordered within a case, and the institution's result."""

    __tablename__ = "arbitration_verification"
    __table_args__ = (
        Index("ix_arbitration_case", "case_id", "id"),
        Index("ix_arbitration_institution", "institution_id", "result"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id")
    instrument_id: int = Field(foreign_key="instrument.id", index=True)
    operator_id: int = Field(foreign_key="operator.id")
    # The verification institution's account asked to verify (Art. 15).
    institution_id: int = Field(foreign_key="account.id")
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    ordered_by_id: int | None = Field(default=None, foreign_key="account.id")
    ordered_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    result: ArbitrationResult = Field(default=ArbitrationResult.pending, sa_type=enum_type(ArbitrationResult))
    certificate_no: str | None = Field(default=None, max_length=64)
    verified_on: date | None = Field(default=None, sa_column=Column(Date))
    result_notes: str = Field(default="", sa_column=Column(Text, nullable=False))
    result_by_id: int | None = Field(default=None, foreign_key="account.id")
    result_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
