"""Shared set-up for the public page and API tests: a market with a stall and a verified scale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlmodel import Session

from backend.auth.models import Account, Role
from backend.instruments.models import Instrument
from backend.operators.models import Operator, Stall
from backend.qr import service as qr_service
from tests.factories import COUNTY_A, make_account, make_instrument, make_operator, make_stall


@dataclass
class Market:
    """A market in COUNTY_A with one stall and one scale verified a month ago."""

    staff: Account
    market: Operator
    stall: Stall
    scale: Instrument

    @property
    def stall_token(self) -> str:
        """The stall's current QR token."""
        return qr_service.code_of(self.stall).token


@pytest.fixture
def market(session: Session) -> Market:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff, name="西溪农贸市场")
    stall = make_stall(session, operator, number="A12", name="老张蔬菜", holder_name="张三丰")
    scale = make_instrument(session, operator, stall=stall, verified_on=date.today() - timedelta(days=30))
    session.commit()
    return Market(staff, operator, stall, scale)
