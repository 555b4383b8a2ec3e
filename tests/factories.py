"""Typed factories for test data."""

from __future__ import annotations

import itertools
from datetime import date

from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.audit.service import SYSTEM
from backend.auth import service as auth_service
from backend.auth.dependencies import Scope
from backend.auth.models import Account, Role
from backend.common.schemas import LonLat
from backend.jurisdictions.models import Jurisdiction
from backend.operators import service as operator_service
from backend.operators.models import Operator, Sector
from backend.operators.schemas import OperatorCreate
from backend.operators.uscc import random_usccs

PASSWORD = "Test-password-2026"
COUNTY_A = "330106"  # 西湖区, in 杭州市 330100
COUNTY_B = "330102"  # 上城区, also in 杭州市
CITY_A = "330100"
OTHER_PROVINCE_COUNTY = "110105"  # 北京市朝阳区

_counter = itertools.count(1)
_codes = iter(random_usccs("330106", 20000, seed=7))


def next_uscc() -> str:
    """A fresh valid Unified Social Credit Code."""
    return next(_codes)


def make_account(
    session: Session,
    role: Role,
    jurisdiction_code: str | None = None,
    *,
    operator_id: int | None = None,
    username: str | None = None,
    term: tuple[date, date] | None = None,
) -> Account:
    """An account with the shared test password."""
    return auth_service.create_account(
        session,
        actor=SYSTEM,
        username=username or f"{role.value}_{next(_counter)}",
        password=PASSWORD,
        role=role,
        jurisdiction_code=jurisdiction_code,
        operator_id=operator_id,
        term_starts_on=term[0] if term else None,
        term_ends_on=term[1] if term else None,
    )


def scope_of(session: Session, account: Account) -> Scope:
    """The scope of a staff account (or everything, for admins)."""
    if account.jurisdiction_code is None:
        return Scope(account, "/")
    jurisdiction = session.get(Jurisdiction, account.jurisdiction_code)
    assert jurisdiction is not None
    return Scope(account, jurisdiction.path)


def make_operator(
    session: Session,
    staff: Account,
    *,
    county: str = COUNTY_A,
    sector: Sector = Sector.market,
    name: str | None = None,
    location: tuple[float, float] | None = (120.1052, 30.2795),
) -> Operator:
    """An operator registered by ``staff``."""
    data = OperatorCreate(
        uscc=next_uscc(),
        name=name or f"测试经营者{next(_counter)}",
        sector=sector,
        address="测试地址 1 号",
        legal_representative="测试人",
        jurisdiction_code=county,
        location=LonLat(lon=location[0], lat=location[1]) if location else None,
    )
    return operator_service.create(session, data=data, scope=scope_of(session, staff))


def login(client: TestClient, account: Account, password: str = PASSWORD) -> dict[str, str]:
    """Authorization headers for ``account``."""
    resp = client.post("/api/v1/auth/token", data={"username": account.username, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}
