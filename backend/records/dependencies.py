"""Loader dependencies: fetch a record or correction request or 404, checking scope in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from backend.auth.dependencies import CurrentUser, StaffScope
from backend.auth.models import Account, Role
from backend.db import SessionDep
from backend.errors import forbidden
from backend.records import corrections, service
from backend.records.models import CorrectionRequest, IntegrityRecord


def _staff_record(session: SessionDep, scope: StaffScope, record_id: int) -> IntegrityRecord:
    return service.get_in_scope(session, scope, record_id)


def _operator_user(user: CurrentUser) -> Account:
    # An operator's own account reads only its operator's data; every other role has its own routes.
    if user.role != Role.operator or user.operator_id is None:
        raise forbidden("仅限经营者账号", "operator accounts only")
    return user


OperatorUser = Annotated[Account, Depends(_operator_user)]


def _own_record(session: SessionDep, user: OperatorUser, record_id: int) -> IntegrityRecord:
    return service.get_for_operator(session, user.operator_id or 0, record_id)


def _staff_correction(session: SessionDep, scope: StaffScope, correction_id: int) -> CorrectionRequest:
    return corrections.get_in_scope(session, scope, correction_id)


StaffRecord = Annotated[IntegrityRecord, Depends(_staff_record)]
OwnRecord = Annotated[IntegrityRecord, Depends(_own_record)]
StaffCorrection = Annotated[CorrectionRequest, Depends(_staff_correction)]
