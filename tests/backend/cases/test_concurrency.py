"""Two staff taking the same step at the same moment: one wins, the other is told the state moved on."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.cases.models import Case, CaseAction, CaseEvent
from backend.db import new_session
from backend.main import create_app
from tests.factories import COUNTY_A, complaint_json, login, make_account, post_complaint
from workers.cases_tasks import route_one


def test_concurrent_accepts_make_one_step(committed_session: Session) -> None:
    first_staff = make_account(committed_session, Role.staff, COUNTY_A)
    second_staff = make_account(committed_session, Role.staff, COUNTY_A)
    device = make_account(committed_session, Role.consumer_device)
    committed_session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        resp = post_complaint(client, login(client, device), complaint_json())
        assert resp.status_code == 201, resp.text
        assert route_one(int(resp.json()["id"])) is not None
        with new_session() as s:
            case_id = s.execute(
                select(col(Case.id)).where(col(Case.complaint_id) == resp.json()["id"])
            ).scalar_one()
        headers = [login(client, first_staff), login(client, second_staff)]
        statuses: list[int] = []
        start = threading.Barrier(2)

        def accept(h: dict[str, str]) -> None:
            start.wait()
            statuses.append(client.post(f"/api/v1/cases/{case_id}/accept", headers=h).status_code)

        threads = [threading.Thread(target=accept, args=(h,)) for h in headers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert sorted(statuses) == [200, 409]
    with new_session() as s:
        accepted = s.execute(
            select(CaseEvent).where(
                col(CaseEvent.case_id) == case_id, col(CaseEvent.action) == CaseAction.accepted
            )
        ).all()
    assert len(accepted) == 1
