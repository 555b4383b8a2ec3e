"""Coordinate systems: published vectors, round trips, scalar/vector agreement and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import (
    CoordSystem,
    GeoInputError,
    InvalidCoordinateError,
    UnknownCoordSystemError,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    from_wgs84_many,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    geodesic_m,
    out_of_china,
    parse_coord_system,
    to_wgs84,
    to_wgs84_many,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# (wgs_lon, wgs_lat, gcj_lon, gcj_lat) from googollee/eviltransform's test suite (python/test.py and
# go/transform_test.go: Shanghai, Shenzhen, Beijing), which asserts the forward transform to 6 decimals.
EVILTRANSFORM_WGS_GCJ = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),
]

# hujiulong/gcoord test/unit/crs/{WGS84,GCJ02,BD09}.spec.ts: every conversion of [123, 45], checked there
# with toBeCloseTo(x, 5), i.e. |error| < 5e-6°. gcoord's inverses are approximate; ours iterate to ~1e-9°.
GCOORD_123_45 = [
    (CoordSystem.WGS84, CoordSystem.GCJ02, (123.00607541, 45.00197815)),
    (CoordSystem.WGS84, CoordSystem.BD09, (123.0124491, 45.0083293)),
    (CoordSystem.GCJ02, CoordSystem.WGS84, (122.99395597, 44.99804071)),
    (CoordSystem.GCJ02, CoordSystem.BD09, (123.00636499, 45.00636899)),
    (CoordSystem.BD09, CoordSystem.GCJ02, (122.99363304, 44.99365430)),
    (CoordSystem.BD09, CoordSystem.WGS84, (122.98762210, 44.99171540)),
]

_CONVERT = {
    (CoordSystem.WGS84, CoordSystem.GCJ02): wgs84_to_gcj02,
    (CoordSystem.WGS84, CoordSystem.BD09): wgs84_to_bd09,
    (CoordSystem.GCJ02, CoordSystem.WGS84): gcj02_to_wgs84,
    (CoordSystem.GCJ02, CoordSystem.BD09): gcj02_to_bd09,
    (CoordSystem.BD09, CoordSystem.GCJ02): bd09_to_gcj02,
    (CoordSystem.BD09, CoordSystem.WGS84): bd09_to_wgs84,
}

# Mainland China with a margin from the out-of-China box, so an offset never pushes a point across its edge.
china_lon = st.floats(min_value=73.5, max_value=135.0, allow_nan=False)
china_lat = st.floats(min_value=18.0, max_value=53.5, allow_nan=False)
TOLERANCE_DEG = 1e-7  # ~1 cm; the brief asks for better than 1 m


@pytest.mark.parametrize(("wlon", "wlat", "glon", "glat"), EVILTRANSFORM_WGS_GCJ)
def test_wgs84_to_gcj02_matches_eviltransform(wlon: float, wlat: float, glon: float, glat: float) -> None:
    lon, lat = wgs84_to_gcj02(wlon, wlat)
    assert lon == pytest.approx(glon, abs=1e-9)
    assert lat == pytest.approx(glat, abs=1e-9)


@pytest.mark.parametrize(("wlon", "wlat", "glon", "glat"), EVILTRANSFORM_WGS_GCJ)
def test_gcj02_to_wgs84_inverts_eviltransform_vectors_below_a_centimetre(
    wlon: float, wlat: float, glon: float, glat: float
) -> None:
    lon, lat = gcj02_to_wgs84(glon, glat)
    assert geodesic_m(lon, lat, wlon, wlat) < 0.01


@pytest.mark.parametrize(("source", "target", "expected"), GCOORD_123_45)
def test_conversions_match_gcoord(
    source: CoordSystem, target: CoordSystem, expected: tuple[float, float]
) -> None:
    lon, lat = _CONVERT[(source, target)](123.0, 45.0)
    assert lon == pytest.approx(expected[0], abs=5e-6)
    assert lat == pytest.approx(expected[1], abs=5e-6)


def test_outside_china_all_systems_coincide() -> None:
    paris = (2.3522, 48.8566)
    assert out_of_china(*paris)
    for system in CoordSystem:
        assert to_wgs84(*paris, system) == paris
        assert from_wgs84(*paris, system) == paris


def test_inside_china_offset_is_hundreds_of_metres() -> None:
    wgs = (116.3975, 39.9087)
    assert not out_of_china(*wgs)
    assert 100 < geodesic_m(*wgs, *wgs84_to_gcj02(*wgs)) < 1000


@settings(max_examples=200, deadline=None)
@given(china_lon, china_lat)
def test_gcj02_round_trip(lon: float, lat: float) -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert abs(back[0] - lon) < TOLERANCE_DEG
    assert abs(back[1] - lat) < TOLERANCE_DEG
    forward = wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))
    assert abs(forward[0] - lon) < TOLERANCE_DEG
    assert abs(forward[1] - lat) < TOLERANCE_DEG


@settings(max_examples=200, deadline=None)
@given(china_lon, china_lat)
def test_bd09_round_trip(lon: float, lat: float) -> None:
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert abs(back[0] - lon) < TOLERANCE_DEG
    assert abs(back[1] - lat) < TOLERANCE_DEG
    forward = gcj02_to_bd09(*bd09_to_gcj02(lon, lat))
    assert abs(forward[0] - lon) < TOLERANCE_DEG
    assert abs(forward[1] - lat) < TOLERANCE_DEG


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(china_lon, china_lat), min_size=1, max_size=30),
    st.sampled_from(list(CoordSystem)),
)
def test_vectorised_matches_scalar(points: list[tuple[float, float]], system: CoordSystem) -> None:
    lons = np.array([p[0] for p in points])
    lats = np.array([p[1] for p in points])
    to_lon, to_lat = to_wgs84_many(lons, lats, system)
    from_lon, from_lat = from_wgs84_many(lons, lats, system)
    for i, (lon, lat) in enumerate(points):
        # Identical kernels in math and NumPy may differ in the last ulps, never more.
        assert to_wgs84(lon, lat, system) == pytest.approx((to_lon[i], to_lat[i]), abs=1e-11)
        assert from_wgs84(lon, lat, system) == pytest.approx((from_lon[i], from_lat[i]), abs=1e-11)


def test_vectorised_leaves_points_outside_china_alone() -> None:
    lons, lats = to_wgs84_many([2.35, 116.3975], [48.85, 39.9087], "gcj02")
    assert (lons[0], lats[0]) == (2.35, 48.85)
    assert (lons[1], lats[1]) != (116.3975, 39.9087)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("wgs84", CoordSystem.WGS84),
        ("GCJ-02", CoordSystem.GCJ02),
        ("bd09ll", CoordSystem.BD09),
        ("BD_09", "bd09"),
    ],
)
def test_parse_coord_system_accepts_common_spellings(value: str, expected: str) -> None:
    assert parse_coord_system(value) == expected


@pytest.mark.parametrize("value", ["utm", "", "epsg:3857", 4326])
def test_unknown_coord_system_is_a_value_error(value: object) -> None:
    with pytest.raises(UnknownCoordSystemError) as info:
        to_wgs84(116.0, 39.0, value)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert info.value.code == "unknown_coord_system"
    assert "wgs84" in str(info.value)
    with pytest.raises(UnknownCoordSystemError):
        to_wgs84_many([116.0], [39.0], value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lon", "lat", "code"),
    [
        (math.nan, 30.0, "longitude_not_finite"),
        (116.0, math.inf, "latitude_not_finite"),
        (-math.inf, 30.0, "longitude_not_finite"),
        (180.5, 30.0, "longitude_out_of_range"),
        (116.0, -90.01, "latitude_out_of_range"),
        ("116.0", 30.0, "longitude_not_a_number"),
        (116.0, None, "latitude_not_a_number"),
        (True, 30.0, "longitude_not_a_number"),
    ],
)
def test_bad_coordinates_raise_value_errors(lon: object, lat: object, code: str) -> None:
    for system in CoordSystem:
        with pytest.raises(InvalidCoordinateError) as info:
            to_wgs84(lon, lat, system)  # type: ignore[arg-type]
        assert isinstance(info.value, GeoInputError)
        assert isinstance(info.value, ValueError)
        assert info.value.code == code
        assert info.value.message_zh


@pytest.mark.parametrize(
    ("lons", "lats"),
    [
        ([116.0, math.nan], [39.0, 39.0]),
        ([116.0, 200.0], [39.0, 39.0]),
        ([116.0], [39.0, 40.0]),
        ([["a"]], [[1.0]]),
    ],
)
def test_bad_coordinate_arrays_raise_value_errors(lons: object, lats: object) -> None:
    with pytest.raises(InvalidCoordinateError):
        to_wgs84_many(lons, lats, "gcj02")  # type: ignore[arg-type]


def test_bad_array_error_names_the_first_bad_index() -> None:
    with pytest.raises(InvalidCoordinateError, match="index 2"):
        to_wgs84_many([116.0, 117.0, math.inf], [39.0, 39.0, 39.0], "wgs84")
