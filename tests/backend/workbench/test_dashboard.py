"""The dashboard: this week's complaints, deadlines met, overdue by county, ratings, most substantiated operators."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.cases.models import Case
from backend.cases.service import local_date
from backend.db import utcnow
from backend.records.models import OperatorRating
from backend.records.rules import IntegrityClass
from backend.workbench import dashboard
from backend.workbench.auth import scope_of
from tests.backend.cases.conftest import Bureaus, file_and_route
from tests.backend.workbench.conftest import wb_login


def test_chart_layout_scales_to_the_largest_bar() -> None:
    ch = dashboard.chart([("a", 2.0), ("b", 4.0), ("c", 0.0)])
    assert [b.width for b in ch.bars] == [dashboard.BAR_W // 2, dashboard.BAR_W, 0]
    assert [b.y for b in ch.bars] == [0, dashboard.ROW_H, 2 * dashboard.ROW_H]
    assert ch.height == 3 * dashboard.ROW_H
    pct = dashboard.chart([("x", 50.0)], maximum=100.0, percent=True)
    assert pct.bars[0].shown == "50%" and pct.bars[0].width == dashboard.BAR_W // 2
    assert dashboard.chart([]).bars == [] and dashboard.chart([("z", 0.0)]).bars[0].width == 0


def test_dashboard_figures_follow_the_scope(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case = file_and_route(client, session, headers["filer"])
    file_and_route(client, session, headers["filer"])
    for step, body in (
        ("accept", None),
        ("investigate", None),
        (
            "substantiate",
            {"findings": "短缺", "record_kinds": ["short_weight"], "operator_id": bureaus.market.id},
        ),
    ):
        assert (
            client.post(f"/api/v1/cases/{case.id}/{step}", json=body, headers=headers["county_a"]).status_code
            == 200
        )
    session.expire_all()
    today = local_date(utcnow())
    scope = scope_of(session, bureaus.county_a)
    assert scope is not None
    f = dashboard.figures(session, scope, today)
    fresh = session.get(Case, case.id)
    assert fresh is not None
    assert sum(n for _, n in f.week) == 2 and dict(f.week)[local_date(fresh.received_at)] == 2
    assert all(d.weekday() == i for i, (d, _) in enumerate(f.week))
    # The acceptance deadline was met (accepted at once); the handling one ended with the finding.
    assert f.acceptance_pct == 100.0 and f.closure_pct == 100.0
    assert f.top_operators == [("西溪农贸市场", 1)]
    assert f.overdue_by_county == []
    assert sum(n for _, n in f.ratings) == 0  # rated by the worker, later
    # "cls" cannot be a keyword argument of a model's constructor.
    session.add(
        OperatorRating.model_validate(
            {
                "operator_id": bureaus.market.id,
                "cls": IntegrityClass.UNTRUSTWORTHY,
                "as_of": today,
                "rules_version": "test",
                "signature": "test",
            }
        )
    )
    session.commit()
    rated = dashboard.figures(session, scope, today).ratings
    assert dict(rated) == {
        IntegrityClass.TRUSTWORTHY: 0,
        IntegrityClass.BASICALLY_TRUSTWORTHY: 0,
        IntegrityClass.UNTRUSTWORTHY: 1,
    }
    other = scope_of(session, bureaus.county_b)
    assert other is not None
    empty = dashboard.figures(session, other, today)
    assert sum(n for _, n in empty.week) == 0 and empty.top_operators == [] and empty.acceptance_pct is None
    wb_login(client, bureaus.county_a)
    page = client.get("/workbench/dashboard")
    assert page.status_code == 200 and page.text.count("<svg") == 4 and "西溪农贸市场: 1" in page.text
    assert "没有超期案件" in page.text
    assert "失信: 1" in page.text
    assert "本周收到的投诉举报" in page.text
    assert date.today().strftime("%m-%d") in page.text or today.strftime("%m-%d") in page.text
