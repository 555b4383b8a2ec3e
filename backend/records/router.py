"""Integrity records, ratings, corrections (Art. 22) and supervisor reports (Art. 17)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, status
from sqlmodel import Session

from backend import audit
from backend.auth.dependencies import CurrentUser, StaffScope
from backend.auth.models import Account, Role
from backend.common.schemas import Page, PageLimit, PageOffset
from backend.db import SessionDep
from backend.errors import AppError, error_responses, forbidden
from backend.operators import service as operator_service
from backend.operators.dependencies import StaffOperator, StaffOrOwnOperator, staff_or_own_operator
from backend.operators.models import Operator
from backend.records import corrections, patrol_reports, rating, service, supervisors
from backend.records.dependencies import OperatorUser, OwnRecord, StaffCorrection, StaffRecord
from backend.records.models import (
    CorrectionRequest,
    CorrectionStatus,
    IntegrityRecord,
    RatingTrigger,
    RecordSource,
)
from backend.records.rules import RecordKind, RecordState, rule_table
from backend.records.schemas import (
    CorrectionCreate,
    CorrectionDecide,
    CorrectionRead,
    InfoCorrectionCreate,
    OperatorCorrectionRead,
    OperatorRecordRead,
    RatingChangeRead,
    RatingRead,
    ReasonRead,
    RecordCorrect,
    RecordCreate,
    RecordDetail,
    RecordRead,
    RecordReason,
    RecordVerify,
    RuleRowRead,
    SupervisorReportCreate,
    SupervisorReportRead,
    kind_labels,
)

router = APIRouter(prefix="/api/v1", tags=["records"])

_ERRORS = error_responses(401, 403, 404)
_CHANGE_ERRORS = {**_ERRORS, **error_responses(409, 422)}


def to_read(record: IntegrityRecord) -> RecordRead:
    """The staff view of a record."""
    return RecordRead(**record.model_dump(), **kind_labels(record.kind))


def to_operator_read(record: IntegrityRecord) -> OperatorRecordRead:
    """The operator's view of its own record."""
    return OperatorRecordRead(**record.model_dump(), **kind_labels(record.kind))


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


@router.post(
    "/records", response_model=RecordRead, status_code=status.HTTP_201_CREATED, responses=_CHANGE_ERRORS
)
def create_record(session: SessionDep, scope: StaffScope, body: RecordCreate) -> RecordRead:
    """Enter a record about an operator in your jurisdiction (reported, or verified when already established)."""
    operator = operator_service.get_in_scope(session, scope, body.operator_id)
    record = service.create(
        session,
        operator=operator,
        kind=body.kind,
        fact_date=body.fact_date,
        source=RecordSource.staff,
        source_ref=body.source_ref,
        state=RecordState.VERIFIED if body.verified else RecordState.REPORTED,
        summary=body.summary,
        evidence_refs=body.evidence_refs,
        instrument_id=body.instrument_id,
        instrument_still_in_use=body.instrument_still_in_use,
        social_impact=body.social_impact,
        actor=scope.user,
        reason="工作人员登记 / entered by staff",
    )
    return to_read(record)


