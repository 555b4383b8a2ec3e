"""Loader dependencies: fetch an interview or plan in the caller's scope, or 404 (``backend.common.scoped``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from backend.common.scoped import staff_loader
from backend.supervision.models import InspectionPlan, Interview
from backend.supervision.service import INTERVIEW, PLAN

StaffInterview = Annotated[
    Interview, Depends(staff_loader(Interview, INTERVIEW, id_param="interview_id", via="operator"))
]
StaffPlan = Annotated[
    InspectionPlan, Depends(staff_loader(InspectionPlan, PLAN, id_param="plan_id", via="jurisdiction"))
]
