"""A regular lon/lat cell grid that answers most point lookups without touching a polygon.

Each cell is classified once, when the boundary cache is built:

* *pure* — no county border comes near the cell, and its centre lies in county ``i``: the whole cell is in
  county ``i``, so a lookup is an array read. Most of China is pure at the default 1/32°.
* *outside* — no border near, centre in no county: every point of the cell is in no county.
* *mixed* — a border may cross the cell. The cell lists every county that can cover any part of it, and a
  lookup tests only those (with prepared-polygon ``contains_xy``) instead of walking the STRtree.

Why the classification is safe: borders are segmentized to at most half a cell, so each segment's bounding
box, widened by ``_EPS``, spans at most 2×2 cells, and every cell it touches is marked mixed. A pure cell is
therefore at least ``_EPS`` (1e-9°) from every border, far more than the ~1e-14° a query point can be
mis-binned by floating-point rounding, and a point binned into it really lies in its county.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import shapely
from numpy.typing import NDArray

from geo.boundaries import GeometryArray

# 1/32° ≈ 3.5 km: ~3 M cells over China (12 MB as int32); ~3/4 of random points in China hit a pure cell.
# A power-of-two fraction keeps (lon - x0) * inv exact, so build-time and query-time binning agree.
DEFAULT_CELL_DEG: Final = 1.0 / 32.0
MAX_CELLS: Final = 6_000_000
OUTSIDE: Final = -1
# Margin around each border segment, in degrees (~0.1 mm); see the module docstring.
_EPS: Final = 1e-9
_PAD: Final = 2


class CellGrid:
    """Classified cells plus, for mixed cells, CSR lists of candidate polygon indices."""

    __slots__ = ("candidates", "cell", "cells", "inv", "nx", "ny", "offsets", "x0", "y0")

    def __init__(
        self,
        *,
        x0: float,
        y0: float,
        cell: float,
        nx: int,
        ny: int,
        cells: NDArray[np.int32],
        offsets: NDArray[np.int64],
        candidates: NDArray[np.int32],
    ) -> None:
        self.x0 = x0
        self.y0 = y0
        self.cell = cell
        self.inv = 1.0 / cell
        self.nx = nx
        self.ny = ny
        # cells[k] >= 0: pure, the polygon index; OUTSIDE: in no polygon; <= -2: mixed, CSR slot -(v + 2).
        self.cells = cells
        self.offsets = offsets
        self.candidates = candidates

    def value(self, lon: float, lat: float) -> int:
        """Return the raw cell value for a point (OUTSIDE beyond the grid)."""
        fx = (lon - self.x0) * self.inv
        fy = (lat - self.y0) * self.inv
        if fx < 0.0 or fy < 0.0 or fx >= self.nx or fy >= self.ny:
            return OUTSIDE
        return int(self.cells[int(fy) * self.nx + int(fx)])

    def values(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int32]:
        """Vectorised value()."""
        fx = (x - self.x0) * self.inv
        fy = (y - self.y0) * self.inv
        ok = (fx >= 0.0) & (fy >= 0.0) & (fx < self.nx) & (fy < self.ny)
        out = np.full(x.shape, OUTSIDE, dtype=np.int32)
        out[ok] = self.cells[fy[ok].astype(np.int64) * self.nx + fx[ok].astype(np.int64)]
        return out

    def slot_candidates(self, value: int) -> NDArray[np.int32]:
        """Return the candidate polygon indices of a mixed cell given its raw value."""
        slot = -value - 2
        return self.candidates[self.offsets[slot] : self.offsets[slot + 1]]


def build_grid(
    geometries: GeometryArray, *, cell: float = DEFAULT_CELL_DEG, max_cells: int = MAX_CELLS
) -> CellGrid:
    """Classify every cell of a grid covering ``geometries`` (see the module docstring)."""
    n = len(geometries)
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(geometries))
    while ((maxx - minx) / cell + 2 * _PAD + 1) * ((maxy - miny) / cell + 2 * _PAD + 1) > max_cells:
        cell *= 2.0
    inv = 1.0 / cell
    x0 = math.floor(minx * inv) * cell - _PAD * cell
    y0 = math.floor(miny * inv) * cell - _PAD * cell
    nx = math.floor((maxx - x0) * inv) + _PAD + 1
    ny = math.floor((maxy - y0) * inv) + _PAD + 1
    size = nx * ny

    # 1. Cells a border touches: (cell, polygon) keys for the widened box of every border segment.
    borders = shapely.segmentize(shapely.boundary(geometries), cell / 2.0)
    rings, ring_owner = shapely.get_parts(borders, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    same_ring = ring_of[1:] == ring_of[:-1]
    start, end = coords[:-1][same_ring], coords[1:][same_ring]
    owner = ring_owner[ring_of[:-1][same_ring]].astype(np.int64)
    i_lo = np.floor((np.minimum(start[:, 0], end[:, 0]) - _EPS - x0) * inv).astype(np.int64)
    i_hi = np.floor((np.maximum(start[:, 0], end[:, 0]) + _EPS - x0) * inv).astype(np.int64)
    j_lo = np.floor((np.minimum(start[:, 1], end[:, 1]) - _EPS - y0) * inv).astype(np.int64)
    j_hi = np.floor((np.maximum(start[:, 1], end[:, 1]) + _EPS - y0) * inv).astype(np.int64)
    near_keys = _unique(
        np.concatenate([(j * nx + i) * n + owner for i in (i_lo, i_hi) for j in (j_lo, j_hi)])
    )
    mixed = np.zeros(size, dtype=bool)
    mixed[near_keys // n] = True

    # 2. Which polygon holds each cell centre (prepared contains_xy over each polygon's bounding box).
    shapely.prepare(geometries)
    bounds = shapely.bounds(geometries)
    owner_keys: list[NDArray[np.int64]] = []
    for i in range(n):
        i0 = math.floor((bounds[i, 0] - x0) * inv)
        j0 = math.floor((bounds[i, 1] - y0) * inv)
        i1 = math.floor((bounds[i, 2] - x0) * inv)
        j1 = math.floor((bounds[i, 3] - y0) * inv)
        jj, ii = np.mgrid[j0 : j1 + 1, i0 : i1 + 1]
        jj, ii = jj.ravel(), ii.ravel()
        inside = shapely.contains_xy(geometries[i], x0 + (ii + 0.5) * cell, y0 + (jj + 0.5) * cell)
        owner_keys.append((jj[inside].astype(np.int64) * nx + ii[inside]) * n + i)
    owners = np.concatenate(owner_keys) if owner_keys else np.empty(0, dtype=np.int64)
    owner_flat, owner_poly = owners // n, owners % n
    per_cell = np.bincount(owner_flat, minlength=size)

    cells = np.full(size, OUTSIDE, dtype=np.int32)
    pure = ~mixed[owner_flat] & (per_cell[owner_flat] == 1)
    cells[owner_flat[pure]] = owner_poly[pure]
    # A border-free cell claimed by two polygons means they overlap there (within tolerance): treat as mixed.
    # Centre owners of mixed cells are candidates too: a polygon can cover a whole mixed cell without any of
    # its own border nearby, when the border that made the cell mixed belongs to a neighbour.
    extra = owners[~pure]
    cand_keys = _unique(np.concatenate([near_keys, extra]))
    cand_flat = cand_keys // n
    starts = np.flatnonzero(np.diff(cand_flat, prepend=-1))
    slot_cells = cand_flat[starts]
    cells[slot_cells] = -(np.arange(slot_cells.size, dtype=np.int32) + 2)
    offsets = np.append(starts, cand_keys.size).astype(np.int64)
    return CellGrid(
        x0=x0,
        y0=y0,
        cell=cell,
        nx=nx,
        ny=ny,
        cells=cells,
        offsets=offsets,
        candidates=(cand_keys % n).astype(np.int32),
    )


def _unique(values: NDArray[np.int64]) -> NDArray[np.int64]:
    """Sorted unique values; NumPy 2's hash-based np.unique is ~50x slower on millions of int64 keys."""
    ordered = np.sort(values)
    if ordered.size == 0:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    result: NDArray[np.int64] = ordered[keep]
    return result
