"""Inspections (Art. 14), key supervision and inspection plans (Art. 11-12), interviews and notices (Art. 12)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from backend.audit.reads import staff_read
from backend.auth.dependencies import StaffScope
from backend.common.schemas import Page, PageLimit, PageOffset
from backend.db import SessionDep
from backend.errors import error_responses
from backend.i18n import request_locale
from backend.records.dependencies import OperatorUser
from backend.records.plan import to_csv
from backend.supervision import service
from backend.supervision.dependencies import StaffInterview, StaffPlan
from backend.supervision.models import InspectionPlan, InterviewStatus
from backend.supervision.schemas import (
    InspectionCreate,
    InspectionRead,
    InterviewCancel,
    InterviewCreate,
    InterviewOutcome,
    InterviewRead,
    KeySupervisionItem,
    NoticeCreate,
    NoticeRead,
    PeriodKey,
    PlanCreate,
    PlanEntryRead,
    PlanRead,
    PlanSummary,
)

router = APIRouter(prefix="/api/v1", tags=["supervision"])

_ERRORS = error_responses(401, 403, 404)
_CHANGE_ERRORS = {**_ERRORS, **error_responses(409, 422)}
JurisdictionFilter = Annotated[str | None, Query(pattern=r"^\d{6}$")]


@router.post(
    "/inspections",
    response_model=InspectionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["inspections"],
    responses=_CHANGE_ERRORS,
)
def create_inspection(session: SessionDep, scope: StaffScope, body: InspectionCreate) -> InspectionRead:
    """Record a supervision inspection; failed items become verified records at once."""
    return InspectionRead.model_validate(service.create_inspection(session, scope=scope, data=body))


@router.get("/inspections", response_model=Page[InspectionRead], tags=["inspections"], responses=_ERRORS)
def list_inspections(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    operator_id: int | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[InspectionRead]:
    """Inspections of operators in your jurisdiction, newest first."""
    rows, total = service.list_inspections(
        session, scope, operator_id=operator_id, limit=limit, offset=offset
    )
    staff_read(
        session,
        request,
        scope.user,
        action="inspection.list",
        entity_type="inspection",
        entity_id=str(operator_id) if operator_id is not None else "*",
        after={"filters": {"operator_id": operator_id}, "inspection_ids": [r.id for r in rows]},
    )
    return Page(
        items=[InspectionRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/key-supervision",
    response_model=Page[KeySupervisionItem],
    tags=["key supervision"],
    responses={**_ERRORS, **error_responses(422)},
)
def key_supervision(
    session: SessionDep,
    scope: StaffScope,
    jurisdiction_code: JurisdictionFilter = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[KeySupervisionItem]:
    """Untrustworthy operators under key supervision (Art. 12(1)) in your jurisdiction or one below it."""
    rows, total = service.key_supervision(
        session, scope, jurisdiction_code=jurisdiction_code, limit=limit, offset=offset
    )
    items = [
        KeySupervisionItem(
            operator_id=o.id or 0,
            name=o.name,
            uscc=o.uscc,
            sector=o.sector,
            jurisdiction_code=o.jurisdiction_code,
            as_of=r.as_of,
            rules=[reason["rule"] for reason in r.reasons],
        )
        for o, r in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)


def _plan_read(session: SessionDep, plan: InspectionPlan) -> PlanRead:
    entries = [
        PlanEntryRead(
            id=e.id or 0,
            operator_id=e.operator_id,
            operator_name=name,
            uscc=uscc,
            jurisdiction_code=e.jurisdiction_code,
            cls=e.cls,
            stratum_size=e.stratum_size,
            stratum_quota=e.stratum_quota,
            draw_ticket=e.draw_ticket,
        )
        for e, name, uscc in service.plan_entries(session, plan.id or 0)
    ]
    return PlanRead(**plan.model_dump(), entries=entries)


@router.post(
    "/inspection-plans",
    response_model=PlanRead,
    status_code=status.HTTP_201_CREATED,
    tags=["inspection plans"],
    responses=_CHANGE_ERRORS,
)
def create_plan(session: SessionDep, scope: StaffScope, body: PlanCreate) -> PlanRead:
    """Draw a period's risk-tiered inspection plan (seeded and reproducible; nobody drawn twice a period)."""
    return _plan_read(session, service.create_plan(session, scope=scope, data=body))


