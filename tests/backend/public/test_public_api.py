"""The public operator query and profile: search, escaping, paging limits, privacy, caching."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.auth.models import Role
from backend.config import get_settings
from backend.operators.models import Sector
from backend.public.service import MAX_SEARCH_OFFSET
from backend.qr import service as qr_service
from tests.backend.public.conftest import Market
from tests.factories import (
    CITY_A,
    COUNTY_A,
    COUNTY_B,
    OTHER_PROVINCE_COUNTY,
    make_account,
    make_operator,
)

SEARCH = "/api/v1/public/operators"


def _search(client: TestClient, **params: Any) -> tuple[int, dict[str, Any]]:
    resp = client.get(SEARCH, params=params)
    return resp.status_code, resp.json()


@pytest.fixture
def named(session: Session) -> dict[str, int]:
    """Operators with awkward names in two counties of one city and in another province."""
    staff = make_account(session, Role.admin)
    ids = {}
    for name, county, sector in (
        ("100%纯正粮油店", COUNTY_A, Sector.retail),
        ("1000纯正粮油店", COUNTY_A, Sector.retail),
        ("西湖_加油站", COUNTY_A, Sector.fuel_station),
        ("西湖石油加油站", COUNTY_B, Sector.fuel_station),
        ("朝阳加油站", OTHER_PROVINCE_COUNTY, Sector.fuel_station),
        ("停业加油站", COUNTY_A, Sector.fuel_station),
    ):
        ids[name] = make_operator(session, staff, name=name, county=county, sector=sector).id or 0
    from backend.operators.models import Operator

    closed = session.get(Operator, ids["停业加油站"])
    assert closed is not None
    closed.is_active = False
    session.commit()
    return ids


def _names(body: dict[str, Any]) -> set[str]:
    return {item["name"] for item in body["items"]}


def test_search_by_name_within_a_county(client: TestClient, named: dict[str, int]) -> None:
    status, body = _search(client, q="加油站", jurisdiction_code=COUNTY_A)
    assert status == 200 and _names(body) == {"西湖_加油站"} and body["total"] == 1
    item = body["items"][0]
    assert (
        item["sector_name"] == "加油（气）站" and item["jurisdiction_name"] and item["integrity_class_name"]
    )
    assert set(item) == {
        "id",
        "uscc",
        "name",
        "sector",
        "sector_name",
        "address",
        "jurisdiction_code",
        "jurisdiction_name",
        "is_demonstration_unit",
        "integrity_class",
        "integrity_class_name",
    }


def test_a_city_covers_its_counties_and_inactive_operators_are_hidden(
    client: TestClient, named: dict[str, int]
) -> None:
    _status, body = _search(client, q="加油站", jurisdiction_code=CITY_A)
    assert _names(body) == {"西湖_加油站", "西湖石油加油站"}
    _status, body = _search(client, q="加油站", jurisdiction_code=CITY_A, sector="retail")
    assert _names(body) == set()


def test_like_wildcards_are_literal(client: TestClient, named: dict[str, int]) -> None:
    assert _names(_search(client, q="%", jurisdiction_code=COUNTY_A)[1]) == {"100%纯正粮油店"}
    assert _names(_search(client, q="100%", jurisdiction_code=COUNTY_A)[1]) == {"100%纯正粮油店"}
    assert _names(_search(client, q="_", jurisdiction_code=COUNTY_A)[1]) == {"西湖_加油站"}
    assert _search(client, q="\\", jurisdiction_code=COUNTY_A)[1]["items"] == []


def test_exact_code_needs_no_jurisdiction(
    client: TestClient, session: Session, named: dict[str, int]
) -> None:
    from backend.operators.models import Operator

    operator = session.get(Operator, named["朝阳加油站"])
    assert operator is not None
    status, body = _search(client, q=operator.uscc.lower())
    assert status == 200 and _names(body) == {"朝阳加油站"}
    status, body = _search(client, q="加油站")
    assert status == 422 and body["error"]["code"] == "jurisdiction_required"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"jurisdiction_code": "999999", "q": "x"}, "invalid_jurisdiction_code"),
        ({"jurisdiction_code": "33010", "q": "x"}, "validation_error"),
        ({"jurisdiction_code": COUNTY_A, "offset": MAX_SEARCH_OFFSET + 1}, "validation_error"),
        ({"jurisdiction_code": COUNTY_A, "offset": "99999999999999999999999999"}, "validation_error"),
        ({"jurisdiction_code": COUNTY_A, "offset": "1e400"}, "validation_error"),
        ({"jurisdiction_code": COUNTY_A, "offset": -1}, "validation_error"),
        ({"jurisdiction_code": COUNTY_A, "limit": 51}, "validation_error"),
        ({"jurisdiction_code": COUNTY_A, "q": "x" * 101}, "validation_error"),
        ({"jurisdiction_code": COUNTY_A, "sector": "casino"}, "validation_error"),
    ],
)
def test_bad_search_input_is_a_422_never_a_500(client: TestClient, params: dict[str, Any], code: str) -> None:
    status, body = _search(client, **params)
    assert status == 422 and body["error"]["code"] == code


def test_deep_pages_are_empty_not_errors(client: TestClient, named: dict[str, int]) -> None:
    status, body = _search(client, jurisdiction_code=COUNTY_A, offset=MAX_SEARCH_OFFSET, limit=50)
    assert (
        status == 200 and body["items"] == [] and body["total"] == 3 and body["offset"] == MAX_SEARCH_OFFSET
    )


def test_scripts_in_search_terms_are_data(client: TestClient, named: dict[str, int]) -> None:
    resp = client.get(SEARCH, params={"q": "<script>alert(1)</script>", "jurisdiction_code": COUNTY_A})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json()["items"] == []


def test_search_is_rate_limited_and_cacheable(
    client: TestClient, named: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "public_search_rate", "2/minute")
    first = client.get(SEARCH, params={"jurisdiction_code": COUNTY_A})
    assert first.headers["cache-control"] == "public, max-age=60"
    client.get(SEARCH, params={"jurisdiction_code": COUNTY_A})
    third = client.get(SEARCH, params={"jurisdiction_code": COUNTY_A})
    assert third.status_code == 429 and "retry-after" in third.headers


def test_profile_has_the_qr_profile_shape(client: TestClient, market: Market) -> None:
    resp = client.get(f"/api/v1/public/operators/{market.market.id}")
    assert resp.status_code == 200 and resp.headers["cache-control"] == "public, max-age=60"
    body = resp.json()
    scanned = client.get(f"/api/v1/public/qr/{qr_service.code_of(market.market).token}").json()
    assert body == scanned
    assert body["kind"] == "operator" and body["stall"] is None and body["instruments_total"] == 1
    operator = body["operator"]
    assert operator["integrity_class"] == "basically_trustworthy"
    assert (
        operator["integrity_class_name"] == "基本守信" and "五年内" in operator["integrity_class_explanation"]
    )
    english = client.get(f"/api/v1/public/operators/{market.market.id}?lang=en").json()["operator"]
    assert (
        english["sector_name"] == "Farmers' market"
        and english["integrity_class_name"] == "Basically trustworthy"
    )


def test_profile_holds_no_personal_or_contact_data(client: TestClient, market: Market) -> None:
    text = client.get(f"/api/v1/public/operators/{market.market.id}").text
    for secret in ("测试人", "legal_representative", "phone", "13800138000", "张三丰", "lon", "lat"):
        assert secret not in text, secret


def test_inactive_unknown_and_absurd_ids(client: TestClient, session: Session, market: Market) -> None:
    market.market.is_active = False
    session.commit()
    for path, status in (
        (f"/api/v1/public/operators/{market.market.id}", 404),
        ("/api/v1/public/operators/987654321", 404),
        ("/api/v1/public/operators/0", 422),
        (f"/api/v1/public/operators/{2**64}", 422),
        ("/api/v1/public/operators/abc", 422),
    ):
        resp = client.get(path)
        assert resp.status_code == status, path
        assert "error" in resp.json()
