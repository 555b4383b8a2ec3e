"""Loader dependencies: fetch a case or 404, checking scope in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from backend.auth.dependencies import StaffScope
from backend.cases import service
from backend.cases.models import Case
from backend.db import SessionDep


def _staff_case(session: SessionDep, scope: StaffScope, case_id: int) -> Case:
    return service.get_in_scope(session, scope, case_id)


StaffCase = Annotated[Case, Depends(_staff_case)]
