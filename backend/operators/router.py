"""Operator registry endpoints for staff (and an operator's own users where noted)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile, status

from backend.audit.reads import staff_read
from backend.auth import service as auth_service
from backend.auth.dependencies import CurrentUser, StaffScope
from backend.auth.models import Account, Role
from backend.auth.schemas import ActivationCodeRead
from backend.common.schemas import Page, PageLimit, PageOffset
from backend.db import SessionDep, read_only
from backend.errors import AppError, error_responses, forbidden, not_found
from backend.operators import importer, service
from backend.operators.commitments import COMMITMENT_TEXTS, CommitmentText
from backend.operators.dependencies import StaffOperator, StaffOrOwnOperator
from backend.operators.models import Sector, Stall
from backend.operators.schemas import (
    ImportReport,
    OperatorCreate,
    OperatorRead,
    OperatorUpdate,
    SelfCommitmentCreate,
    SelfCommitmentRead,
    StallCreate,
    StallRead,
    StallUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["operators"])

_ERRORS = error_responses(401, 403, 404)


@router.post(
    "/operators",
    response_model=OperatorRead,
    status_code=status.HTTP_201_CREATED,
    responses={**_ERRORS, **error_responses(409, 422)},
)
def create_operator(session: SessionDep, scope: StaffScope, body: OperatorCreate) -> OperatorRead:
    """Register an operator in a county of your jurisdiction."""
    return service.to_read(service.create(session, data=body, scope=scope))


@router.get("/operators", response_model=Page[OperatorRead], responses=_ERRORS)
def list_operators(
    request: Request,
    session: SessionDep,
    scope: StaffScope,
    q: Annotated[str | None, Query(max_length=100)] = None,
    sector: Sector | None = None,
    jurisdiction_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[OperatorRead]:
    """Operators in your jurisdiction, searchable by name or code; audited (phones, legal representatives)."""
    rows, total = service.list_in_scope(
        session, scope, q=q, sector=sector, jurisdiction_code=jurisdiction_code, limit=limit, offset=offset
    )
    staff_read(
        session,
        request,
        scope.user,
        action="operator.list",
        entity_type="operator",
        entity_id=jurisdiction_code or "*",
        after={
            "filters": {"q": q, "sector": sector, "jurisdiction_code": jurisdiction_code},
            "operator_ids": [r.id for r in rows],
        },
    )
    return Page(items=[service.to_read(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/operators/{operator_id}", response_model=OperatorRead, responses=_ERRORS)
def get_operator(
    request: Request, session: SessionDep, user: CurrentUser, operator: StaffOrOwnOperator
) -> OperatorRead:
    """One operator (staff in scope, or the operator's own users); a staff read is audited (Art. 20)."""
    staff_read(
        session, request, user, action="operator.read", entity_type="operator", entity_id=operator.id or 0
    )
    return service.to_read(operator)


@router.patch("/operators/{operator_id}", response_model=OperatorRead, responses=_ERRORS)
def update_operator(
    session: SessionDep, scope: StaffScope, operator: StaffOperator, body: OperatorUpdate
) -> OperatorRead:
    """Edit an operator, including its management assessment and demonstration-unit flag."""
    return service.to_read(service.update(session, operator=operator, data=body, scope=scope))


@router.post(
    "/operators/{operator_id}/stalls",
    response_model=StallRead,
    status_code=201,
    responses={**_ERRORS, **error_responses(409, 422)},
)
def create_stall(
    session: SessionDep, scope: StaffScope, operator: StaffOperator, body: StallCreate
) -> StallRead:
    """Add a stall to a market."""
    if operator.sector != Sector.market:
        raise AppError(422, "not_a_market", "只有集贸市场可以登记摊位", "only markets have stalls")
    return StallRead.model_validate(service.add_stall(session, market=operator, data=body, actor=scope.user))


@router.get("/operators/{operator_id}/stalls", response_model=list[StallRead], responses=_ERRORS)
def list_stalls(
    request: Request, session: SessionDep, user: CurrentUser, operator: StaffOrOwnOperator
) -> list[StallRead]:
    """The stalls of a market, with their holders; a staff read is audited (Art. 20)."""
    from sqlmodel import col, select

    rows = list(
        session.execute(
            select(Stall).where(col(Stall.market_id) == operator.id).order_by(col(Stall.number))
        ).scalars()
    )
    staff_read(
        session,
        request,
        user,
        action="stall.list",
        entity_type="operator",
        entity_id=operator.id or 0,
        after={"stall_ids": [s.id for s in rows]},
    )
    return [StallRead.model_validate(s) for s in rows]


@router.patch("/stalls/{stall_id}", response_model=StallRead, responses=_ERRORS)
def update_stall(session: SessionDep, scope: StaffScope, stall_id: int, body: StallUpdate) -> StallRead:
    """Edit a stall (a new holder, a closed stall)."""
    stall, _market = service.stall_in_scope(session, scope, stall_id)
    return StallRead.model_validate(service.update_stall(session, stall=stall, data=body, actor=scope.user))


@router.post(
    "/operators/{operator_id}/activation-codes",
    response_model=ActivationCodeRead,
    status_code=201,
    responses=_ERRORS,
)
def issue_activation_code(
    session: SessionDep, scope: StaffScope, operator: StaffOperator
) -> ActivationCodeRead:
    """Issue a one-time code with which the operator's user creates an account."""
    # Only a signed-in staff member can hold a StaffScope here, never the system actor.
    assert isinstance(scope.user, Account)
    code, row = auth_service.issue_activation_code(session, actor=scope.user, operator_id=operator.id or 0)
    return ActivationCodeRead(code=code, operator_id=row.operator_id, expires_at=row.expires_at)


@router.get("/self-commitment/texts", response_model=list[CommitmentText], tags=["self-commitment"])
def commitment_texts() -> list[CommitmentText]:
    """The versions of the self-commitment text an operator can sign."""
    return list(COMMITMENT_TEXTS.values())


@router.post(
    "/operators/{operator_id}/self-commitment",
    response_model=SelfCommitmentRead,
    status_code=201,
    tags=["self-commitment"],
    responses=_ERRORS,
)
def sign_commitment(
    session: SessionDep, user: CurrentUser, operator: StaffOrOwnOperator, body: SelfCommitmentCreate
) -> SelfCommitmentRead:
    """Sign the integrity self-commitment (the operator's own user, or staff recording a paper signature)."""
    if user.role not in (Role.operator, Role.staff, Role.admin):
        raise forbidden()
    commitment = service.sign_commitment(session, operator=operator, data=body, actor=user)
    return SelfCommitmentRead.model_validate(commitment)


@router.get(
    "/operators/{operator_id}/self-commitment",
    response_model=SelfCommitmentRead,
    tags=["self-commitment"],
    responses=_ERRORS,
)
@read_only
def get_commitment(session: SessionDep, operator: StaffOrOwnOperator) -> SelfCommitmentRead:
    """The self-commitment in force."""
    commitment = service.current_commitment(session, operator.id or 0)
    if commitment is None:
        raise not_found("自我承诺", "self-commitment")
    return SelfCommitmentRead.model_validate(commitment)


@router.post(
    "/operators/import", response_model=ImportReport, responses={**_ERRORS, **error_responses(413, 415, 422)}
)
def import_operators(
    session: SessionDep, scope: StaffScope, file: Annotated[UploadFile, File(description="UTF-8 CSV")]
) -> ImportReport:
    """Import operators from a CSV file (idempotent on the code); rows that fail are reported, the rest kept."""
    data = file.file.read(importer.MAX_API_BYTES + 1)
    if len(data) > importer.MAX_API_BYTES:
        raise AppError(413, "payload_too_large", "文件过大，请使用命令行导入", "file too large; use the CLI")
    text = importer.decode_csv(data)
    return importer.import_operators(session, text.splitlines(keepends=True), scope=scope)
