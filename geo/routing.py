"""Pure routing rules: which county bureau receives a complaint, and why.

Rule 1 (a known operator's registered jurisdiction wins) happens in the backend, which knows operators; this
module only measures whether the geotag is suspiciously far from the operator (``check_operator_location``).
Rules 2-6 turn a WGS-84 geotag into a county code (``route_point``):

2. the county whose polygon contains the point;
3. a point on a shared border (or inside an overlap of the data) → the lowest code, others recorded;
4. a point in no polygon → the nearest county within ``nearest_max_m`` (10 km), measured geodesically;
5. otherwise unroutable: no code; the caller sends it to provincial triage, with a province guess if any
   county lies within ``province_guess_max_m``;
6. when an accuracy radius is given and its circle spans several counties → the county with the largest
   overlap area, flagged low confidence. It is checked first, since a vague fix near a border says little
   about which side the complainant stood on.

``low_confidence`` is set whenever the code is not the single county that contains the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, NamedTuple, Protocol

import numpy as np
import shapely
from shapely.errors import GEOSException

from geo.boundaries import GeometryArray
from geo.codes import province_code
from geo.coords import validate_lonlat
from geo.errors import InvalidDistanceError
from geo.geodesy import aeqd_forward, aeqd_inverse, geodesic_m, search_box


class CountyIndex(Protocol):
    """What routing reads of a county index (``geo.index.BoundaryIndex``), so routing does not import it."""

    @property
    def codes(self) -> tuple[str, ...]:
        """Every county code, ascending."""
        ...

    @property
    def geometries(self) -> GeometryArray:
        """County MultiPolygons aligned with ``codes``."""
        ...

    @property
    def tree(self) -> shapely.STRtree:
        """The STRtree over ``geometries``."""
        ...

    def name_of(self, index: int) -> str | None:
        """The county name at a position."""
        ...

    def covering(self, lon: float, lat: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(interior hits, boundary hits) for a point."""
        ...


DEFAULT_NEAREST_MAX_M: Final = 10_000.0
DEFAULT_PROVINCE_GUESS_MAX_M: Final = 50_000.0
DEFAULT_MISMATCH_THRESHOLD_M: Final = 500.0
# Phones report accuracy circles of a few metres to a few kilometres; beyond 100 km the value is garbage and
# the circle would span whole provinces.
MAX_ACCURACY_M: Final = 100_000.0
# Overlap shares below this fraction of the circle are numerical dust where two counties share an edge.
_MIN_OVERLAP_SHARE: Final = 1e-6
# Slack for the projected pre-selection of nearest counties before the geodesic check (sphere vs ellipsoid).
_APPROX_SLACK: Final = 1.01
_CIRCLE_QUAD_SEGS: Final = 32


class RoutingRule(IntEnum):
    """The numbered routing rules of the routing design."""

    OPERATOR_JURISDICTION = 1
    CONTAINING_COUNTY = 2
    SHARED_BORDER = 3
    NEAREST_COUNTY = 4
    UNROUTABLE = 5
    ACCURACY_OVERLAP = 6


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a decision was taken: a short machine code plus a sentence in Simplified Chinese and English."""

    code: str
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A county that was considered, with its distance (rule 4) or share of the accuracy circle (rule 6)."""

    code: str
    name: str | None
    distance_m: float | None = None
    overlap_share: float | None = None


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Outcome of rules 2-6; ``code`` is None only for rule 5 (province triage)."""

    code: str | None
    name: str | None
    rule: RoutingRule
    reason: Reason
    candidates: tuple[Candidate, ...]
    low_confidence: bool
    province_code: str | None
    distance_m: float | None

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict (for task payloads and the case's routing record)."""
        return {
            "code": self.code,
            "name": self.name,
            "rule": int(self.rule),
            "reason": {"code": self.reason.code, "zh": self.reason.zh, "en": self.reason.en},
            "candidates": [
                {"code": c.code, "name": c.name, "distance_m": c.distance_m, "overlap_share": c.overlap_share}
                for c in self.candidates
            ],
            "low_confidence": self.low_confidence,
            "province_code": self.province_code,
            "distance_m": self.distance_m,
        }


