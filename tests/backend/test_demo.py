"""The demo seed: once, every role, every verification state."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, func, select

from backend.auth.models import Account, Role
from backend.demo import seed
from backend.instruments.models import Instrument
from backend.instruments.service import state_of
from backend.operators.models import Operator, Sector, Stall


def test_seed_once_with_all_roles_and_states(session: Session) -> None:
    accounts = seed(session)
    roles = {a.role for a in accounts}
    assert {r.value for r in Role} - {"consumer_device"} <= roles
    sectors = set(session.exec(select(Operator.sector)).all())
    assert {Sector.market, Sector.fuel_station, Sector.retail, Sector.medical, Sector.optical} <= sectors
    assert session.exec(select(func.count()).select_from(Stall)).one() >= 5
    states = {state_of(i, date.today(), 30) for i in session.exec(select(Instrument)).all()}
    assert {s.value for s in states} == {"valid", "due_soon", "overdue", "failed", "never_verified"}
    before = session.exec(select(func.count()).select_from(Account)).one()
    assert seed(session) == accounts
    assert session.exec(select(func.count()).select_from(Account)).one() == before
