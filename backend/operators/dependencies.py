"""Loader dependencies: fetch an operator or 404, checking scope in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from backend.auth.dependencies import CurrentUser, StaffScope
from backend.auth.models import Role
from backend.db import SessionDep
from backend.errors import not_found
from backend.jurisdictions.models import Jurisdiction
from backend.operators import service
from backend.operators.models import Operator


def _staff_operator(session: SessionDep, scope: StaffScope, operator_id: int) -> Operator:
    return service.get_in_scope(session, scope, operator_id)


def staff_or_own_operator(session: SessionDep, user: CurrentUser, operator_id: int) -> Operator:
    """The operator for its own users, or for staff within scope; 404 for everyone else."""
    # The operator's own users see their record; staff see it within scope; everyone else gets 404.
    if user.role == Role.operator:
        if user.operator_id != operator_id:
            raise not_found("经营者", "operator")
        operator = session.get(Operator, operator_id)
        if operator is None:
            raise not_found("经营者", "operator")
        return operator
    if user.role in (Role.staff, Role.auditor, Role.admin):
        from backend.auth.scope import Scope

        if user.role == Role.admin:
            return service.get_in_scope(session, Scope(user, "/"), operator_id)
        jurisdiction = session.get(Jurisdiction, user.jurisdiction_code) if user.jurisdiction_code else None
        if jurisdiction is not None:
            return service.get_in_scope(session, Scope(user, jurisdiction.path), operator_id)
    raise not_found("经营者", "operator")


StaffOperator = Annotated[Operator, Depends(_staff_operator)]
StaffOrOwnOperator = Annotated[Operator, Depends(staff_or_own_operator)]
