"""Distances on the WGS-84 ellipsoid and a local azimuthal-equidistant projection.

Geodesic distances come from geopy (Karney's algorithm, sub-millimetre). Area and nearest-edge searches run
in a spherical azimuthal-equidistant projection centred on the query point: distances from the centre are
exact on the sphere and distortion within tens of kilometres is far below a per-mille, which is plenty to
rank counties; the winning distance is then confirmed geodesically.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from geopy.distance import geodesic
from numpy.typing import NDArray

from geo.coords import validate_lonlat

FloatArray = NDArray[np.float64]

# IUGG mean Earth radius; the sphere that best matches the ellipsoid's distances on average.
EARTH_RADIUS_M: Final = 6_371_008.8
# Conservative metres-per-degree figures for turning a metric radius into a degree search box: the shortest
# meridian degree (at the equator) and the equatorial parallel degree.
_M_PER_DEG_LAT_MIN: Final = 110_574.0
_M_PER_DEG_LON_EQUATOR: Final = 111_320.0


def geodesic_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Return the WGS-84 geodesic distance in metres between two validated (lon, lat) points."""
    lon1, lat1 = validate_lonlat(lon1, lat1)
    lon2, lat2 = validate_lonlat(lon2, lat2)
    # geopy wants (lat, lon).
    return float(geodesic((lat1, lon1), (lat2, lon2)).meters)


def search_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """Return a lon/lat box (minx, miny, maxx, maxy) surely containing the circle of ``radius_m`` metres."""
    d_lat = radius_m / _M_PER_DEG_LAT_MIN * 1.01
    edge_lat = min(89.9, abs(lat) + d_lat)
    d_lon = min(180.0, radius_m / (_M_PER_DEG_LON_EQUATOR * math.cos(math.radians(edge_lat))) * 1.01)
    return lon - d_lon, max(-90.0, lat - d_lat), lon + d_lon, min(90.0, lat + d_lat)


def aeqd_forward(lon0: float, lat0: float, coords: FloatArray) -> FloatArray:
    """Project an (N, 2) array of lon/lat to metres east/north of (lon0, lat0), azimuthal equidistant."""
    phi0 = math.radians(lat0)
    lam = np.radians(coords[:, 0] - lon0)
    phi = np.radians(coords[:, 1])
    cos_c = np.clip(math.sin(phi0) * np.sin(phi) + math.cos(phi0) * np.cos(phi) * np.cos(lam), -1.0, 1.0)
    c = np.arccos(cos_c)
    sin_c = np.sin(c)
    # k -> 1 as c -> 0; the guarded division avoids 0/0 at the centre itself.
    k = np.where(sin_c > 1e-15, c / np.where(sin_c > 1e-15, sin_c, 1.0), 1.0)
    x = EARTH_RADIUS_M * k * np.cos(phi) * np.sin(lam)
    y = EARTH_RADIUS_M * k * (math.cos(phi0) * np.sin(phi) - math.sin(phi0) * np.cos(phi) * np.cos(lam))
    return np.column_stack((x, y))


def aeqd_inverse(lon0: float, lat0: float, xy: FloatArray) -> FloatArray:
    """Inverse of aeqd_forward: (N, 2) metres east/north back to lon/lat."""
    phi0 = math.radians(lat0)
    x = xy[:, 0]
    y = xy[:, 1]
    rho = np.hypot(x, y)
    c = rho / EARTH_RADIUS_M
    sin_c = np.sin(c)
    cos_c = np.cos(c)
    safe_rho = np.where(rho > 0.0, rho, 1.0)
    phi = np.where(
        rho > 0.0,
        np.arcsin(np.clip(cos_c * math.sin(phi0) + y * sin_c * math.cos(phi0) / safe_rho, -1.0, 1.0)),
        phi0,
    )
    lam = np.arctan2(x * sin_c, rho * math.cos(phi0) * cos_c - y * math.sin(phi0) * sin_c)
    lon = (lon0 + np.degrees(np.where(rho > 0.0, lam, 0.0)) + 180.0) % 360.0 - 180.0
    return np.column_stack((lon, np.degrees(phi)))
