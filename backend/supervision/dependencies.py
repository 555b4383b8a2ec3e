"""Loader dependencies: fetch an interview or plan in the caller's scope, or 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from backend.auth.dependencies import StaffScope
from backend.db import SessionDep
from backend.supervision import service
from backend.supervision.models import InspectionPlan, Interview


def _staff_interview(session: SessionDep, scope: StaffScope, interview_id: int) -> Interview:
    return service.get_scoped(session, scope, Interview, interview_id, ("约谈", "interview"))


def _staff_plan(session: SessionDep, scope: StaffScope, plan_id: int) -> InspectionPlan:
    return service.plan_in_scope(session, scope, plan_id)


StaffInterview = Annotated[Interview, Depends(_staff_interview)]
StaffPlan = Annotated[InspectionPlan, Depends(_staff_plan)]
