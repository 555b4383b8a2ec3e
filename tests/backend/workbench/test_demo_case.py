"""The demo: its staff account signs in to the workbench and works the demo case to its end."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.auth.models import Account
from backend.cases.models import Case, CaseState
from backend.demo import DEMO_PASSWORD, seed
from tests.backend.workbench.conftest import wb_login


def test_demo_staff_work_the_demo_case_to_its_end(client: TestClient, session: Session) -> None:
    seed(session)
    session.commit()
    staff = session.exec(select(Account).where(col(Account.username) == "staff_xihu")).one()
    csrf = wb_login(client, staff, DEMO_PASSWORD)
    queue = client.get("/workbench/").text
    found = re.search(r'href="/workbench/cases/(\d+)"', queue)
    assert found is not None, "the demo case is in the queue"
    url = f"/workbench/cases/{found.group(1)}"
    page = client.get(url).text
    assert "复称只有920克" in page and "920" in page
    for step, data in (
        ("accept", {}),
        ("investigate", {}),
        (
            "substantiate",
            {"findings": "现场复称，A02 摊位电子秤短称 80 克", "record_kinds": ["short_weight"]},
        ),
        ("close", {}),
    ):
        resp = client.post(f"{url}/{step}", data={"csrf": csrf, **data}, follow_redirects=False)
        assert resp.status_code == 303, resp.text
    session.expire_all()
    case = session.get(Case, int(found.group(1)))
    assert case is not None and case.state is CaseState.closed and len(case.record_ids) == 2