class OperatorLocationCheck(NamedTuple):
    """Rule 1 check: geodesic distance between operator and geotag, and whether it exceeds the threshold."""

    distance_m: float
    mismatch: bool


def validate_distance(value: object, name: str, *, maximum: float = math.inf) -> float:
    """Return ``value`` as a float in [0, maximum], or raise InvalidDistanceError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidDistanceError(
            f"{name} must be a number of metres, got {type(value).__name__}",
            f"{name} 必须是以米为单位的数值",
        )
    result = float(value)
    if not math.isfinite(result) or result < 0.0 or result > maximum:
        raise InvalidDistanceError(
            f"{name} must be finite and between 0 and {maximum:g} m, got {result!r}",
            f"{name} 必须是 0 到 {maximum:g} 米之间的有限数值，实际为 {result!r}",
        )
    return result


def check_operator_location(
    operator_lonlat: tuple[float, float],
    point_lonlat: tuple[float, float],
    threshold_m: float = DEFAULT_MISMATCH_THRESHOLD_M,
) -> OperatorLocationCheck:
    """Return the geodesic distance operator↔geotag (WGS-84) and whether it exceeds ``threshold_m``."""
    threshold = validate_distance(threshold_m, "threshold_m")
    op_lon, op_lat = validate_lonlat(*operator_lonlat)
    pt_lon, pt_lat = validate_lonlat(*point_lonlat)
    distance = geodesic_m(op_lon, op_lat, pt_lon, pt_lat)
    return OperatorLocationCheck(distance, distance > threshold)


def operator_mismatch_reason(distance_m: float, threshold_m: float = DEFAULT_MISMATCH_THRESHOLD_M) -> Reason:
    """Return the rule 1 reason for a geotag ``distance_m`` from the operator's registered location."""
    if distance_m > threshold_m:
        return Reason(
            "location_mismatch",
            f"投诉定位与经营者登记位置相距约{distance_m:.0f}米，超过{threshold_m:.0f}米，请工作人员核实。",
            f"The geotag is about {distance_m:.0f} m from the operator's registered location, more than "
            f"{threshold_m:.0f} m; staff should check.",
        )
    return Reason(
        "operator_jurisdiction",
        "已知经营者，按其登记辖区分派。",
        "Known operator: routed to its registered jurisdiction.",
    )


def _label_zh(code: str, name: str | None) -> str:
    return f"{name}（{code}）" if name else code


def _label_en(code: str, name: str | None) -> str:
    return f"{name} ({code})" if name else code


def route_point(
    index: CountyIndex,
    lon: float,
    lat: float,
    accuracy_m: float | None = None,
    *,
    nearest_max_m: float = DEFAULT_NEAREST_MAX_M,
    province_guess_max_m: float = DEFAULT_PROVINCE_GUESS_MAX_M,
) -> RoutingDecision:
    """Apply rules 6, 2, 3, 4, 5 (in that order) to a WGS-84 point with an optional accuracy radius."""
    lon, lat = validate_lonlat(lon, lat)
    accuracy = (
        None if accuracy_m is None else validate_distance(accuracy_m, "accuracy_m", maximum=MAX_ACCURACY_M)
    )
    nearest_max = validate_distance(nearest_max_m, "nearest_max_m")
    guess_max = validate_distance(province_guess_max_m, "province_guess_max_m")

    if accuracy:
        shares = _circle_overlaps(index, lon, lat, accuracy)
        if len(shares) >= 2:
            return _accuracy_decision(index, shares, accuracy)

    interior, boundary = index.covering(lon, lat)
    hits = interior or boundary
    if len(hits) == 1:
        return _containing_decision(index, hits[0], on_boundary=not interior)
    if hits:
        return _shared_border_decision(index, hits, overlap=bool(interior))

    nearest = _nearest(index, lon, lat, nearest_max, confirm=True)
    if nearest:
        return _nearest_decision(index, nearest, nearest_max)
    guess = _nearest(index, lon, lat, guess_max, confirm=False) if guess_max > 0.0 else []
    province = province_code(index.codes[guess[0][0]]) if guess else None
    return _unroutable_decision(province, nearest_max)


