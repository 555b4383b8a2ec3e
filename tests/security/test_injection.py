"""SQL injection through every query parameter of every listing, enumerated from the OpenAPI document.

Each GET operation with query parameters is called first plainly (as the first of several roles the endpoint
serves), then once per parameter and hostile value. Every answer must be a 4xx or a normal result (never a
5xx), a filtered listing never holds more than the unfiltered one, and the database is unchanged afterwards:
no table lost, no row added or removed outside the tables reads legitimately write (the audit log records
staff reads of non-public data).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select
from sqlmodel import Session

import backend.models  # noqa: F401 - every table in the metadata
from backend.auth.models import Role
from backend.config import get_settings
from backend.db import metadata, utcnow
from backend.exchange.models import FeedField
from backend.exchange.schemas import ApiKeyCreate
from backend.exchange.service import create_key
from tests.factories import (
    COUNTY_A,
    complaint_json,
    login,
    make_account,
    make_operator,
    make_record,
    post_complaint,
    scope_of,
)

PAYLOADS = [
    "' OR '1'='1",
    "1; DROP TABLE account; --",
    "') UNION SELECT password_hash FROM account --",
    "330106' --",
    "name DESC; SELECT pg_sleep(5)",
    "\x00",
    "%",
    "_",
    "-1",
    "99999999999999999999999",
    "NaN",
]
#: Reads that legitimately write: staff reads of non-public data are audited, partner reads are logged, and
#: reading the exchange feed captures the changes made since the last read into it.
READ_SIDE_EFFECT_TABLES = {
    "audit_entry",
    "audit_head",
    "exchange_read_log",
    "exchange_feed_entry",
    "exchange_capture_mark",
}


def _counts(session: Session) -> dict[str, int]:
    present = set(inspect(session.connection()).get_table_names())
    return {
        table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
        for table in metadata.sorted_tables
        if table.name in present
    }


def _operations(client: TestClient) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    doc = client.get("/openapi.json").json()
    found = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        if not op:
            continue
        params = op.get("parameters", [])
        query = [p for p in params if p["in"] == "query"]
        if query:
            found.append((path, query, [p for p in params if p["in"] == "path"]))
    return found


def test_every_listing_parameter_resists_sql_injection(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "public_search_rate", "100000/minute")
    today = date.today()
    admin = make_account(session, Role.admin)
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    make_record(session, operator)
    operator_user = make_account(session, Role.operator, operator_id=operator.id)
    supervisor = make_account(
        session, Role.supervisor, COUNTY_A, term=(today - timedelta(days=1), today + timedelta(days=300))
    )
    device = make_account(session, Role.consumer_device)
    department = make_account(session, Role.department, COUNTY_A)
    institution = make_account(session, Role.institution, COUNTY_A)
    association = make_account(session, Role.association, COUNTY_A)
    _key, feed_key = create_key(
        session,
        scope=scope_of(session, admin),
        data=ApiKeyCreate(
            name="injection",
            department="测试部门",
            jurisdiction_codes=[COUNTY_A],
            fields=list(FeedField),
            expires_at=utcnow() + timedelta(days=30),
        ),
    )
    roles = {
        "admin": login(client, admin),
        "staff": login(client, staff),
        "operator": login(client, operator_user),
        "supervisor": login(client, supervisor),
        "device": login(client, device),
        "department": login(client, department),
        "institution": login(client, institution),
        "association": login(client, association),
        "partner key": {"X-Api-Key": feed_key},
        "anonymous": {},
    }
    assert post_complaint(client, roles["device"], complaint_json()).status_code == 201
    path_values = {"operator_id": str(operator.id), "response_format": "json"}
    operations = _operations(client)
    assert len(operations) >= 15, "the OpenAPI document lists the listings"
    before = _counts(session)
    problems: list[str] = []
    checked = 0
    for template, query, path_params in operations:
        path = template
        # An id we have no row for (an intake job) still exercises the query parameters' parsing: 404 is fine.
        fabricated = any(p["name"] not in path_values for p in path_params)
        for p in path_params:
            path = path.replace("{" + p["name"] + "}", path_values.get(p["name"], "1"))
        # Required parameters get a plausible value in the plain call, so it reaches the query.
        base = {p["name"]: _plausible(p) for p in query if p.get("required")}
        plain, headers = None, None
        for role_headers in roles.values():
            resp = client.get(path, params=base, headers=role_headers)
            if resp.status_code not in (401, 403) and (fabricated or resp.status_code != 404):
                plain, headers = resp, role_headers
                break
        if plain is None or headers is None:
            problems.append(f"{template}: no role reaches it")
            continue
        if plain.status_code >= 500:
            problems.append(f"{template} plain: {plain.status_code}")
            continue
        plain_total = _total(plain)
        for param in query:
            for payload in PAYLOADS:
                resp = client.get(path, params={**base, param["name"]: payload}, headers=headers)
                checked += 1
                if resp.status_code >= 500:
                    problems.append(
                        f"{template}?{param['name']}={payload!r}: {resp.status_code} {resp.text[:120]}"
                    )
                elif resp.status_code == 200:
                    total = _total(resp)
                    if plain_total is not None and total is not None and total > plain_total:
                        problems.append(
                            f"{template}?{param['name']}={payload!r}: {total} > {plain_total} rows"
                        )
                elif not 400 <= resp.status_code < 500:
                    problems.append(f"{template}?{param['name']}={payload!r}: {resp.status_code}")
                if resp.status_code >= 400:
                    assert set(resp.json()) == {"error"}, resp.text
    assert not problems, "\n".join(problems)
    assert checked >= 500
    after = _counts(session)
    assert set(after) == set(before), "a table disappeared"
    changed = {
        t: (before[t], after[t]) for t in before if before[t] != after[t] and t not in READ_SIDE_EFFECT_TABLES
    }
    assert not changed, changed
    assert after["account"] == before["account"]


def _plausible(param: dict[str, Any]) -> str:
    name = param["name"]
    return {"lon": "120.1052", "lat": "30.2795", "coord_system": "wgs84"}.get(name, "1")


def _total(resp: Any) -> int | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("total"), int):
        return int(body["total"])
    if isinstance(body, list):
        return len(body)
    return None
