"""The demo seed: once, every role, every verification state."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, func, select

from backend.auth.models import Account, Role
from backend.demo import seed
from backend.instruments.models import Instrument
from backend.instruments.service import state_of
from backend.intake.models import AssociationMembership
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
    # The market association has a current member (the market) and a former one, so its reports can be tried.
    members = session.exec(select(AssociationMembership)).all()
    association = session.exec(select(Account).where(Account.username == "association_market")).one()
    assert {m.association_id for m in members} == {association.id} and len(members) == 2
    assert sorted(m.ended_on is None for m in members) == [False, True]
    before = session.exec(select(func.count()).select_from(Account)).one()
    assert seed(session) == accounts
    assert session.exec(select(func.count()).select_from(Account)).one() == before
