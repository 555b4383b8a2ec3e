"""Coordinate systems used by Chinese map providers: WGS-84, GCJ-02 and BD-09.

GCJ-02 is WGS-84 plus a deliberately obfuscated offset of a few hundred metres (Amap, Tencent, Apple in
China); BD-09 is a further Baidu-specific twist on GCJ-02. Neither has a closed-form inverse, so the inverses
here iterate the forward transform until the residual is below ``INVERSE_TOLERANCE_DEG`` (about 0.1 mm),
far better than the 1 m routing needs. Outside the conventional "China box" all three coincide, as in
eviltransform, because the offset is only applied to coordinates inside China.

Every function takes and returns ``(lon, lat)`` in degrees, longitude first.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo.errors import InvalidCoordinateError, UnknownCoordSystemError

FloatArray = NDArray[np.float64]

# Krasovsky 1940 ellipsoid, which the GCJ-02 algorithm is built on.
_A: Final = 6378245.0
_EE: Final = 0.00669342162296594323
_X_PI: Final = math.pi * 3000.0 / 180.0
# The de-facto standard "out of China" box used by eviltransform and most ports; a point outside it is
# not offset by GCJ-02 providers.
_CHINA_LON_MIN: Final = 72.004
_CHINA_LON_MAX: Final = 137.8347
_CHINA_LAT_MIN: Final = 0.8293
_CHINA_LAT_MAX: Final = 55.8271

INVERSE_TOLERANCE_DEG: Final = 1e-9
# The fixed-point iterations contract by a factor of ~1e-3 per step, so this cap is never reached in
# practice; it only bounds the work for pathological input.
_MAX_ITERATIONS: Final = 30


class CoordSystem(StrEnum):
    """Coordinate system of an incoming geotag."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


_SYSTEM_ALIASES: Final[dict[str, CoordSystem]] = {
    "wgs84": CoordSystem.WGS84,
    "epsg4326": CoordSystem.WGS84,
    "gcj02": CoordSystem.GCJ02,
    "bd09": CoordSystem.BD09,
    "bd09ll": CoordSystem.BD09,
}


def parse_coord_system(value: CoordSystem | str) -> CoordSystem:
    """Return the CoordSystem for a name such as "wgs84", "GCJ-02" or "bd09ll"."""
    if isinstance(value, CoordSystem):
        return value
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "").replace("_", "").replace(":", "")
        system = _SYSTEM_ALIASES.get(key)
        if system is not None:
            return system
    names = ", ".join(s.value for s in CoordSystem)
    raise UnknownCoordSystemError(
        f"unknown coordinate system {value!r}; expected one of: {names}",
        f"不支持的坐标系 {value!r}，可选：{names}",
    )


def validate_lonlat(lon: object, lat: object) -> tuple[float, float]:
    """Return (lon, lat) as floats; raise InvalidCoordinateError for non-numbers, NaN, inf, out-of-range."""
    # Fast path for the common case; NaN and inf fail these comparisons and fall through to the full checks.
    if type(lon) is float and type(lat) is float and -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0:
        return lon, lat
    lon_f = _as_real(lon, "longitude", "经度")
    lat_f = _as_real(lat, "latitude", "纬度")
    if not -180.0 <= lon_f <= 180.0:
        raise InvalidCoordinateError(
            f"longitude {lon_f!r} is outside [-180, 180]",
            f"经度 {lon_f!r} 超出 [-180, 180] 范围",
            code="longitude_out_of_range",
        )
    if not -90.0 <= lat_f <= 90.0:
        raise InvalidCoordinateError(
            f"latitude {lat_f!r} is outside [-90, 90]",
            f"纬度 {lat_f!r} 超出 [-90, 90] 范围",
            code="latitude_out_of_range",
        )
    return lon_f, lat_f


def _as_real(value: object, name: str, name_zh: str) -> float:
    # bool is an int subclass; a JSON true sneaking in as a coordinate is a client bug, not 1.0 degrees.
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidCoordinateError(
            f"{name} must be a number, got {type(value).__name__}",
            f"{name_zh}必须是数字，实际为 {type(value).__name__}",
            code=f"{name}_not_a_number",
        )
    result = float(value)
    if not math.isfinite(result):
        raise InvalidCoordinateError(
            f"{name} must be finite, got {result!r}",
            f"{name_zh}必须是有限数值，实际为 {result!r}",
            code=f"{name}_not_finite",
        )
    return result