@router.get(
    "/inspection-plans", response_model=Page[PlanSummary], tags=["inspection plans"], responses=_ERRORS
)
def list_plans(
    session: SessionDep,
    scope: StaffScope,
    period_key: Annotated[PeriodKey | None, Query()] = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[PlanSummary]:
    """Plans for jurisdictions in your scope, newest first."""
    rows, total = service.list_plans(session, scope, period_key=period_key, limit=limit, offset=offset)
    items = [PlanSummary(**p.model_dump(), entry_count=n) for p, n in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


# Declared before /inspection-plans/{plan_id}, which would otherwise take "5.csv" as the id.
@router.get(
    "/inspection-plans/{plan_id}.csv",
    response_class=Response,
    tags=["inspection plans"],
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with BOM"}, **_ERRORS},
)
def plan_csv(request: Request, session: SessionDep, plan: StaffPlan) -> Response:
    """The plan as CSV for bureaus (headers in Chinese, or English with ?lang=en)."""
    entries = [e for e, _name, _uscc in service.plan_entries(session, plan.id or 0)]
    body = to_csv(service.plan_rows(entries), request_locale(request))
    filename = f"inspection-plan-{plan.id}-{plan.period_key}.csv"
    return Response(
        content=body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/inspection-plans/{plan_id}", response_model=PlanRead, tags=["inspection plans"], responses=_ERRORS
)
def get_plan(session: SessionDep, plan: StaffPlan) -> PlanRead:
    """One plan with its seed, rates and drawn operators."""
    return _plan_read(session, plan)


@router.post(
    "/interviews",
    response_model=InterviewRead,
    status_code=status.HTTP_201_CREATED,
    tags=["interviews"],
    responses=_CHANGE_ERRORS,
)
def schedule_interview(session: SessionDep, scope: StaffScope, body: InterviewCreate) -> InterviewRead:
    """Schedule a reminder (提醒) or an interview (约谈) of an operator in your jurisdiction (Art. 12(2))."""
    return InterviewRead.model_validate(service.schedule_interview(session, scope=scope, data=body))


@router.get("/interviews", response_model=Page[InterviewRead], tags=["interviews"], responses=_ERRORS)
def list_interviews(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    operator_id: int | None = None,
    status_: Annotated[InterviewStatus | None, Query(alias="status")] = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[InterviewRead]:
    """Reminders and interviews of operators in your jurisdiction."""
    rows, total = service.list_interviews(
        session, scope, operator_id=operator_id, status=status_, limit=limit, offset=offset
    )
    staff_read(
        session,
        request,
        scope.user,
        action="interview.list",
        entity_type="interview",
        entity_id=str(operator_id) if operator_id is not None else "*",
        after={
            "filters": {"operator_id": operator_id, "status": status_},
            "interview_ids": [r.id for r in rows],
        },
    )
    return Page(
        items=[InterviewRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/interviews/{interview_id}", response_model=InterviewRead, tags=["interviews"], responses=_ERRORS
)
def get_interview(
    request: Request, session: SessionDep, scope: StaffScope, interview: StaffInterview
) -> InterviewRead:
    """One reminder or interview; audited (Art. 20)."""
    staff_read(
        session,
        request,
        scope.user,
        action="interview.read",
        entity_type="interview",
        entity_id=interview.id or 0,
    )
    return InterviewRead.model_validate(interview)


@router.post(
    "/interviews/{interview_id}/acknowledge",
    response_model=InterviewRead,
    tags=["interviews"],
    responses=_CHANGE_ERRORS,
)
def acknowledge_interview(session: SessionDep, user: OperatorUser, interview_id: int) -> InterviewRead:
    """Confirm receipt of a reminder or summons (the operator's own user)."""
    interview = service.own_interview(session, user, interview_id)
    return InterviewRead.model_validate(service.acknowledge_interview(session, interview, user=user))


@router.post(
    "/interviews/{interview_id}/outcome",
    response_model=InterviewRead,
    tags=["interviews"],
    responses=_CHANGE_ERRORS,
)
def record_outcome(
    session: SessionDep, scope: StaffScope, interview: StaffInterview, body: InterviewOutcome
) -> InterviewRead:
    """Record what came of the interview; it is then held."""
    return InterviewRead.model_validate(
        service.record_outcome(session, interview, scope=scope, outcome=body.outcome)
    )


@router.post(
    "/interviews/{interview_id}/cancel",
    response_model=InterviewRead,
    tags=["interviews"],
    responses=_CHANGE_ERRORS,
)
def cancel_interview(
    session: SessionDep, scope: StaffScope, interview: StaffInterview, body: InterviewCancel
) -> InterviewRead:
    """Cancel an interview that has not been held, with the reason."""
    return InterviewRead.model_validate(
        service.cancel_interview(session, interview, scope=scope, reason=body.reason)
    )


@router.get("/me/interviews", response_model=list[InterviewRead], tags=["interviews"], responses=_ERRORS)
def my_interviews(session: SessionDep, user: OperatorUser) -> list[InterviewRead]:
    """Your operator's reminders and interviews, newest first."""
    return [InterviewRead.model_validate(i) for i in service.interviews_of(session, user.operator_id or 0)]


@router.post(
    "/department-notices",
    response_model=NoticeRead,
    status_code=status.HTTP_201_CREATED,
    tags=["department notices"],
    responses=_CHANGE_ERRORS,
)
def record_notice(session: SessionDep, scope: StaffScope, body: NoticeCreate) -> NoticeRead:
    """Record a notice sent to another department or the local government (Art. 12(3))."""
    return NoticeRead.model_validate(service.record_notice(session, scope=scope, data=body))


@router.get(
    "/department-notices", response_model=Page[NoticeRead], tags=["department notices"], responses=_ERRORS
)
def list_notices(
    session: SessionDep,
    scope: StaffScope,
    operator_id: int | None = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[NoticeRead]:
    """Notices about operators in your jurisdiction, newest first."""
    rows, total = service.list_notices(session, scope, operator_id=operator_id, limit=limit, offset=offset)
    return Page(items=[NoticeRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)
