"""Instruments, verification history, derived state and the overdue sweep."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from backend.auth.models import Role
from backend.instruments.models import VerificationState
from backend.instruments.service import add_months, default_valid_until, verification_state
from backend.instruments.sweep import sweep_overdue_instruments
from backend.outbox.models import OutboxEvent
from tests.factories import COUNTY_A, COUNTY_B, login, make_account, make_operator

TODAY = date(2026, 11, 27)


@pytest.mark.parametrize(
    ("verified", "passed", "valid_until", "expected"),
    [
        (None, None, None, VerificationState.never_verified),
        (TODAY - timedelta(days=10), False, None, VerificationState.failed),
        (TODAY - timedelta(days=400), True, TODAY - timedelta(days=1), VerificationState.overdue),
        (TODAY - timedelta(days=340), True, TODAY + timedelta(days=30), VerificationState.due_soon),
        (TODAY - timedelta(days=300), True, TODAY + timedelta(days=31), VerificationState.valid),
        (TODAY - timedelta(days=1), True, TODAY, VerificationState.due_soon),
    ],
)
def test_derived_state(
    verified: date | None, passed: bool | None, valid_until: date | None, expected: VerificationState
) -> None:
    state = verification_state(
        last_verified_on=verified, last_passed=passed, valid_until=valid_until, today=TODAY, due_days=30
    )
    assert state == expected


def test_periods_from_the_catalogue() -> None:
    assert default_valid_until("price_scale", date(2026, 1, 31)) == date(2027, 1, 30)
    assert default_valid_until("fuel_dispenser", date(2026, 8, 31)) == date(2027, 2, 27)
    assert default_valid_until("water_meter", date(2020, 3, 1)) == date(2026, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)


def test_verification_updates_state_and_history(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    institution = make_account(session, Role.institution)
    operator = make_operator(session, staff)
    headers = login(client, staff)
    created = client.post(
        f"/api/v1/operators/{operator.id}/instruments",
        json={"type_code": "price_scale", "serial": "PS-1", "maker": "上海友声"},
        headers=headers,
    )
    assert created.status_code == 201 and created.json()["verification_state"] == "never_verified"
    iid = created.json()["id"]
    inst_headers = login(client, institution)
    old = client.post(
        f"/api/v1/instruments/{iid}/verifications",
        json={"verified_on": str(date.today() - timedelta(days=500)), "passed": True},
        headers=inst_headers,
    )
    assert old.status_code == 201
    assert client.get(f"/api/v1/instruments/{iid}", headers=headers).json()["verification_state"] == "overdue"
    new = client.post(
        f"/api/v1/instruments/{iid}/verifications",
        json={"verified_on": str(date.today()), "passed": True, "certificate_no": "C-1"},
        headers=inst_headers,
    )
    assert new.status_code == 201
    assert client.get(f"/api/v1/instruments/{iid}", headers=headers).json()["verification_state"] == "valid"
    history = client.get(f"/api/v1/instruments/{iid}/verifications", headers=headers).json()
    assert [h["certificate_no"] for h in history] == ["C-1", ""]


def test_bad_instrument_input(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    headers = login(client, staff)
    bad_type = client.post(
        f"/api/v1/operators/{operator.id}/instruments",
        json={"type_code": "slot_machine", "serial": "X"},
        headers=headers,
    )
    assert bad_type.status_code == 422 and bad_type.json()["error"]["code"] == "unknown_instrument_type"
    client.post(
        f"/api/v1/operators/{operator.id}/instruments",
        json={"type_code": "price_scale", "serial": "S"},
        headers=headers,
    )
    dup = client.post(
        f"/api/v1/operators/{operator.id}/instruments",
        json={"type_code": "price_scale", "serial": "S"},
        headers=headers,
    )
    assert dup.status_code == 409
    iid = (
        dup.request
        and client.get(f"/api/v1/operators/{operator.id}/instruments", headers=headers).json()[0]["id"]
    )
    future = client.post(
        f"/api/v1/instruments/{iid}/verifications",
        json={"verified_on": str(date.today() + timedelta(days=3)), "passed": True},
        headers=headers,
    )
    assert future.status_code == 422


def test_instruments_out_of_scope_are_404(client: TestClient, session: Session) -> None:
    staff_a = make_account(session, Role.staff, COUNTY_A)
    staff_b = make_account(session, Role.staff, COUNTY_B)
    operator = make_operator(session, staff_a)
    iid = client.post(
        f"/api/v1/operators/{operator.id}/instruments",
        json={"type_code": "price_scale", "serial": "Q"},
        headers=login(client, staff_a),
    ).json()["id"]
    headers_b = login(client, staff_b)
    assert client.get(f"/api/v1/instruments/{iid}", headers=headers_b).status_code == 404
    assert (
        client.post(
            f"/api/v1/instruments/{iid}/verifications",
            json={"verified_on": str(date.today()), "passed": True},
            headers=headers_b,
        ).status_code
        == 404
    )


def test_overdue_sweep_emits_once_per_instrument_and_due_date(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    headers = login(client, staff)
    ids = []
    for serial, days_ago in (("OLD", 500), ("NEW", 10)):
        iid = client.post(
            f"/api/v1/operators/{operator.id}/instruments",
            json={"type_code": "price_scale", "serial": serial},
            headers=headers,
        ).json()["id"]
        client.post(
            f"/api/v1/instruments/{iid}/verifications",
            json={"verified_on": str(date.today() - timedelta(days=days_ago)), "passed": True},
            headers=headers,
        )
        ids.append(iid)

    @contextmanager
    def unit_of_work() -> Iterator[Session]:
        yield session
        session.flush()

    assert sweep_overdue_instruments(date.today(), unit_of_work=unit_of_work) == 1
    assert sweep_overdue_instruments(date.today(), unit_of_work=unit_of_work) == 0
    assert sweep_overdue_instruments(date.today() + timedelta(days=1), unit_of_work=unit_of_work) == 0
    events = session.exec(select(OutboxEvent).where(OutboxEvent.topic == "instrument.overdue")).all()
    assert [e.payload["instrument_id"] for e in events] == [ids[0]]
