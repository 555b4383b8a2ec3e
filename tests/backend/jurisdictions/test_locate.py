"""The locate endpoint and the geocoder."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from backend.config import get_settings
from backend.jurisdictions import geocoder
from geo import from_wgs84

# 西湖区 (330106): a point by the West Lake, in WGS-84.
XIHU = (120.1300, 30.2590)


def test_locate_wgs84(client: TestClient) -> None:
    resp = client.get("/api/v1/jurisdictions/locate", params={"lon": XIHU[0], "lat": XIHU[1]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["code"] == "330106"
    assert (body["city"], body["province"]) == ("杭州市", "浙江省")
    assert body["bureau_name"] == "西湖区市场监督管理局"
    assert body["rule"] == 2


def test_locate_converts_gcj02_and_bd09(client: TestClient) -> None:
    for system in ("gcj02", "bd09"):
        lon, lat = from_wgs84(XIHU[0], XIHU[1], system)
        body = client.get(
            "/api/v1/jurisdictions/locate", params={"lon": lon, "lat": lat, "coord_system": system}
        ).json()
        assert body["code"] == "330106"
        assert abs(body["wgs84"]["lon"] - XIHU[0]) < 1e-5 and abs(body["wgs84"]["lat"] - XIHU[1]) < 1e-5


def test_offshore_point_goes_to_province_triage(client: TestClient) -> None:
    body = client.get("/api/v1/jurisdictions/locate", params={"lon": 124.5, "lat": 29.0}).json()
    assert body["code"] is None and body["rule"] == 5


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"lon": 200, "lat": 30}, "invalid_coordinates"),
        ({"lon": "nan", "lat": 30}, "invalid_coordinates"),
        ({"lon": "inf", "lat": 30}, "invalid_coordinates"),
        ({"lon": 120, "lat": 30, "coord_system": "mars"}, "invalid_coord_system"),
        ({"lon": "east", "lat": 30}, "validation_error"),
    ],
)
def test_bad_points_are_422(client: TestClient, params: dict[str, object], code: str) -> None:
    resp = client.get("/api/v1/jurisdictions/locate", params=params)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == code


class _Nominatim(BaseHTTPRequestHandler):
    """A stand-in Nominatim: one known address."""

    def do_GET(self) -> None:
        found = "西湖" in self.path or "%E8%A5%BF%E6%B9%96" in self.path
        body = json.dumps(
            [
                {
                    "lat": "30.259",
                    "lon": "120.13",
                    "display_name": "西湖, 杭州市, 浙江省",
                    "place_id": 1,
                    "boundingbox": ["30.25", "30.26", "120.12", "120.14"],
                }
            ]
            if found
            else []
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def nominatim(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Nominatim)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(get_settings(), "geocoder_url", url)
    yield url
    server.shutdown()


def test_geocoder_against_stand_in(nominatim: str) -> None:
    point = geocoder.geocode("杭州市西湖")
    assert point is not None and abs(point.lon - 120.13) < 1e-9 and "西湖" in point.display_name
    assert geocoder.geocode("nowhere at all") is None


def test_geocoder_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "geocoder_url", None)
    with pytest.raises(geocoder.GeocoderUnavailable):
        geocoder.geocode("西湖")
