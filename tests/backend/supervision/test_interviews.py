"""Reminders and interviews (Art. 12(2)) and department notices (Art. 12(3))."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from backend.outbox.models import OutboxEvent
from backend.records import service as records
from backend.records.models import RecordSource
from backend.records.rules import RecordKind, RecordState
from tests.backend.supervision.conftest import World
from tests.factories import login


def _interview(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operator_id": world.operator.id,
        "kind": "interview",
        "scheduled_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        "place": "西湖区市场监管局 3 楼会议室",
        "subject": "近期监督检查不合格及整改",
    }
    body.update(overrides)
    return body


def _topics(session: Session) -> list[str]:
    rows = session.exec(
        select(OutboxEvent.topic)
        .where(col(OutboxEvent.topic).startswith("interview."))
        .order_by(col(OutboxEvent.id))
    )
    return list(rows.all())


def test_interview_flow(
    client: TestClient,
    session: Session,
    world: World,
    staff_headers: dict[str, str],
    operator_headers: dict[str, str],
) -> None:
    resp = client.post("/api/v1/interviews", json=_interview(world), headers=staff_headers)
    assert resp.status_code == 201, resp.text
    interview = resp.json()
    assert interview["status"] == "scheduled" and interview["class_at_scheduling"] == "basically_trustworthy"
    # Not 失信: Art. 12(2)'s measures are for 失信 operators; this one is under Art. 11's tiered supervision.
    assert "第十一条" in interview["legal_basis"] and "第十二条" not in interview["legal_basis"]
    mine = client.get("/api/v1/me/interviews", headers=operator_headers).json()
    assert [i["id"] for i in mine] == [interview["id"]]

    ack = client.post(f"/api/v1/interviews/{interview['id']}/acknowledge", headers=operator_headers)
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    assert (
        client.post(f"/api/v1/interviews/{interview['id']}/acknowledge", headers=operator_headers).status_code
        == 409
    )

    held = client.post(
        f"/api/v1/interviews/{interview['id']}/outcome",
        json={"outcome": "经营者承诺一周内更换超期计量器具"},
        headers=staff_headers,
    )
    assert held.status_code == 200 and held.json()["status"] == "held"
    assert held.json()["outcome"] == "经营者承诺一周内更换超期计量器具"
    late = client.post(
        f"/api/v1/interviews/{interview['id']}/cancel", json={"reason": "x"}, headers=staff_headers
    )
    assert late.status_code == 409
    assert _topics(session) == ["interview.scheduled"]
    actions = session.exec(
        select(AuditEntry.action).where(AuditEntry.entity_type == "interview").order_by(col(AuditEntry.seq))
    ).all()
    assert list(actions) == ["interview.schedule", "interview.acknowledge", "interview.outcome"]


@pytest.mark.parametrize("kind", ["interview", "reminder"])
def test_an_untrustworthy_operators_interview_cites_art_12_2(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str], kind: str
) -> None:
    records.create(
        session,
        operator=world.operator,
        kind=RecordKind.INSPECTION_FAILED,
        fact_date=date(2026, 1, 5),
        source=RecordSource.inspection,
        state=RecordState.VERIFIED,
        actor=world.staff,
    )
    session.commit()
    body = _interview(world, kind=kind)
    if kind == "reminder":
        body.update(scheduled_at=None, place="")
    resp = client.post("/api/v1/interviews", json=body, headers=staff_headers)
    assert resp.status_code == 201, resp.text
    assert resp.json()["class_at_scheduling"] == "untrustworthy"
    assert resp.json()["legal_basis"].endswith("第十二条第（二）项")


def test_a_basis_staff_give_is_kept(client: TestClient, world: World, staff_headers: dict[str, str]) -> None:
    body = _interview(world, legal_basis="《计量法》第二十二条")
    resp = client.post("/api/v1/interviews", json=body, headers=staff_headers)
    assert resp.status_code == 201 and resp.json()["legal_basis"] == "《计量法》第二十二条"


def test_an_interview_needs_a_time_and_place_a_reminder_does_not(
    client: TestClient, world: World, staff_headers: dict[str, str]
) -> None:
    resp = client.post("/api/v1/interviews", json=_interview(world, place=""), headers=staff_headers)
    assert resp.status_code == 422
    reminder = _interview(world, kind="reminder", scheduled_at=None, place="", subject="请及时送检超期电子秤")
    resp = client.post("/api/v1/interviews", json=reminder, headers=staff_headers)
    assert resp.status_code == 201 and resp.json()["kind"] == "reminder"
    past = _interview(world, scheduled_at=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    resp = client.post("/api/v1/interviews", json=past, headers=staff_headers)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "scheduled_in_past"
    naive = _interview(world, scheduled_at="2030-01-01T10:00:00")
    assert client.post("/api/v1/interviews", json=naive, headers=staff_headers).status_code == 422


def test_only_the_operators_own_user_acknowledges(
    client: TestClient,
    world: World,
    staff_headers: dict[str, str],
) -> None:
    interview = client.post("/api/v1/interviews", json=_interview(world), headers=staff_headers).json()
    other = login(client, world.other_operator_user)
    assert client.post(f"/api/v1/interviews/{interview['id']}/acknowledge", headers=other).status_code == 404
    assert (
        client.post(f"/api/v1/interviews/{interview['id']}/acknowledge", headers=staff_headers).status_code
        == 403
    )
    assert client.get("/api/v1/me/interviews", headers=other).json() == []


def test_cancel_and_scope(
    client: TestClient,
    session: Session,
    world: World,
    staff_headers: dict[str, str],
    other_staff_headers: dict[str, str],
) -> None:
    interview = client.post("/api/v1/interviews", json=_interview(world), headers=staff_headers).json()
    path = f"/api/v1/interviews/{interview['id']}"
    assert client.get(path, headers=other_staff_headers).status_code == 404
    assert (
        client.post(path + "/outcome", json={"outcome": "x"}, headers=other_staff_headers).status_code == 404
    )
    assert client.post(path + "/cancel", json={"reason": "x"}, headers=other_staff_headers).status_code == 404
    assert (
        client.post("/api/v1/interviews", json=_interview(world), headers=other_staff_headers).status_code
        == 404
    )
    assert client.get("/api/v1/interviews", headers=other_staff_headers).json()["total"] == 0
    cancelled = client.post(path + "/cancel", json={"reason": "经营者已停业"}, headers=staff_headers).json()
    assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "经营者已停业"
    listed = client.get("/api/v1/interviews", params={"status": "cancelled"}, headers=staff_headers).json()
    assert [i["id"] for i in listed["items"]] == [interview["id"]]
    assert "interview.cancelled" in _topics(session)


def _notice(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operator_id": world.operator.id,
        "department": "西湖区发展和改革局",
        "sent_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "content": "该经营者被列入计量失信名单，供市场准入和招投标参考。",
        "channel": "letter",
    }
    body.update(overrides)
    return body


def test_department_notices(
    client: TestClient,
    session: Session,
    world: World,
    staff_headers: dict[str, str],
    other_staff_headers: dict[str, str],
) -> None:
    resp = client.post("/api/v1/department-notices", json=_notice(world), headers=staff_headers)
    assert resp.status_code == 201, resp.text
    assert resp.json()["created_by_id"] == world.staff.id
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "department_notice.create")).one()
    listed = client.get(
        "/api/v1/department-notices", params={"operator_id": world.operator.id}, headers=staff_headers
    ).json()
    assert listed["total"] == 1 and listed["items"][0]["department"] == "西湖区发展和改革局"
    assert client.get("/api/v1/department-notices", headers=other_staff_headers).json()["total"] == 0
    assert (
        client.post(
            "/api/v1/department-notices", json=_notice(world), headers=other_staff_headers
        ).status_code
        == 404
    )
    future = _notice(world, sent_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    resp = client.post("/api/v1/department-notices", json=future, headers=staff_headers)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "sent_in_future"
