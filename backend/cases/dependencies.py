"""Loader dependencies: fetch a case in the caller's scope or 404 (``backend.common.scoped``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from backend.cases.models import Case
from backend.cases.service import CASE
from backend.common.scoped import staff_loader

StaffCase = Annotated[Case, Depends(staff_loader(Case, CASE, id_param="case_id", via="jurisdiction"))]
