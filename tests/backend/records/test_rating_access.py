"""GET /operators/{id}/rating: staff in scope and the operator itself read it; anyone else asking about an
operator that has a public profile is told where that profile is (403), not that the operator does not exist."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Role
from tests.factories import COUNTY_A, COUNTY_B, login, make_account, make_operator


@pytest.mark.parametrize("role", [Role.consumer, Role.consumer_device])
def test_a_consumer_is_pointed_at_the_public_profile(
    client: TestClient, session: Session, role: Role
) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    consumer = make_account(session, role)
    resp = client.get(f"/api/v1/operators/{operator.id}/rating", headers=login(client, consumer))
    assert resp.status_code == 403, resp.text
    error = resp.json()["error"]
    assert error["code"] == "rating_public_profile_only"
    profile = error["details"]["public_profile"]
    assert profile == f"/api/v1/public/operators/{operator.id}"
    # The pointer leads somewhere: the public profile answers with the class.
    public = client.get(profile)
    assert public.status_code == 200 and public.json()["operator"]["id"] == operator.id


def test_no_profile_no_pointer(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    closed = make_operator(session, staff)
    closed.is_active = False
    session.add(closed)
    session.flush()
    headers = login(client, make_account(session, Role.consumer))
    for operator_id in (closed.id, 987_654_321):
        resp = client.get(f"/api/v1/operators/{operator_id}/rating", headers=headers)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_staff_and_owner_keep_their_answers(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    owner = make_account(session, Role.operator, operator_id=operator.id)
    other_owner = make_account(session, Role.operator, operator_id=make_operator(session, staff).id)
    elsewhere = make_account(session, Role.staff, COUNTY_B)
    url = f"/api/v1/operators/{operator.id}/rating"
    assert client.get(url, headers=login(client, staff)).status_code == 200
    assert client.get(url, headers=login(client, owner)).status_code == 200
    # Staff out of scope and other operators still learn nothing about existence from this route.
    assert client.get(url, headers=login(client, elsewhere)).status_code == 404
    assert client.get(url, headers=login(client, other_owner)).status_code == 404
