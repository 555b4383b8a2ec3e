"""Shared set-up for record, rating and supervision tests: two counties' staff, an operator and its user."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Account, Role
from backend.operators.models import Operator
from tests.factories import COUNTY_A, COUNTY_B, login, make_account, make_operator


@dataclass
class World:
    """Staff of county A with an operator and that operator's user; staff of county B next door."""

    staff: Account
    other_staff: Account
    operator: Operator
    operator_user: Account
    other_operator: Operator
    other_operator_user: Account


@pytest.fixture
def world(session: Session) -> World:
    staff = make_account(session, Role.staff, COUNTY_A)
    other_staff = make_account(session, Role.staff, COUNTY_B)
    operator = make_operator(session, staff, name="西溪菜场")
    other_operator = make_operator(session, staff, name="文一超市")
    user = make_account(session, Role.operator, operator_id=operator.id)
    other_user = make_account(session, Role.operator, operator_id=other_operator.id)
    # A savepoint "commit": an error response rolls back only what came after it.
    session.commit()
    return World(staff, other_staff, operator, user, other_operator, other_user)


@pytest.fixture
def staff_headers(client: TestClient, world: World) -> dict[str, str]:
    return login(client, world.staff)


@pytest.fixture
def other_staff_headers(client: TestClient, world: World) -> dict[str, str]:
    return login(client, world.other_staff)


@pytest.fixture
def operator_headers(client: TestClient, world: World) -> dict[str, str]:
    return login(client, world.operator_user)
