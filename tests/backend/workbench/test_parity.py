"""A workbench action and the matching API call leave identical rows, audit entries and outbox events."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.cases.models import Case, CaseEvent
from backend.outbox.models import OutboxEvent
from backend.records.models import IntegrityRecord
from tests.backend.cases.conftest import Bureaus, file_and_route
from tests.backend.workbench.conftest import wb_login

#: What differs between two cases by construction: ids, numbers and instants.
_VOLATILE_KEYS = {"id", "seq", "case_no", "hash", "prev_hash", "request_id"}


def _norm(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "*" if k in _VOLATILE_KEYS or k.endswith(("_id", "_ids", "_at")) or k == "at" else _norm(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"\d+", "#", value)
    return value


def _marks(session: Session) -> tuple[int, int]:
    audit = session.execute(select(func.max(col(AuditEntry.seq)))).scalar_one() or 0
    outbox = session.execute(select(func.max(col(OutboxEvent.id)))).scalar_one() or 0
    return int(audit), int(outbox)


def _trace(session: Session, case_id: int, since: tuple[int, int]) -> dict[str, Any]:
    """Everything the steps left: the case row, its events, its records, the audit entries and outbox events."""
    session.expire_all()
    case = session.get(Case, case_id)
    assert case is not None
    row = case.model_dump(exclude={"id", "case_no", "complaint_id", "record_ids"})
    row = {k: v for k, v in row.items() if not k.endswith("_at")}
    events = [
        _norm(e.model_dump(exclude={"id", "case_id", "at"}))
        for e in session.exec(
            select(CaseEvent).where(col(CaseEvent.case_id) == case_id).order_by(col(CaseEvent.id))
        )
    ]
    records = [
        _norm(r.model_dump(exclude={"id", "created_at", "updated_at"}))
        for r in session.exec(
            select(IntegrityRecord)
            .where(col(IntegrityRecord.id).in_(case.record_ids or [0]))
            .order_by(col(IntegrityRecord.id))
        )
    ]
    audits = [
        _norm(
            {
                "action": a.action,
                "entity_type": a.entity_type,
                "actor_id": a.actor_id,
                "actor_role": a.actor_role,
                "before": a.before,
                "after": a.after,
            }
        )
        for a in session.exec(
            select(AuditEntry).where(col(AuditEntry.seq) > since[0]).order_by(col(AuditEntry.seq))
        )
    ]
    outbox = [
        _norm({"topic": o.topic, "payload": o.payload, "dedupe_key": o.dedupe_key})
        for o in session.exec(
            select(OutboxEvent).where(col(OutboxEvent.id) > since[1]).order_by(col(OutboxEvent.id))
        )
    ]
    return {"case": row, "events": events, "records": records, "audit": audits, "outbox": outbox}


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
    since_api = _marks(session)
    for step, body in steps:
        resp = client.post(
            f"/api/v1/cases/{by_api.id}/{step}", json=body or None, headers=headers["county_a"]
        )
        assert resp.status_code == 200, resp.text
    api = _trace(session, by_api.id or 0, since_api)

    csrf = wb_login(client, bureaus.county_a)
    since_workbench = _marks(session)
    for step, body in steps:
        form = {k: str(v) if isinstance(v, int) else v for k, v in body.items()}
        resp = client.post(
            f"/workbench/cases/{by_workbench.id}/{step}", data={"csrf": csrf, **form}, follow_redirects=False
        )
        assert resp.status_code == 303, resp.text
    workbench = _trace(session, by_workbench.id or 0, since_workbench)

    assert api["audit"] and api["outbox"] and api["records"]
    assert workbench == api
