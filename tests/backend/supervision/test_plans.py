"""Key supervision and inspection plans (Art. 11-12): scoped lists, reproducible draws, CSV."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend.operators.models import Operator
from backend.records import rating
from backend.records.plan import PlanCandidate, draw_plan
from backend.records.rules import IntegrityClass
from backend.supervision.models import PlanEntry
from tests.backend.supervision.conftest import World
from tests.factories import COUNTY_A, COUNTY_B, OTHER_PROVINCE_COUNTY, make_operator, make_record


def _untrustworthy(session: Session, operator: Operator) -> None:
    make_record(session, operator, "inspection_failed")
    rating.rerate_operator(session, operator.id or 0)


def test_key_supervision_lists_untrustworthy_operators_in_scope(
    client: TestClient,
    session: Session,
    world: World,
    staff_headers: dict[str, str],
    other_staff_headers: dict[str, str],
) -> None:
    _untrustworthy(session, world.operator)
    neighbour = make_operator(session, world.other_staff, county=COUNTY_B)
    _untrustworthy(session, neighbour)
    session.commit()
    mine = client.get("/api/v1/key-supervision", headers=staff_headers).json()
    assert [i["operator_id"] for i in mine["items"]] == [world.operator.id]
    assert mine["items"][0]["rules"] == ["art13_1_inspection_failed"]
    theirs = client.get("/api/v1/key-supervision", headers=other_staff_headers).json()
    assert [i["operator_id"] for i in theirs["items"]] == [neighbour.id]
    resp = client.get(
        "/api/v1/key-supervision", params={"jurisdiction_code": COUNTY_B}, headers=staff_headers
    )
    assert resp.status_code == 403
    resp = client.get(
        "/api/v1/key-supervision", params={"jurisdiction_code": "999999"}, headers=staff_headers
    )
    assert resp.status_code == 422


def _plan(client: TestClient, headers: dict[str, str], **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"period_key": "2026-Q3", "jurisdiction_code": COUNTY_A}
    body.update(overrides)
    resp = client.post("/api/v1/inspection-plans", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    result: dict[str, object] = resp.json()
    return result


def test_plan_draws_every_untrustworthy_operator_and_is_reproducible(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    extra = [make_operator(session, world.staff, name=f"抽查{n}") for n in range(8)]
    _untrustworthy(session, extra[0])
    _untrustworthy(session, extra[1])
    session.commit()
    plan = _plan(client, staff_headers, seed=20260701)
    entries = plan["entries"]
    assert isinstance(entries, list)
    drawn = {e["operator_id"]: e for e in entries}
    assert {extra[0].id, extra[1].id} <= set(drawn)
    assert drawn[extra[0].id]["cls"] == "untrustworthy" and drawn[extra[0].id]["stratum_quota"] == 2
    assert plan["seed"] == "20260701" and plan["rates"]["trustworthy"] == 0.1  # type: ignore[index]
    # Re-running the draw from what is stored gives the same operators and tickets.
    candidates = []
    for op in session.exec(select(Operator).where(Operator.jurisdiction_code == COUNTY_A)).all():
        cls = rating.current(session, op).cls
        candidates.append(PlanCandidate(str(op.id), cls, op.jurisdiction_code))
    again = draw_plan(candidates, "2026-Q3", int(str(plan["seed"])))
    assert [(int(r.operator_id), r.draw_ticket) for r in again] == [
        (e["operator_id"], e["draw_ticket"]) for e in entries
    ]


def test_no_operator_is_drawn_twice_in_a_period(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    for n in range(12):
        make_operator(session, world.staff, name=f"抽查{n}")
    session.commit()
    first = _plan(client, staff_headers, seed=1)
    second = _plan(client, staff_headers, seed=2)
    first_ids = {e["operator_id"] for e in first["entries"]}  # type: ignore[attr-defined]
    second_ids = {e["operator_id"] for e in second["entries"]}  # type: ignore[attr-defined]
    assert first_ids and not first_ids & second_ids
    rows = session.exec(select(PlanEntry).where(PlanEntry.period_key == "2026-Q3")).all()
    assert len(rows) == len({r.operator_id for r in rows})
    # Another period starts afresh.
    assert _plan(client, staff_headers, period_key="2026-Q4", seed=1)["entries"]


def test_seed_is_generated_and_stored_when_omitted(
    client: TestClient, world: World, staff_headers: dict[str, str]
) -> None:
    plan = _plan(client, staff_headers)
    assert str(plan["seed"]).isdigit()
    fetched = client.get(f"/api/v1/inspection-plans/{plan['id']}", headers=staff_headers).json()
    assert fetched["seed"] == plan["seed"] and fetched["entries"] == plan["entries"]


def test_plan_csv_has_chinese_headers_first_and_english_on_request(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    _untrustworthy(session, world.operator)
    session.commit()
    plan = _plan(client, staff_headers, seed=5)
    resp = client.get(f"/api/v1/inspection-plans/{plan['id']}.csv", headers=staff_headers)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert resp.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
    assert rows[0][0] == "检查周期" and rows[0][3] == "诚信计量信用等级"
    assert [str(world.operator.id), "失信"] == [rows[1][2], rows[1][3]]
    english = client.get(f"/api/v1/inspection-plans/{plan['id']}.csv?lang=en", headers=staff_headers)
    assert english.content.decode("utf-8-sig").startswith("period,jurisdiction code")


def test_plan_scope_and_validation(
    client: TestClient,
    world: World,
    staff_headers: dict[str, str],
    other_staff_headers: dict[str, str],
) -> None:
    plan = _plan(client, staff_headers, seed=3)
    assert (
        client.get(f"/api/v1/inspection-plans/{plan['id']}", headers=other_staff_headers).status_code == 404
    )
    assert (
        client.get(f"/api/v1/inspection-plans/{plan['id']}.csv", headers=other_staff_headers).status_code
        == 404
    )
    assert client.get("/api/v1/inspection-plans", headers=other_staff_headers).json()["total"] == 0
    listed = client.get("/api/v1/inspection-plans", headers=staff_headers).json()
    assert listed["items"][0]["entry_count"] == len(plan["entries"])  # type: ignore[arg-type]
    body = {"period_key": "2026-Q3", "jurisdiction_code": OTHER_PROVINCE_COUNTY}
    assert client.post("/api/v1/inspection-plans", json=body, headers=staff_headers).status_code == 403
    body = {"period_key": "2026-Q5", "jurisdiction_code": COUNTY_A}
    assert client.post("/api/v1/inspection-plans", json=body, headers=staff_headers).status_code == 422
    body = {
        "period_key": "2026",
        "jurisdiction_code": COUNTY_A,
        "rates": {"untrustworthy": 0.2, "basically_trustworthy": 0.5, "trustworthy": 0.1},
    }
    resp = client.post("/api/v1/inspection-plans", json=body, headers=staff_headers)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_rates"


def test_baseline_class_follows_the_management_assessment(session: Session, world: World) -> None:
    from backend.operators.models import ManagementAssessment

    assert rating.baseline_class(ManagementAssessment.sound) is IntegrityClass.TRUSTWORTHY
    assert rating.baseline_class(ManagementAssessment.not_assessed) is IntegrityClass.BASICALLY_TRUSTWORTHY
