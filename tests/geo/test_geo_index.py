"""Point location: locate() on synthetic and real boundaries, and locate_many() == locate()."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import shapely

from geo import BoundaryIndex, InvalidCoordinateError, to_wgs84
from tests.geo.geo_testdata import STEP, X0, Y0

MID = X0 + STEP  # the shared vertical border of the 2x2 block
TOP = Y0 + STEP  # the shared horizontal border


def test_locate_inside(block_index: BoundaryIndex) -> None:
    result = block_index.locate(X0 + 0.05, Y0 + 0.05)
    assert (result.code, result.name, result.matches, result.on_boundary) == (
        "420101",
        "县01",
        ("420101",),
        False,
    )
    assert result.found
    assert block_index.locate(MID + 0.05, TOP + 0.05).code == "420104"


def test_locate_shared_border_picks_lowest_code(block_index: BoundaryIndex) -> None:
    result = block_index.locate(MID, Y0 + 0.05)
    assert result.code == "420101"
    assert result.matches == ("420101", "420102")
    assert result.on_boundary


def test_locate_corner_of_four_counties(block_index: BoundaryIndex) -> None:
    result = block_index.locate(MID, TOP)
    assert result.code == "420101"
    assert result.matches == ("420101", "420102", "420103", "420104")


def test_locate_outside(block_index: BoundaryIndex) -> None:
    result = block_index.locate(X0 - 1.0, Y0)
    assert not result.found
    assert (result.code, result.index, result.matches) == (None, -1, ())


@pytest.mark.parametrize("bad", [(math.nan, 30.0), (110.0, math.inf), (181.0, 30.0), (110.0, 91.0)])
def test_locate_rejects_bad_coordinates(block_index: BoundaryIndex, bad: tuple[float, float]) -> None:
    with pytest.raises(InvalidCoordinateError):
        block_index.locate(*bad)
    with pytest.raises(InvalidCoordinateError):
        block_index.locate_many([bad[0]], [bad[1]])


def _assert_many_matches_scalar(index: BoundaryIndex, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    many = index.locate_many(lons, lats)
    scalar = np.array([index.locate(float(x), float(y)).index for x, y in zip(lons, lats, strict=True)])
    np.testing.assert_array_equal(many, scalar)
    return many


def test_locate_many_matches_locate_on_block(block_index: BoundaryIndex) -> None:
    rng = np.random.default_rng(7)
    lons = np.concatenate([rng.uniform(X0 - 0.05, MID + 0.15, 500), [MID, MID, X0, MID + STEP, X0 - 1]])
    lats = np.concatenate([rng.uniform(Y0 - 0.05, TOP + 0.15, 500), [Y0 + 0.05, TOP, Y0 + 0.05, TOP, Y0]])
    many = _assert_many_matches_scalar(block_index, lons, lats)
    assert list(block_index.codes_for(many[-5:])) == ["420101", "420101", "420101", "420102", ""]


def test_locate_many_empty_input(block_index: BoundaryIndex) -> None:
    assert block_index.locate_many([], []).shape == (0,)


def test_real_landmarks(fast_index: BoundaryIndex) -> None:
    # WGS-84 coordinates of well-known places and the county-level unit they lie in.
    assert fast_index.locate(116.3975, 39.9087).code == "110101"  # 天安门, 东城区
    assert fast_index.locate(121.4737, 31.2304).code == "310101"  # 人民广场, 黄浦区
    assert fast_index.locate(114.89, 30.39).name == "鄂城区"
    assert (fast_index.locate(113.2644, 23.1291).code or "").startswith("4401")  # 广州 city centre
    assert not fast_index.locate(2.3522, 48.8566).found  # Paris


@pytest.mark.parametrize(
    ("system", "lon", "lat"),
    [
        ("gcj02", 116.397428, 39.90923),  # 天安门 as Amap/Tencent publish it
        ("bd09", 116.404, 39.915),  # 天安门 as Baidu publishes it
    ],
)
def test_map_provider_geotag_is_converted_before_locating(
    fast_index: BoundaryIndex, system: str, lon: float, lat: float
) -> None:
    wgs = to_wgs84(lon, lat, system)
    assert fast_index.locate(*wgs).code == "110101"
    assert abs(wgs[0] - lon) > 0.005  # the conversion moved the point by hundreds of metres


def test_locate_many_matches_locate_on_real_data(fast_index: BoundaryIndex) -> None:
    rng = np.random.default_rng(11)
    lons = rng.uniform(73.0, 135.5, 3000)
    lats = rng.uniform(18.0, 54.0, 3000)
    # Add vertices of real borders: exactly on shared edges, where the rules differ from plain containment.
    vertices = shapely.get_coordinates(fast_index.geometries[:40])[::97]
    lons = np.concatenate([lons, vertices[:, 0]])
    lats = np.concatenate([lats, vertices[:, 1]])
    many = _assert_many_matches_scalar(fast_index, lons, lats)
    assert (many >= 0).mean() > 0.3
    # Every border vertex is covered by at least the polygon it belongs to.
    assert (many[-len(vertices) :] >= 0).all()


def test_locate_many_agrees_with_brute_force(fast_index: BoundaryIndex) -> None:
    rng = np.random.default_rng(3)
    lons = rng.uniform(100.0, 122.0, 20_000)
    lats = rng.uniform(22.0, 42.0, 20_000)
    many = fast_index.locate_many(lons, lats)
    point_idx, geom_idx = fast_index.tree.query(shapely.points(lons, lats), predicate="intersects")
    expected = np.full(lons.size, -1)
    for p, g in zip(point_idx, geom_idx, strict=True):  # the lowest index (= lowest code) wins
        expected[p] = g if expected[p] == -1 else min(expected[p], g)
    np.testing.assert_array_equal(many, expected)


def test_concurrent_first_use_matches_serial(fast_index: BoundaryIndex, fast_cache_path: Path) -> None:
    # A freshly loaded index has no prepared locators yet; threads racing to build them must not corrupt them.
    rng = np.random.default_rng(5)
    lons, lats = rng.uniform(100.0, 122.0, 4000), rng.uniform(22.0, 42.0, 4000)
    expected = fast_index.locate_many(lons, lats)
    fresh = BoundaryIndex.load(fast_cache_path)
    chunks = np.array_split(np.arange(lons.size), 8)

    def work(chunk: np.ndarray) -> list[int]:
        return [fresh.locate(float(lons[i]), float(lats[i])).index for i in chunk]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, chunks))
    np.testing.assert_array_equal(np.concatenate(results), expected)