def validate_lonlat_arrays(lons: ArrayLike, lats: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return 1-D float64 copies of lons/lats; raise InvalidCoordinateError naming the first bad element."""
    try:
        x = np.atleast_1d(np.asarray(lons, dtype=np.float64))
        y = np.atleast_1d(np.asarray(lats, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinateError(
            f"coordinates must be numeric arrays: {exc}",
            "坐标必须是数值数组",
            code="coordinates_not_numeric",
        ) from exc
    if x.ndim != 1 or x.shape != y.shape:
        raise InvalidCoordinateError(
            f"lons and lats must be 1-D arrays of equal length, got shapes {x.shape} and {y.shape}",
            f"经度与纬度必须是等长的一维数组，实际形状为 {x.shape} 与 {y.shape}",
            code="coordinates_shape_mismatch",
        )
    bad = ~(np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidCoordinateError(
            f"{int(bad.sum())} coordinate(s) are NaN, infinite or out of range; "
            f"first at index {first}: ({x[first]!r}, {y[first]!r})",
            f"{int(bad.sum())} 个坐标为 NaN、无穷或超出范围；第一个位于下标 {first}",
            code="coordinates_invalid",
        )
    return x, y


def out_of_china(lon: float, lat: float) -> bool:
    """Return True when (lon, lat) is outside the box in which GCJ-02 applies an offset."""
    return not (_CHINA_LON_MIN <= lon <= _CHINA_LON_MAX and _CHINA_LAT_MIN <= lat <= _CHINA_LAT_MAX)


def _out_of_china_np(lon: FloatArray, lat: FloatArray) -> NDArray[np.bool_]:
    return ~(
        (lon >= _CHINA_LON_MIN) & (lon <= _CHINA_LON_MAX) & (lat >= _CHINA_LAT_MIN) & (lat <= _CHINA_LAT_MAX)
    )


# --- scalar kernels -------------------------------------------------------------------------------------
# The scalar and NumPy kernels are written out twice on purpose: math.* on floats is ~20x faster than NumPy
# on 0-d arrays, and a test asserts the two agree to the last few ulps.


def _gcj_offset(lon: float, lat: float) -> tuple[float, float]:
    x = lon - 105.0
    y = lat - 35.0
    x_pi = x * math.pi
    y_pi = y * math.pi
    common = (20.0 * math.sin(6.0 * x_pi) + 20.0 * math.sin(2.0 * x_pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
    d_lat += (20.0 * math.sin(y_pi) + 40.0 * math.sin(y_pi / 3.0)) * 2.0 / 3.0
    d_lat += (160.0 * math.sin(y_pi / 12.0) + 320.0 * math.sin(y_pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
    d_lon += (20.0 * math.sin(x_pi) + 40.0 * math.sin(x_pi / 3.0)) * 2.0 / 3.0
    d_lon += (150.0 * math.sin(x_pi / 12.0) + 300.0 * math.sin(x_pi / 30.0)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return d_lon, d_lat


def _gcj_to_bd_raw(lon: float, lat: float) -> tuple[float, float]:
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _bd_to_gcj_approx(lon: float, lat: float) -> tuple[float, float]:
    x = lon - 0.0065
    y = lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.cos(theta), z * math.sin(theta)


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert WGS-84 to GCJ-02 (identity outside China)."""
    lon, lat = validate_lonlat(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    d_lon, d_lat = _gcj_offset(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert GCJ-02 to WGS-84 by fixed-point iteration of the forward offset (identity outside China)."""
    lon, lat = validate_lonlat(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    w_lon, w_lat = lon, lat
    for _ in range(_MAX_ITERATIONS):
        d_lon, d_lat = _gcj_offset(w_lon, w_lat)
        err_lon = lon - (w_lon + d_lon)
        err_lat = lat - (w_lat + d_lat)
        w_lon += err_lon
        w_lat += err_lat
        if abs(err_lon) < INVERSE_TOLERANCE_DEG and abs(err_lat) < INVERSE_TOLERANCE_DEG:
            break
    return w_lon, w_lat


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Convert GCJ-02 to BD-09 (identity outside China)."""
    lon, lat = validate_lonlat(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    return _gcj_to_bd_raw(lon, lat)


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert BD-09 to GCJ-02: the usual closed-form approximation refined until it inverts gcj02_to_bd09."""
    lon, lat = validate_lonlat(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    # The widely copied closed form is only an approximate inverse (errors up to ~1e-6 degrees), so refine it.
    g_lon, g_lat = _bd_to_gcj_approx(lon, lat)
    for _ in range(_MAX_ITERATIONS):
        b_lon, b_lat = _gcj_to_bd_raw(g_lon, g_lat)
        err_lon = lon - b_lon
        err_lat = lat - b_lat
        g_lon += err_lon
        g_lat += err_lat
        if abs(err_lon) < INVERSE_TOLERANCE_DEG and abs(err_lat) < INVERSE_TOLERANCE_DEG:
            break
    return g_lon, g_lat


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Convert WGS-84 to BD-09 via GCJ-02."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert BD-09 to WGS-84 via GCJ-02."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def to_wgs84(lon: float, lat: float, system: CoordSystem | str) -> tuple[float, float]:
    """Convert a validated (lon, lat) in ``system`` to WGS-84."""
    system = parse_coord_system(system)
    if system is CoordSystem.GCJ02:
        return gcj02_to_wgs84(lon, lat)
    if system is CoordSystem.BD09:
        return bd09_to_wgs84(lon, lat)
    return validate_lonlat(lon, lat)


def from_wgs84(lon: float, lat: float, system: CoordSystem | str) -> tuple[float, float]:
    """Convert a validated WGS-84 (lon, lat) to ``system``."""
    system = parse_coord_system(system)
    if system is CoordSystem.GCJ02:
        return wgs84_to_gcj02(lon, lat)
    if system is CoordSystem.BD09:
        return wgs84_to_bd09(lon, lat)
    return validate_lonlat(lon, lat)


# --- vectorised kernels ---------------------------------------------------------------------------------


def _gcj_offset_np(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = lon - 105.0
    y = lat - 35.0
    x_pi = x * np.pi
    y_pi = y * np.pi
    common = (20.0 * np.sin(6.0 * x_pi) + 20.0 * np.sin(2.0 * x_pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x)) + common
    d_lat += (20.0 * np.sin(y_pi) + 40.0 * np.sin(y_pi / 3.0)) * 2.0 / 3.0
    d_lat += (160.0 * np.sin(y_pi / 12.0) + 320.0 * np.sin(y_pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x)) + common
    d_lon += (20.0 * np.sin(x_pi) + 40.0 * np.sin(x_pi / 3.0)) * 2.0 / 3.0
    d_lon += (150.0 * np.sin(x_pi / 12.0) + 300.0 * np.sin(x_pi / 30.0)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return d_lon, d_lat


def _gcj_to_bd_raw_np(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd_to_gcj_approx_np(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = lon - 0.0065
    y = lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _wgs_to_gcj_np(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = ~_out_of_china_np(lon, lat)
    out_lon = lon.copy()
    out_lat = lat.copy()
    d_lon, d_lat = _gcj_offset_np(lon[inside], lat[inside])
    out_lon[inside] += d_lon
    out_lat[inside] += d_lat
    return out_lon, out_lat


def _gcj_to_wgs_np(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    out_lon = lon.copy()
    out_lat = lat.copy()
    # Iterate only the points that have not converged yet, so one slow point does not cost the whole batch.
    active = np.flatnonzero(~_out_of_china_np(lon, lat))
    for _ in range(_MAX_ITERATIONS):
        if active.size == 0:
            break
        w_lon = out_lon[active]
        w_lat = out_lat[active]
        d_lon, d_lat = _gcj_offset_np(w_lon, w_lat)
        err_lon = lon[active] - (w_lon + d_lon)
        err_lat = lat[active] - (w_lat + d_lat)
        out_lon[active] = w_lon + err_lon
        out_lat[active] = w_lat + err_lat
        active = active[
            (np.abs(err_lon) >= INVERSE_TOLERANCE_DEG) | (np.abs(err_lat) >= INVERSE_TOLERANCE_DEG)
        ]
    return out_lon, out_lat


def _gcj_to_bd_np(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = ~_out_of_china_np(lon, lat)
    out_lon = lon.copy()
    out_lat = lat.copy()
    out_lon[inside], out_lat[inside] = _gcj_to_bd_raw_np(lon[inside], lat[inside])
    return out_lon, out_lat


def _bd_to_gcj_np(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    out_lon = lon.copy()
    out_lat = lat.copy()
    active = np.flatnonzero(~_out_of_china_np(lon, lat))
    out_lon[active], out_lat[active] = _bd_to_gcj_approx_np(lon[active], lat[active])
    for _ in range(_MAX_ITERATIONS):
        if active.size == 0:
            break
        g_lon = out_lon[active]
        g_lat = out_lat[active]
        b_lon, b_lat = _gcj_to_bd_raw_np(g_lon, g_lat)
        err_lon = lon[active] - b_lon
        err_lat = lat[active] - b_lat
        out_lon[active] = g_lon + err_lon
        out_lat[active] = g_lat + err_lat
        active = active[
            (np.abs(err_lon) >= INVERSE_TOLERANCE_DEG) | (np.abs(err_lat) >= INVERSE_TOLERANCE_DEG)
        ]
    return out_lon, out_lat


def to_wgs84_many(
    lons: ArrayLike, lats: ArrayLike, system: CoordSystem | str
) -> tuple[FloatArray, FloatArray]:
    """Vectorised to_wgs84: convert arrays of (lon, lat) in ``system`` to WGS-84."""
    system = parse_coord_system(system)
    x, y = validate_lonlat_arrays(lons, lats)
    if system is CoordSystem.GCJ02:
        return _gcj_to_wgs_np(x, y)
    if system is CoordSystem.BD09:
        return _gcj_to_wgs_np(*_bd_to_gcj_np(x, y))
    return x, y


def from_wgs84_many(
    lons: ArrayLike, lats: ArrayLike, system: CoordSystem | str
) -> tuple[FloatArray, FloatArray]:
    """Vectorised from_wgs84: convert arrays of WGS-84 (lon, lat) to ``system``."""
    system = parse_coord_system(system)
    x, y = validate_lonlat_arrays(lons, lats)
    if system is CoordSystem.GCJ02:
        return _wgs_to_gcj_np(x, y)
    if system is CoordSystem.BD09:
        return _gcj_to_bd_np(*_wgs_to_gcj_np(x, y))
    return x, y
