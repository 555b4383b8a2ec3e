"""Instrument registry and verification records."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlmodel import col, select

from backend.auth.dependencies import CurrentUser, StaffScope
from backend.auth.models import Account, Role
from backend.auth.scope import Scope
from backend.config import get_settings
from backend.dates import bureau_date
from backend.db import SessionDep
from backend.errors import error_responses, not_found
from backend.i18n import Locale
from backend.instruments import service
from backend.instruments.catalogue import BY_CODE
from backend.instruments.models import Instrument, InstrumentType
from backend.instruments.schemas import (
    InstrumentCreate,
    InstrumentRead,
    InstrumentTypeRead,
    InstrumentUpdate,
    VerificationCreate,
    VerificationRead,
)
from backend.jurisdictions.models import Jurisdiction
from backend.operators import service as operator_service
from backend.operators.dependencies import StaffOperator, StaffOrOwnOperator
from backend.operators.models import Operator

router = APIRouter(prefix="/api/v1", tags=["instruments"])
_ERRORS = error_responses(401, 403, 404)


def to_read(instrument: Instrument, today: date | None = None, locale: Locale = "zh-CN") -> InstrumentRead:
    """An instrument with its derived state."""
    spec = BY_CODE.get(instrument.type_code)
    type_name = (spec.name_zh if locale == "zh-CN" else spec.name_en) if spec else instrument.type_code
    state = service.state_of(instrument, today or bureau_date(), get_settings().verification_due_days)
    return InstrumentRead(
        **instrument.model_dump(exclude={"created_at"}), type_name=type_name, verification_state=state
    )


def _scope_for(session: SessionDep, user: Account) -> Scope | None:
    if user.role == Role.admin:
        return Scope(user, "/")
    if user.role in (Role.staff, Role.auditor, Role.institution) and user.jurisdiction_code:
        jurisdiction = session.get(Jurisdiction, user.jurisdiction_code)
        return Scope(user, jurisdiction.path) if jurisdiction else None
    if user.role == Role.institution:
        # A national or provincial institution without a bound division verifies anywhere (Art. 15).
        return Scope(user, "/")
    return None


def _instrument(session: SessionDep, user: CurrentUser, instrument_id: int) -> tuple[Instrument, Operator]:
    instrument = session.get(Instrument, instrument_id)
    if instrument is None:
        raise not_found("计量器具", "instrument")
    if user.role == Role.operator:
        if user.operator_id != instrument.operator_id:
            raise not_found("计量器具", "instrument")
        operator = session.get(Operator, instrument.operator_id)
        assert operator is not None
        return instrument, operator
    scope = _scope_for(session, user)
    if scope is None:
        raise not_found("计量器具", "instrument")
    try:
        operator = operator_service.get_in_scope(session, scope, instrument.operator_id)
    except Exception:
        raise not_found("计量器具", "instrument") from None
    return instrument, operator


ScopedInstrument = Annotated[tuple[Instrument, Operator], Depends(_instrument)]


@router.get("/instrument-types", response_model=list[InstrumentTypeRead])
def list_types(session: SessionDep) -> list[InstrumentTypeRead]:
    """The instrument catalogue with mandatory-verification periods and regulations."""
    rows = session.execute(select(InstrumentType).order_by(col(InstrumentType.code))).scalars()
    return [InstrumentTypeRead.model_validate(r) for r in rows]


@router.post(
    "/operators/{operator_id}/instruments", response_model=InstrumentRead, status_code=201, responses=_ERRORS
)
def create_instrument(
    session: SessionDep, scope: StaffScope, operator: StaffOperator, body: InstrumentCreate
) -> InstrumentRead:
    """Register an instrument of an operator."""
    return to_read(service.create(session, operator=operator, data=body, actor=scope.user))


@router.get("/operators/{operator_id}/instruments", response_model=list[InstrumentRead], responses=_ERRORS)
def list_instruments(session: SessionDep, operator: StaffOrOwnOperator) -> list[InstrumentRead]:
    """An operator's instruments with their verification state."""
    rows = session.execute(
        select(Instrument).where(col(Instrument.operator_id) == operator.id).order_by(col(Instrument.id))
    ).scalars()
    today = bureau_date()
    return [to_read(r, today) for r in rows]


@router.get("/instruments/{instrument_id}", response_model=InstrumentRead, responses=_ERRORS)
def get_instrument(found: ScopedInstrument) -> InstrumentRead:
    """One instrument."""
    return to_read(found[0])


@router.patch("/instruments/{instrument_id}", response_model=InstrumentRead, responses=_ERRORS)
def update_instrument(
    session: SessionDep, scope: StaffScope, found: ScopedInstrument, body: InstrumentUpdate
) -> InstrumentRead:
    """Edit or retire an instrument."""
    instrument, operator = found
    return to_read(
        service.update(session, instrument=instrument, operator=operator, data=body, actor=scope.user)
    )


@router.get(
    "/instruments/{instrument_id}/verifications", response_model=list[VerificationRead], responses=_ERRORS
)
def list_verifications(session: SessionDep, found: ScopedInstrument) -> list[VerificationRead]:
    """The verification history of an instrument, newest first."""
    return [VerificationRead.model_validate(r) for r in service.history(session, found[0].id or 0)]


@router.post(
    "/instruments/{instrument_id}/verifications",
    response_model=VerificationRead,
    status_code=201,
    responses=_ERRORS,
)
def add_verification(
    session: SessionDep, user: CurrentUser, found: ScopedInstrument, body: VerificationCreate
) -> VerificationRead:
    """Record a verification result (staff in scope or a verification institution)."""
    if user.role not in (Role.staff, Role.admin, Role.institution):
        raise not_found("计量器具", "instrument")
    record = service.record_verification(session, instrument=found[0], data=body, actor=user)
    return VerificationRead.model_validate(record)
