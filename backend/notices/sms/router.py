"""SMS contact numbers (the operator's own, and staff with consent recorded), reach of required notices, and
the monthly SMS report per bureau."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlmodel import Session

from backend.audit.reads import staff_read
from backend.audit.service import Actor
from backend.auth.dependencies import CurrentUser, StaffScope
from backend.auth.models import Role
from backend.db import SessionDep
from backend.errors import AppError, error_responses, forbidden, not_found
from backend.notices.sms import contacts, reach
from backend.notices.sms.models import ConsentSource
from backend.notices.sms.schemas import (
    NoticeReachPage,
    NoticeReachRead,
    SmsContactRead,
    SmsContactUpdate,
    SmsReportRead,
    StaffSmsContactUpdate,
)
from backend.operators.dependencies import StaffOperator

router = APIRouter(prefix="/api/v1")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _own_operator(user: CurrentUser) -> int:
    if user.role != Role.operator or user.operator_id is None:
        raise forbidden("仅限经营者账号", "operators only")
    return user.operator_id


@router.get(
    "/me/sms-contact", response_model=SmsContactRead, tags=["me"], responses=error_responses(401, 403, 404)
)
def me_sms_contact_get(session: SessionDep, user: CurrentUser) -> SmsContactRead:
    """Your operator's contact number for SMS notices."""
    row = contacts.get(session, _own_operator(user))
    if row is None:
        raise not_found("短信联系号码", "SMS contact number")
    return SmsContactRead.model_validate(row)


@router.put(
    "/me/sms-contact", response_model=SmsContactRead, tags=["me"], responses=error_responses(401, 403, 422)
)
def me_sms_contact_set(
    request: Request, session: SessionDep, user: CurrentUser, body: SmsContactUpdate
) -> SmsContactRead:
    """Give (or change) the mobile number legally required notices go to by SMS, with your consent."""
    row = contacts.set_contact(
        session,
        operator_id=_own_operator(user),
        phone=body.phone,
        consent=body.consent,
        source=ConsentSource.operator,
        actor=user,
        request_id=_request_id(request),
    )
    return SmsContactRead.model_validate(row)


@router.delete(
    "/me/sms-contact",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["me"],
    responses=error_responses(401, 403),
)
def me_sms_contact_withdraw(request: Request, session: SessionDep, user: CurrentUser) -> None:
    """Withdraw consent: the number is deleted and no SMS goes to it any more."""
    contacts.withdraw(session, operator_id=_own_operator(user), actor=user, request_id=_request_id(request))


@router.get(
    "/operators/{operator_id}/sms-contact",
    response_model=SmsContactRead,
    tags=["staff"],
    responses=error_responses(401, 403, 404),
)
def operators_sms_contact_get(
    request: Request, session: SessionDep, scope: StaffScope, operator: StaffOperator
) -> SmsContactRead:
    """The operator's contact number, to phone when a notice did not reach it (an audited read)."""
    row = contacts.get(session, operator.id or 0)
    if row is None:
        raise not_found("短信联系号码", "SMS contact number")
    staff_read(
        session,
        request,
        scope.user,
        action="sms_contact.read",
        entity_type="operator",
        entity_id=row.operator_id,
    )
    return SmsContactRead.model_validate(row)


@router.put(
    "/operators/{operator_id}/sms-contact",
    response_model=SmsContactRead,
    tags=["staff"],
    responses=error_responses(401, 403, 404, 422),
)
def operators_sms_contact_set(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    operator: StaffOperator,
    body: StaffSmsContactUpdate,
) -> SmsContactRead:
    """Record the operator's contact number with the contact person's consent and how it was given."""
    row = contacts.set_contact(
        session,
        operator_id=operator.id or 0,
        phone=body.phone,
        consent=body.consent,
        source=ConsentSource.staff,
        actor=scope.user,
        note=body.consent_note,
        request_id=_request_id(request),
    )
    return SmsContactRead.model_validate(row)


@router.delete(
    "/operators/{operator_id}/sms-contact",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["staff"],
    responses=error_responses(401, 403, 404),
)
def operators_sms_contact_withdraw(
    request: Request, session: SessionDep, scope: StaffScope, operator: StaffOperator
) -> None:
    """Delete the operator's contact number (consent withdrawn to the bureau)."""
    contacts.withdraw(
        session, operator_id=operator.id or 0, actor=scope.user, request_id=_request_id(request)
    )


@router.get(
    "/notice-reach", response_model=NoticeReachPage, tags=["staff"], responses=error_responses(401, 403, 422)
)
def notice_reach_list(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    operator_id: Annotated[int | None, Query(ge=1)] = None,
    follow_up: Annotated[bool, Query(description="only notices staff must phone or write about")] = False,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> NoticeReachPage:
    """Required notices to operators in your jurisdiction: push, inbox read, SMS, and whether to follow up."""
    items, cursor = reach.reach_page(
        session, scope, operator_id=operator_id, follow_up_only=follow_up, before_id=before_id, limit=limit
    )
    audit_reach(request, session, scope.user, items, operator_id=operator_id, follow_up=follow_up)
    return NoticeReachPage(items=[NoticeReachRead.model_validate(i) for i in items], next_before_id=cursor)


def audit_reach(
    request: Request,
    session: Session,
    reader: Actor,
    items: list[reach.Reach],
    *,
    operator_id: int | None,
    follow_up: bool,
) -> None:
    """Reach shows when an operator read what and its masked number: a staff read, logged like the others."""
    staff_read(
        session,
        request,
        reader,
        action="notice_reach.list",
        entity_type="operator",
        entity_id=operator_id if operator_id is not None else "*",
        after={
            "filters": {"operator_id": operator_id, "follow_up": follow_up},
            "notices": [[i.event_id, i.kind, i.operator_id] for i in items],
        },
    )


@router.get(
    "/sms-report",
    response_model=SmsReportRead,
    tags=["staff"],
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 403, 422)},
)
def sms_report_get(
    session: SessionDep,
    scope: StaffScope,
    month: Annotated[str, Query(description="YYYY-MM")],
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> SmsReportRead | Response:
    """SMS per bureau in one month (bureaus pay for them); ``format=csv`` for a spreadsheet (Chinese headers)."""
    if not _MONTH.match(month):
        raise AppError(422, "invalid_month", "月份格式应为 YYYY-MM", "month must be YYYY-MM")
    first = date(int(month[:4]), int(month[5:]), 1)
    rows = reach.monthly_report(session, scope, first)
    if format == "csv":
        return Response(
            reach.report_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="sms-{month}.csv"'},
        )
    return SmsReportRead(
        month=month,
        bureaus=rows,
        reasons=reach.counts_by_reason(session, scope, first),
    )
