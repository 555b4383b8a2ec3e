"""Loader dependencies: a record or correction request in the caller's scope, or 404 (``backend.common.scoped``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from backend.auth.dependencies import CurrentUser
from backend.auth.models import Account, Role
from backend.common.scoped import staff_loader
from backend.db import SessionDep
from backend.errors import forbidden
from backend.records import corrections, service
from backend.records.models import CorrectionRequest, IntegrityRecord


def _operator_user(user: CurrentUser) -> Account:
    # An operator's own account reads only its operator's data; every other role has its own routes.
    if user.role != Role.operator or user.operator_id is None:
        raise forbidden("仅限经营者账号", "operator accounts only")
    return user


OperatorUser = Annotated[Account, Depends(_operator_user)]


def _own_record(session: SessionDep, user: OperatorUser, record_id: int) -> IntegrityRecord:
    return service.get_for_operator(session, user.operator_id or 0, record_id)


StaffRecord = Annotated[
    IntegrityRecord,
    Depends(staff_loader(IntegrityRecord, service.RECORD, id_param="record_id", via="operator")),
]
OwnRecord = Annotated[IntegrityRecord, Depends(_own_record)]
StaffCorrection = Annotated[
    CorrectionRequest,
    Depends(
        staff_loader(CorrectionRequest, corrections.CORRECTION, id_param="correction_id", via="operator")
    ),
]