def _containing_decision(index: CountyIndex, i: int, *, on_boundary: bool) -> RoutingDecision:
    code, name = index.codes[i], index.name_of(i)
    if on_boundary:
        reason = Reason(
            "on_county_boundary",
            f"坐标位于{_label_zh(code, name)}的外边界上。",
            f"The point lies on the outer boundary of {_label_en(code, name)}.",
        )
    else:
        reason = Reason(
            "in_county",
            f"坐标位于{_label_zh(code, name)}辖区内。",
            f"The point lies inside {_label_en(code, name)}.",
        )
    return RoutingDecision(
        code=code,
        name=name,
        rule=RoutingRule.CONTAINING_COUNTY,
        reason=reason,
        candidates=(Candidate(code, name, distance_m=0.0),),
        low_confidence=False,
        province_code=province_code(code),
        distance_m=0.0,
    )


def _shared_border_decision(index: CountyIndex, hits: tuple[int, ...], *, overlap: bool) -> RoutingDecision:
    # hits are ascending index positions and positions follow code order, so hits[0] is the lowest code.
    chosen = hits[0]
    code, name = index.codes[chosen], index.name_of(chosen)
    all_codes = "、".join(index.codes[h] for h in hits)
    all_codes_en = ", ".join(index.codes[h] for h in hits)
    if overlap:
        reason = Reason(
            "overlap_lowest_code",
            f"坐标位于{len(hits)}个县级辖区（{all_codes}）边界数据的重叠处，按规则选择代码最小的"
            f"{_label_zh(code, name)}。",
            f"The point lies where the boundary data of {len(hits)} counties ({all_codes_en}) overlap; "
            f"chose the lowest code, {_label_en(code, name)}.",
        )
    else:
        reason = Reason(
            "shared_border_lowest_code",
            f"坐标位于{len(hits)}个县级辖区（{all_codes}）的共同边界上，"
            f"按规则选择代码最小的{_label_zh(code, name)}。",
            f"The point lies on the shared border of {len(hits)} counties ({all_codes_en}); "
            f"chose the lowest code, {_label_en(code, name)}.",
        )
    return RoutingDecision(
        code=code,
        name=name,
        rule=RoutingRule.SHARED_BORDER,
        reason=reason,
        candidates=tuple(Candidate(index.codes[h], index.name_of(h), distance_m=0.0) for h in hits),
        low_confidence=True,
        province_code=province_code(code),
        distance_m=0.0,
    )


def _nearest_decision(
    index: CountyIndex, nearest: list[tuple[int, float]], limit_m: float
) -> RoutingDecision:
    chosen, distance = nearest[0]
    code, name = index.codes[chosen], index.name_of(chosen)
    return RoutingDecision(
        code=code,
        name=name,
        rule=RoutingRule.NEAREST_COUNTY,
        reason=Reason(
            "nearest_county",
            f"坐标不在任何县级辖区内；最近的{_label_zh(code, name)}"
            f"相距约{distance:.0f}米（上限{limit_m:.0f}米）。",
            f"The point is in no county; the nearest, {_label_en(code, name)}, "
            f"is about {distance:.0f} m away (limit {limit_m:.0f} m).",
        ),
        candidates=tuple(Candidate(index.codes[i], index.name_of(i), distance_m=d) for i, d in nearest),
        low_confidence=True,
        province_code=province_code(code),
        distance_m=distance,
    )


def _unroutable_decision(province: str | None, limit_m: float) -> RoutingDecision:
    if province is not None:
        reason = Reason(
            "unroutable_province_guess",
            f"坐标不在任何县级辖区内，{limit_m:.0f}米内也没有县级辖区，转省级分拣；推测省份为{province}。",
            f"The point is in no county and none is within {limit_m:.0f} m; send to provincial triage "
            f"(province guess {province}).",
        )
    else:
        reason = Reason(
            "unroutable",
            f"坐标不在任何县级辖区内，{limit_m:.0f}米内也没有县级辖区，转省级分拣。",
            f"The point is in no county and none is within {limit_m:.0f} m; send to provincial triage.",
        )
    return RoutingDecision(
        code=None,
        name=None,
        rule=RoutingRule.UNROUTABLE,
        reason=reason,
        candidates=(),
        low_confidence=True,
        province_code=province,
        distance_m=None,
    )