@router.get("/records", response_model=Page[RecordRead], responses=_ERRORS)
def list_records(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    operator_id: int | None = None,
    state: RecordState | None = None,
    kind: RecordKind | None = None,
    source: RecordSource | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[RecordRead]:
    """Records of operators in your jurisdiction; audited, as records are not public (Art. 20)."""
    flt = service.RecordFilter(operator_id=operator_id, state=state, kind=kind, source=source)
    rows, total = service.list_in_scope(session, scope, flt, limit=limit, offset=offset)
    audit.service.record_read(
        session,
        actor=scope.user,
        action="record.list",
        entity_type="integrity_record",
        entity_id=str(operator_id) if operator_id is not None else "*",
        after={
            "filters": {"operator_id": operator_id, "state": state, "kind": kind, "source": source},
            "record_ids": [r.id for r in rows],
        },
        request_id=_request_id(request),
    )
    return Page(items=[to_read(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/records/{record_id}", response_model=RecordDetail, responses=_ERRORS)
def get_record(request: Request, session: SessionDep, scope: StaffScope, record: StaffRecord) -> RecordDetail:
    """One record with every version; audited (Art. 20)."""
    audit.service.record_read(
        session,
        actor=scope.user,
        action="record.read",
        entity_type="integrity_record",
        entity_id=record.id or 0,
        request_id=_request_id(request),
    )
    versions = service.versions(session, record.id or 0)
    return RecordDetail(
        **to_read(record).model_dump(),
        versions=[v.model_dump() for v in versions],
    )


@router.post("/records/{record_id}/verify", response_model=RecordRead, responses=_CHANGE_ERRORS)
def verify_record(
    session: SessionDep, scope: StaffScope, record: StaffRecord, body: RecordVerify
) -> RecordRead:
    """Confirm a reported record after investigation; it now counts toward the class (Art. 13)."""
    return to_read(
        service.verify(
            session,
            record,
            actor=scope.user,
            reason=body.reason,
            instrument_still_in_use=body.instrument_still_in_use,
            social_impact=body.social_impact,
        )
    )


@router.post("/records/{record_id}/dismiss", response_model=RecordRead, responses=_CHANGE_ERRORS)
def dismiss_record(
    session: SessionDep, scope: StaffScope, record: StaffRecord, body: RecordReason
) -> RecordRead:
    """Find a reported record unfounded."""
    return to_read(service.dismiss(session, record, actor=scope.user, reason=body.reason))


@router.post("/records/{record_id}/revoke", response_model=RecordRead, responses=_CHANGE_ERRORS)
def revoke_record(
    session: SessionDep, scope: StaffScope, record: StaffRecord, body: RecordReason
) -> RecordRead:
    """Revoke a record (Art. 22); it is kept with its history and never counts again."""
    return to_read(service.revoke(session, record, actor=scope.user, reason=body.reason))


@router.post("/records/{record_id}/correct", response_model=RecordRead, responses=_CHANGE_ERRORS)
def correct_record(
    session: SessionDep, scope: StaffScope, record: StaffRecord, body: RecordCorrect
) -> RecordRead:
    """Correct a record's fields (Art. 22); the previous version is kept."""
    return to_read(
        service.correct(session, record, actor=scope.user, reason=body.reason, changes=body.given())
    )


@router.get("/me/records", response_model=Page[OperatorRecordRead], responses=_ERRORS)
def my_records(
    session: SessionDep,
    user: OperatorUser,
    state: RecordState | None = None,
    kind: RecordKind | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[OperatorRecordRead]:
    """Your operator's integrity records."""
    rows, total = service.list_for_operator(
        session,
        user.operator_id or 0,
        service.RecordFilter(state=state, kind=kind),
        limit=limit,
        offset=offset,
    )
    return Page(items=[to_operator_read(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/me/records/{record_id}", response_model=OperatorRecordRead, responses=_ERRORS)
def my_record(record: OwnRecord) -> OperatorRecordRead:
    """One of your operator's records."""
    return to_operator_read(record)


# --- corrections (Art. 22) ----------------------------------------------------------------------------------


def _correction_read(row: CorrectionRequest) -> CorrectionRead:
    return CorrectionRead(**row.model_dump(), overdue=corrections.is_overdue(row))


@router.post(
    "/records/{record_id}/corrections",
    response_model=OperatorCorrectionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["corrections"],
    responses=_CHANGE_ERRORS,
)
def request_correction(
    session: SessionDep, user: OperatorUser, record: OwnRecord, body: CorrectionCreate
) -> OperatorCorrectionRead:
    """Ask the bureau to correct or revoke one of your records; it decides within the deadline shown."""
    row = corrections.request(session, record=record, data=body, actor=user)
    return OperatorCorrectionRead.model_validate(row)


@router.post(
    "/me/corrections",
    response_model=OperatorCorrectionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["corrections"],
    responses=_CHANGE_ERRORS,
)
def request_info_correction(
    session: SessionDep, user: OperatorUser, body: InfoCorrectionCreate
) -> OperatorCorrectionRead:
    """Ask the bureau to correct your basic information (name, address, legal representative, phone, sector)
    or one of your instruments' data (Art. 22); it decides within the deadline shown."""
    operator = session.get(Operator, user.operator_id)
    assert operator is not None
    row = corrections.request_info(session, operator=operator, data=body, actor=user)
    return OperatorCorrectionRead.model_validate(row)


@router.get(
    "/me/corrections", response_model=list[OperatorCorrectionRead], tags=["corrections"], responses=_ERRORS
)
def my_corrections(session: SessionDep, user: OperatorUser) -> list[OperatorCorrectionRead]:
    """Your correction requests and their decisions."""
    return [
        OperatorCorrectionRead.model_validate(r)
        for r in corrections.list_for_operator(session, user.operator_id or 0)
    ]


@router.get("/corrections", response_model=Page[CorrectionRead], tags=["corrections"], responses=_ERRORS)
def list_corrections(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    status_: Annotated[CorrectionStatus | None, Query(alias="status")] = None,
    overdue: bool | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[CorrectionRead]:
    """Correction requests about operators in your jurisdiction, the earliest due first."""
    rows, total = corrections.list_in_scope(
        session, scope, status=status_, overdue=overdue, limit=limit, offset=offset
    )
    audit.service.record_read(
        session,
        actor=scope.user,
        action="correction.list",
        entity_type="correction_request",
        entity_id="*",
        after={"filters": {"status": status_, "overdue": overdue}, "correction_ids": [r.id for r in rows]},
        request_id=_request_id(request),
    )
    return Page(items=[_correction_read(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get(
    "/corrections/{correction_id}", response_model=CorrectionRead, tags=["corrections"], responses=_ERRORS
)
def get_correction(
    request: Request, session: SessionDep, scope: StaffScope, row: StaffCorrection
) -> CorrectionRead:
    """One correction request; audited (Art. 20)."""
    audit.service.record_read(
        session,
        actor=scope.user,
        action="correction.read",
        entity_type="correction_request",
        entity_id=row.id or 0,
        request_id=_request_id(request),
    )
    return _correction_read(row)


@router.post(
    "/corrections/{correction_id}/decide",
    response_model=CorrectionRead,
    tags=["corrections"],
    responses=_CHANGE_ERRORS,
)
def decide_correction(
    session: SessionDep, scope: StaffScope, row: StaffCorrection, body: CorrectionDecide
) -> CorrectionRead:
    """Correct or revoke the record (correct the basic information or instrument data), or reject the
    request, with reasons; the operator is told."""
    return _correction_read(corrections.decide(session, row=row, data=body, actor=scope.user))


# --- ratings (Art. 10, 13) ----------------------------------------------------------------------------------


def _rating_read(current: rating.CurrentRating) -> RatingRead:
    return RatingRead(
        operator_id=current.operator_id,
        cls=current.cls,
        class_zh=current.cls.label_zh,
        class_en=current.cls.label_en,
        as_of=current.as_of,
        rules_version=current.rules_version,
        reasons=[ReasonRead(**r) for r in current.reasons],
        stored=current.stored,
    )


def _audit_staff_read(session: Session, user: Account, request: Request, operator_id: int) -> None:
    if user.role in (Role.staff, Role.auditor, Role.admin):
        audit.service.record_read(
            session,
            actor=user,
            action="rating.read",
            entity_type="operator",
            entity_id=operator_id,
            request_id=_request_id(request),
        )


def _rating_operator(session: SessionDep, user: CurrentUser, operator_id: int) -> Operator:
    """Staff in scope or the operator itself; anyone else is pointed at the public profile, which shows the
    class to everybody, instead of being told the operator does not exist (only when it has a profile)."""
    try:
        return staff_or_own_operator(session, user, operator_id)
    except AppError as exc:
        if exc.status != 404 or user.role in (Role.operator, Role.staff, Role.auditor, Role.admin):
            raise
        operator = session.get(Operator, operator_id)
        if operator is None or not operator.is_active:
            raise
        raise AppError(
            403,
            "rating_public_profile_only",
            "经营者的诚信等级及其依据仅对监管人员和经营者本人开放；公众可查看其公开信息页",
            "an operator's rating and its reasons are for staff and the operator; see its public profile",
            {"public_profile": f"/api/v1/public/operators/{operator_id}"},
        ) from None


@router.get(
    "/operators/{operator_id}/rating",
    response_model=RatingRead,
    tags=["ratings"],
    responses=_ERRORS,
)
def get_rating(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    operator: Annotated[Operator, Depends(_rating_operator)],
) -> RatingRead:
    """The operator's integrity class with its reasons (staff in scope, or the operator itself; anyone else
    gets 403 with the operator's public profile in ``details.public_profile``)."""
    _audit_staff_read(session, user, request, operator.id or 0)
    return _rating_read(rating.current(session, operator))


@router.get(
    "/operators/{operator_id}/rating/history",
    response_model=list[RatingChangeRead],
    tags=["ratings"],
    responses=_ERRORS,
)
def get_rating_history(
    session: SessionDep, operator: StaffOrOwnOperator, limit: PageLimit = 50, offset: PageOffset = 0
) -> list[RatingChangeRead]:
    """The operator's class changes, newest first."""
    rows = rating.history(session, operator.id or 0, limit=limit, offset=offset)
    return [RatingChangeRead.model_validate(r) for r in rows]


@router.post(
    "/operators/{operator_id}/rating/refresh",
    response_model=RatingRead,
    tags=["ratings"],
    responses=_ERRORS,
)
def refresh_rating(session: SessionDep, scope: StaffScope, operator: StaffOperator) -> RatingRead:
    """Re-rate now (e.g. after changing the management assessment, which the nightly run picks up otherwise)."""
    rating.rerate_operator(session, operator.id or 0, trigger=RatingTrigger.manual, actor=scope.user)
    return _rating_read(rating.current(session, operator))


@router.get("/rating-rules", response_model=list[RuleRowRead], tags=["ratings"])
def rating_rules() -> list[RuleRowRead]:
    """The classification rules as data: every condition, threshold, window and why it was chosen."""
    return [RuleRowRead(**row) for row in rule_table()]


# --- supervisors (Art. 17) ----------------------------------------------------------------------------------


def _report_read(record: IntegrityRecord, operator_name: str, reason: str | None) -> SupervisorReportRead:
    data: dict[str, Any] = record.model_dump(
        include={"id", "operator_id", "kind", "fact_date", "summary", "state", "created_at", "updated_at"}
    )
    labels = kind_labels(record.kind)
    return SupervisorReportRead(
        **data,
        operator_name=operator_name,
        kind_label_zh=labels["kind_label_zh"],
        kind_label_en=labels["kind_label_en"],
        decision_reason=reason,
    )


@router.post(
    "/supervisor-reports",
    response_model=SupervisorReportRead,
    status_code=status.HTTP_201_CREATED,
    tags=["supervisors"],
    responses=_CHANGE_ERRORS,
)
def create_supervisor_report(
    session: SessionDep,
    user: CurrentUser,
    body: SupervisorReportCreate,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> SupervisorReportRead:
    """Report a finding from patrol in your jurisdiction; staff verify or dismiss it."""
    record = supervisors.report(session, supervisor=user, data=body, idempotency_key=idempotency_key)
    operator = session.get(Operator, record.operator_id)
    return _report_read(record, operator.name if operator else "", None)


@router.get(
    "/me/supervisor-reports",
    response_model=Page[SupervisorReportRead],
    tags=["supervisors"],
    responses=_ERRORS,
)
def my_supervisor_reports(
    session: SessionDep, user: CurrentUser, limit: PageLimit = 50, offset: PageOffset = 0
) -> Page[SupervisorReportRead]:
    """Your reports and what staff decided about each."""
    if user.role != Role.supervisor:
        raise forbidden("仅限计量诚信监督员", "integrity supervisors only")
    # One list, newest first, of the reports filed here and those filed with photos through /complaints.
    window = limit + offset
    rows, total = supervisors.mine(session, user, limit=window, offset=0)
    reasons = service.last_decision_reasons(session, [r.id or 0 for r, _ in rows])
    items = [_report_read(r, name, reasons.get(r.id or 0)) for r, name in rows]
    items += patrol_reports.newest(session, user, limit=window)
    items.sort(key=lambda item: (_aware(item.created_at), item.source, item.id), reverse=True)
    return Page(
        items=items[offset:window],
        total=total + patrol_reports.count(session, user),
        limit=limit,
        offset=offset,
    )


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
