"""Staff reads of operators, stalls, corrections, interviews and inspections are audited like records and cases
(Art. 20; issue 14, item 12); an operator reading its own information is not a staff read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.models import AuditEntry
from tests.backend.audit.conftest import World
from tests.factories import make_record, make_stall


def _reads(session: Session, action: str) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry).where(col(AuditEntry.action) == action).order_by(col(AuditEntry.seq))
        ).all()
    )


def _read_once(
    client: TestClient, session: Session, world: World, headers: dict[str, str], path: str, action: str
) -> AuditEntry:
    before = len(_reads(session, action))
    resp = client.get(path, headers=headers)
    assert resp.status_code == 200, (path, resp.text)
    entries = _reads(session, action)
    assert len(entries) == before + 1, (path, action)
    entry = entries[-1]
    assert entry.actor_id == world.staff.id and entry.actor_role == "staff"
    return entry


def test_staff_reads_of_operators_and_stalls_are_audited(
    client: TestClient,
    session: Session,
    world: World,
    staff_headers: dict[str, str],
    operator_headers: dict[str, str],
) -> None:
    stall = make_stall(session, world.operator, number="B3")
    session.commit()
    operator_id = world.operator.id
    listed = _read_once(client, session, world, staff_headers, "/api/v1/operators", "operator.list")
    assert listed.after is not None and operator_id in listed.after["operator_ids"]
    one = _read_once(
        client, session, world, staff_headers, f"/api/v1/operators/{operator_id}", "operator.read"
    )
    assert one.entity_id == str(operator_id)
    stalls = _read_once(
        client, session, world, staff_headers, f"/api/v1/operators/{operator_id}/stalls", "stall.list"
    )
    assert stalls.entity_id == str(operator_id) and stalls.after == {"stall_ids": [stall.id]}
    # The operator's own user reads its own record: not a staff read, nothing logged.
    for path in (f"/api/v1/operators/{operator_id}", f"/api/v1/operators/{operator_id}/stalls"):
        assert client.get(path, headers=operator_headers).status_code == 200
    assert len(_reads(session, "operator.read")) == 1 and len(_reads(session, "stall.list")) == 1
    # A refused read (another county's staff get 404) logs nothing either.
    assert client.get("/api/v1/operators/987654", headers=staff_headers).status_code == 404
    assert len(_reads(session, "operator.read")) == 1


def test_staff_reads_of_corrections_are_audited(
    client: TestClient,
    session: Session,
    world: World,
    staff_headers: dict[str, str],
    operator_headers: dict[str, str],
) -> None:
    record = make_record(session, world.operator, "inspection_failed")
    session.commit()
    body = {"action": "revoke", "reasons": "当日秤经检定合格，称重无误", "document_refs": []}
    asked = client.post(f"/api/v1/records/{record.id}/corrections", json=body, headers=operator_headers)
    assert asked.status_code == 201, asked.text
    correction_id = asked.json()["id"]
    listed = _read_once(client, session, world, staff_headers, "/api/v1/corrections", "correction.list")
    assert listed.after is not None and listed.after["correction_ids"] == [correction_id]
    one = _read_once(
        client, session, world, staff_headers, f"/api/v1/corrections/{correction_id}", "correction.read"
    )
    assert one.entity_type == "correction_request" and one.entity_id == str(correction_id)


def test_staff_reads_of_interviews_and_inspections_are_audited(
    client: TestClient, session: Session, world: World, staff_headers: dict[str, str]
) -> None:
    interview = client.post(
        "/api/v1/interviews",
        json={
            "operator_id": world.operator.id,
            "kind": "interview",
            "scheduled_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
            "place": "西湖区市场监管局 3 楼会议室",
            "subject": "近期监督检查不合格及整改",
        },
        headers=staff_headers,
    ).json()
    created = client.post(
        "/api/v1/inspections",
        json={
            "operator_id": world.operator.id,
            "inspected_on": (datetime.now(UTC) - timedelta(days=2)).date().isoformat(),
            "items": [{"item": "scale_accuracy", "result": "pass"}],
        },
        headers=staff_headers,
    )
    assert created.status_code == 201, created.text
    inspection = created.json()
    listed = _read_once(client, session, world, staff_headers, "/api/v1/interviews", "interview.list")
    assert listed.after is not None and listed.after["interview_ids"] == [interview["id"]]
    one = _read_once(
        client, session, world, staff_headers, f"/api/v1/interviews/{interview['id']}", "interview.read"
    )
    assert one.entity_id == str(interview["id"])
    inspections = _read_once(
        client,
        session,
        world,
        staff_headers,
        f"/api/v1/inspections?operator_id={world.operator.id}",
        "inspection.list",
    )
    assert inspections.after is not None and inspections.after["inspection_ids"] == [inspection["id"]]
    assert inspections.entity_id == str(world.operator.id)