def _accuracy_decision(
    index: CountyIndex, shares: list[tuple[int, float]], radius_m: float
) -> RoutingDecision:
    chosen, share = shares[0]
    code, name = index.codes[chosen], index.name_of(chosen)
    return RoutingDecision(
        code=code,
        name=name,
        rule=RoutingRule.ACCURACY_OVERLAP,
        reason=Reason(
            "accuracy_circle_largest_overlap",
            f"定位精度圈（半径{radius_m:.0f}米）跨越{len(shares)}个县级辖区，选择重叠面积最大的"
            f"{_label_zh(code, name)}（约占{share:.0%}），置信度低。",
            f"The accuracy circle (radius {radius_m:.0f} m) spans {len(shares)} counties; chose "
            f"{_label_en(code, name)}, which has the largest overlap (about {share:.0%}); low confidence.",
        ),
        candidates=tuple(Candidate(index.codes[i], index.name_of(i), overlap_share=s) for i, s in shares),
        low_confidence=True,
        province_code=province_code(code),
        distance_m=None,
    )


def _circle_overlaps(index: CountyIndex, lon: float, lat: float, radius_m: float) -> list[tuple[int, float]]:
    """Counties meeting the accuracy circle as (position, share of the circle's area), largest first."""
    box = shapely.box(*search_box(lon, lat, radius_m))
    candidates = np.sort(index.tree.query(box))
    if candidates.size == 0:
        return []
    # Clip to the search box first so the projection only touches vertices near the point.
    local = shapely.intersection(index.geometries[candidates], box)
    projected = shapely.transform(local, lambda xy: aeqd_forward(lon, lat, xy))
    circle = shapely.Point(0.0, 0.0).buffer(radius_m, quad_segs=_CIRCLE_QUAD_SEGS)
    try:
        areas = shapely.area(shapely.intersection(projected, circle))
    except GEOSException:
        # Projection can pinch a sliver into an invalid ring; repairing it changes the area negligibly.
        areas = shapely.area(shapely.intersection(shapely.make_valid(projected), circle))
    shares = areas / circle.area
    found = [(int(i), float(s)) for i, s in zip(candidates.tolist(), shares.tolist(), strict=True)]
    found = [(i, s) for i, s in found if s > _MIN_OVERLAP_SHARE]
    found.sort(key=lambda item: (-item[1], item[0]))
    return found


def _nearest(
    index: CountyIndex, lon: float, lat: float, max_m: float, *, confirm: bool
) -> list[tuple[int, float]]:
    """Counties within ``max_m`` of the point as (position, metres), nearest first.

    Candidates are ranked by distance in the local projection; with ``confirm`` each one's nearest point is
    taken back to lon/lat and its distance re-measured geodesically, and only those within ``max_m`` kept.
    """
    bounds = search_box(lon, lat, max_m)
    candidates = np.sort(index.tree.query(shapely.box(*bounds)))
    if candidates.size == 0:
        return []
    # clip_by_rect may leave an invalid ring, which distance() does not care about; the box holds the whole
    # search circle, so clipping never removes the nearest point.
    local = shapely.clip_by_rect(index.geometries[candidates], *bounds)
    projected = shapely.transform(local, lambda xy: aeqd_forward(lon, lat, xy))
    origin = shapely.Point(0.0, 0.0)
    approx = shapely.distance(origin, projected)
    keep = np.flatnonzero(np.isfinite(approx) & (approx <= max_m * _APPROX_SLACK + 1.0))
    if not confirm:
        ranked = [(int(candidates[k]), float(approx[k])) for k in keep]
        ranked.sort(key=lambda item: (item[1], item[0]))
        return ranked
    results: list[tuple[int, float]] = []
    for k in keep.tolist():
        line = shapely.shortest_line(origin, projected[k])
        near_lon, near_lat = aeqd_inverse(lon, lat, shapely.get_coordinates(line)[1:2])[0]
        distance = geodesic_m(lon, lat, float(near_lon), float(near_lat))
        if distance <= max_m:
            results.append((int(candidates[k]), distance))
    # Ties (a point equidistant from two counties) go to the lowest code; round so float noise cannot decide.
    results.sort(key=lambda item: (round(item[1], 3), item[0]))
    return results
