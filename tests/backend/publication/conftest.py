"""Shared set-up for the publication gate and the untrustworthy list: a county's staff, an operator, records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.audit.service import SYSTEM, Actor
from backend.auth.models import Account, Role
from backend.operators import service as operator_service
from backend.operators.models import Operator, Sector
from backend.operators.schemas import OperatorCreate
from backend.operators.uscc import random_usccs
from backend.records import rating
from backend.records import service as record_service
from backend.records.models import IntegrityRecord
from backend.records.rules import RecordKind
from backend.records.service import bureau_today
from tests.factories import COUNTY_A, COUNTY_B, login, make_account, make_operator, scope_of

_individual_codes = iter(random_usccs(COUNTY_A, 200, seed=11, organisation_type="2"))


@dataclass
class Bureau:
    """County A's author, reviewer and a third colleague; county B's staff next door; an operator in A."""

    author: Account
    reviewer: Account
    colleague: Account
    other_county: Account
    admin: Account
    second_admin: Account
    operator: Operator


@pytest.fixture
def bureau(session: Session) -> Bureau:
    author = make_account(session, Role.staff, COUNTY_A)
    reviewer = make_account(session, Role.staff, COUNTY_A)
    colleague = make_account(session, Role.staff, COUNTY_A)
    other = make_account(session, Role.staff, COUNTY_B)
    admin = make_account(session, Role.admin)
    second_admin = make_account(session, Role.admin)
    operator = make_operator(session, author, name="西溪水产批发部")
    session.commit()
    return Bureau(author, reviewer, colleague, other, admin, second_admin, operator)


@pytest.fixture
def headers(client: TestClient, bureau: Bureau) -> dict[str, dict[str, str]]:
    """Sign-in headers by name: author, reviewer, colleague, other_county, admin, second_admin."""
    return {
        name: login(client, getattr(bureau, name))
        for name in ("author", "reviewer", "colleague", "other_county", "admin", "second_admin")
    }


def record_by(
    session: Session,
    operator: Operator,
    actor: Actor,
    kind: RecordKind | str = RecordKind.COMPLAINT_SUBSTANTIATED,
    *,
    days_ago: int = 30,
    verified: bool = True,
    summary: str = "投诉人李四（电话13912345678）反映少称二两",
) -> IntegrityRecord:
    """A record entered by ``actor`` (verified unless told otherwise)."""
    record = record_service.create(
        session,
        operator=operator,
        kind=kind,
        fact_date=bureau_today() - timedelta(days=days_ago),
        source="staff",
        state="verified" if verified else "reported",
        summary=summary,
        actor=actor,
    )
    session.commit()
    return record


def make_untrustworthy(
    session: Session, operator: Operator, actor: Actor = SYSTEM, *, count: int = 3
) -> list[IntegrityRecord]:
    """Three substantiated complaints (Art. 13(4)) and the re-rating the worker would run: 失信."""
    records = [record_by(session, operator, actor, days_ago=30 + i) for i in range(count)]
    rating.rerate_operator(session, operator.id or 0)
    session.commit()
    return records


def individual_business(
    session: Session, staff: Account, *, holder: str, name: str, **extra: Any
) -> Operator:
    """An individual business (个体工商户, code 92…) whose name contains its holder's name."""
    data = OperatorCreate(
        uscc=next(_individual_codes),
        name=name,
        sector=extra.get("sector", Sector.market),
        address="文三路 1 号",
        legal_representative=holder,
        jurisdiction_code=extra.get("county", COUNTY_A),
        phone="13800138000",
    )
    operator = operator_service.create(session, data=data, scope=scope_of(session, staff))
    session.commit()
    return operator


def publish(
    client: TestClient, record_id: int, requester: dict[str, str], reviewer: dict[str, str]
) -> dict[str, Any]:
    """Request and approve a record's publication through the API."""
    resp = client.post(f"/api/v1/records/{record_id}/publication/request", json={}, headers=requester)
    assert resp.status_code == 201, resp.text
    resp = client.post(
        f"/api/v1/records/{record_id}/publication/approve", json=ALL_CONFIRMED, headers=reviewer
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


ALL_CONFIRMED = {
    "no_state_or_trade_secret": True,
    "no_personal_data": True,
    "no_undisclosed_information_of_other_organs": True,
}


def ids(records: Sequence[IntegrityRecord]) -> list[int]:
    """The records' ids."""
    return [r.id or 0 for r in records]
