"""A workbench action and the matching API call leave identical rows, audit entries and outbox events."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.cases.models import Case, CaseEvent
from backend.records.models import IntegrityRecord
from tests.backend.cases.conftest import Bureaus, file_and_route
from tests.backend.workbench.conftest import wb_login
from tests.support.traces import marks, norm, written_since


def _trace(session: Session, case_id: int, since: tuple[int, int]) -> dict[str, Any]:
    """Everything the steps left: the case row, its events, its records, the audit entries and outbox events."""
    session.expire_all()
    case = session.get(Case, case_id)
    assert case is not None
    row = case.model_dump(exclude={"id", "case_no", "complaint_id", "record_ids"})
    row = {k: v for k, v in row.items() if not k.endswith("_at")}
    events = [
        norm(e.model_dump(exclude={"id", "case_id", "at"}))
        for e in session.exec(
            select(CaseEvent).where(col(CaseEvent.case_id) == case_id).order_by(col(CaseEvent.id))
        )
    ]
    records = [
        norm(r.model_dump(exclude={"id", "created_at", "updated_at"}))
        for r in session.exec(
            select(IntegrityRecord)
            .where(col(IntegrityRecord.id).in_(case.record_ids or [0]))
            .order_by(col(IntegrityRecord.id))
        )
    ]
    return {"case": row, "events": events, "records": records, **written_since(session, since)}


def _steps(operator_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("accept", {"note": "材料齐全，予以受理"}),
        ("investigate", {"note": "现场检查"}),
        (
            "substantiate",
            {"findings": "复称短缺 100 克", "record_kinds": ["short_weight"], "operator_id": operator_id},
        ),
        ("close", {}),
    ]


def test_workbench_steps_leave_what_the_api_leaves(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    by_api = file_and_route(client, session, headers["filer"])
    by_workbench = file_and_route(client, session, headers["filer"])

    steps = _steps(bureaus.market.id or 0)
    since_api = marks(session)
    for step, body in steps:
        resp = client.post(
            f"/api/v1/cases/{by_api.id}/{step}", json=body or None, headers=headers["county_a"]
        )
        assert resp.status_code == 200, resp.text
    api = _trace(session, by_api.id or 0, since_api)

    csrf = wb_login(client, bureaus.county_a)
    since_workbench = marks(session)
    for step, body in steps:
        form = {k: str(v) if isinstance(v, int) else v for k, v in body.items()}
        resp = client.post(
            f"/workbench/cases/{by_workbench.id}/{step}", data={"csrf": csrf, **form}, follow_redirects=False
        )
        assert resp.status_code == 303, resp.text
    workbench = _trace(session, by_workbench.id or 0, since_workbench)

    assert api["audit"] and api["outbox"] and api["records"]
    assert workbench == api
