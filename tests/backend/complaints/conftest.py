"""Shared set-up for the complaint tests: a market with a stall and a scale, filers, and photos made in code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session

from backend.auth.models import Account, Role
from backend.instruments.models import Instrument
from backend.operators.models import Operator, Stall
from tests.factories import COUNTY_A, login, make_account, make_instrument, make_operator, make_stall
from tests.fixtures.media_images import jpeg, photo_like


@dataclass
class Market:
    """A market in COUNTY_A with one stall and one verified scale at it, and the staff who registered it."""

    staff: Account
    market: Operator
    stall: Stall
    scale: Instrument


@pytest.fixture
def market(session: Session) -> Market:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff, name="西溪农贸市场")
    stall = make_stall(session, operator, number="A12", name="老张蔬菜", holder_name="张三丰")
    scale = make_instrument(session, operator, stall=stall, verified_on=date.today() - timedelta(days=30))
    # A savepoint "commit": an error response rolls back only what came after it (the test still rolls back).
    session.commit()
    return Market(staff, operator, stall, scale)


@pytest.fixture
def device(session: Session) -> Account:
    return make_account(session, Role.consumer_device)


@pytest.fixture
def device_headers(client: TestClient, device: Account) -> dict[str, str]:
    return login(client, device)


@pytest.fixture(scope="session")
def picture() -> Image.Image:
    return photo_like(640, 480, seed=3)


@pytest.fixture(scope="session")
def photo_bytes(picture: Image.Image) -> bytes:
    return jpeg(picture)


@pytest.fixture(scope="session")
def other_photo_bytes() -> bytes:
    return jpeg(photo_like(640, 480, seed=77))
