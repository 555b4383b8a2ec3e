"""The map: case points in scope (rounded), county outlines from the geo cache, served gzipped by the app."""

from __future__ import annotations

import gzip
import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from backend.workbench import mapdata
from backend.workbench.render import CONTENT_SECURITY_POLICY
from tests.backend.cases.conftest import Bureaus, file_and_route
from tests.backend.workbench.conftest import wb_login


def test_map_points_follow_scope_and_filters(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case = file_and_route(client, session, headers["filer"])
    wb_login(client, bureaus.county_a)
    page = client.get("/workbench/map?status=routed")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (
        "/workbench/static/leaflet.js?v=" in page.text
        and 'data-points="/workbench/map/points.json?status=routed"' in page.text
    )
    data = client.get("/workbench/map/points.json?status=routed").json()
    point = next(p for p in data["points"] if p["i"] == case.id)
    # 30.2795, 120.1052 rounded to three decimals (about 100 m).
    assert (point["x"], point["s"], point["o"]) == (120.105, "routed", False)
    assert round(point["y"], 3) == point["y"] and abs(point["y"] - 30.2795) < 0.001
    assert data["cut"] is False
    assert all(
        p["i"] != case.id for p in client.get("/workbench/map/points.json?status=accepted").json()["points"]
    )
    assert client.get("/workbench/map/points.json?status=nope").status_code == 422
    assert client.get("/workbench/map?status=nope").status_code == 422
    zipped = client.get("/workbench/map/points.json", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and json.loads(zipped.content)["points"]
    wb_login(client, bureaus.county_b)
    assert all(p["i"] != case.id for p in client.get("/workbench/map/points.json").json()["points"])


def test_boundaries_are_the_scopes_counties_simplified(
    client: TestClient, session: Session, bureaus: Bureaus
) -> None:
    wb_login(client, bureaus.county_a)
    resp = client.get("/workbench/map/boundaries.json", headers={"Accept-Encoding": "identity"})
    assert resp.status_code == 200
    geo = resp.json()
    assert [f["properties"]["code"] for f in geo["features"]] == ["330106"]
    assert geo["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    wb_login(client, bureaus.city)
    city = client.get("/workbench/map/boundaries.json", headers={"Accept-Encoding": "gzip"})
    codes = {
        f["properties"]["code"]
        for f in json.loads(
            gzip.decompress(city.content) if city.content[:2] == b"\x1f\x8b" else city.content
        )["features"]
    }
    assert {"330106", "330102"} <= codes and all(c.startswith("3301") for c in codes)
    # Simplified: the city's outlines are small enough for a browser.
    assert len(mapdata.boundaries_geojson(tuple(sorted(codes)))) < 400_000


def test_the_case_page_has_a_small_map_of_its_county(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case = file_and_route(client, session, headers["filer"])
    wb_login(client, bureaus.city)
    page = client.get(f"/workbench/cases/{case.id}").text
    # The map is drawn by a script file (no inline script); without it the coordinates stay as text.
    assert 'id="case-map"' in page and "/workbench/static/case_map.js?v=" in page
    assert 'data-boundaries="/workbench/map/boundaries.json?county=330106"' in page and "<script>" not in page
    one = client.get("/workbench/map/boundaries.json?county=330106", headers={"Accept-Encoding": "identity"})
    assert [f["properties"]["code"] for f in one.json()["features"]] == ["330106"]
    # Only a county the scope covers, and only a division code.
    wb_login(client, bureaus.county_b)
    refused = client.get("/workbench/map/boundaries.json?county=330106")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert client.get("/workbench/map/boundaries.json?county=x").status_code == 422


def test_map_points_beyond_the_limit_keep_the_newest(
    client: TestClient,
    session: Session,
    bureaus: Bureaus,
    headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    older = file_and_route(client, session, headers["filer"])
    newer = file_and_route(client, session, headers["filer"])
    wb_login(client, bureaus.county_a)
    whole = client.get("/workbench/map/points.json").json()
    assert {older.id, newer.id} <= {p["i"] for p in whole["points"]} and whole["cut"] is False
    monkeypatch.setattr(mapdata, "MAX_POINTS", 1)
    cut = client.get("/workbench/map/points.json").json()
    assert [p["i"] for p in cut["points"]] == [newer.id] and cut["cut"] is True
