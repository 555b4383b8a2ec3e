"""Routing rules 1-6 as pure functions over a synthetic 2x2 block of counties (see geo_testdata)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from geo import (
    MAX_ACCURACY_M,
    BoundaryIndex,
    InvalidCoordinateError,
    InvalidDistanceError,
    RoutingDecision,
    RoutingRule,
    check_operator_location,
    geodesic_m,
    operator_mismatch_reason,
)
from tests.geo.geo_testdata import STEP, X0, Y0, feature, rectangle

MID = X0 + STEP
TOP = Y0 + STEP
EAST = X0 + 2 * STEP  # eastern edge of the block


def _assert_reason_texts(decision: RoutingDecision) -> None:
    assert decision.reason.code.isascii() and " " not in decision.reason.code
    assert decision.reason.zh and decision.reason.en
    assert any("\u4e00" <= ch <= "\u9fff" for ch in decision.reason.zh)
    json.dumps(decision.as_dict(), ensure_ascii=False)


def test_rule2_point_inside_a_county(block_index: BoundaryIndex) -> None:
    decision = block_index.route(X0 + 0.05, Y0 + 0.05)
    assert decision.rule is RoutingRule.CONTAINING_COUNTY
    assert (decision.code, decision.name, decision.province_code) == ("420101", "县01", "420000")
    assert not decision.low_confidence
    assert decision.reason.code == "in_county"
    assert "县01（420101）" in decision.reason.zh
    _assert_reason_texts(decision)


def test_rule2_point_on_an_outer_boundary(block_index: BoundaryIndex) -> None:
    decision = block_index.route(X0, Y0 + 0.05)
    assert decision.rule is RoutingRule.CONTAINING_COUNTY
    assert decision.code == "420101"
    assert decision.reason.code == "on_county_boundary"


def test_rule3_shared_border_picks_lowest_code_and_records_the_others(block_index: BoundaryIndex) -> None:
    decision = block_index.route(MID, TOP)  # the corner shared by all four
    assert decision.rule is RoutingRule.SHARED_BORDER
    assert decision.code == "420101"
    assert [c.code for c in decision.candidates] == ["420101", "420102", "420103", "420104"]
    assert decision.reason.code == "shared_border_lowest_code"
    assert decision.low_confidence
    _assert_reason_texts(decision)


def test_rule3_inside_a_tolerated_overlap(geojson_file: Callable[..., Path]) -> None:
    features = [
        feature("420102", rectangle(X0, Y0, MID, TOP)),
        feature("420101", rectangle(MID - 0.00005, Y0, EAST, TOP)),
    ]
    index = BoundaryIndex.from_geojson(geojson_file(features), "code")
    decision = index.route(MID - 0.00002, Y0 + 0.05)
    assert decision.rule is RoutingRule.SHARED_BORDER
    assert decision.reason.code == "overlap_lowest_code"
    assert decision.code == "420101"


def test_rule4_nearest_county_within_10_km(block_index: BoundaryIndex) -> None:
    lon, lat = EAST + 0.05, Y0 + 0.05  # ~4.8 km east of 420102
    decision = block_index.route(lon, lat)
    assert decision.rule is RoutingRule.NEAREST_COUNTY
    assert decision.code == "420102"
    assert decision.low_confidence
    assert decision.distance_m == pytest.approx(geodesic_m(lon, lat, EAST, lat), abs=1.0)
    assert decision.reason.code == "nearest_county"
    _assert_reason_texts(decision)


def test_rule4_tie_goes_to_lowest_code(block_index: BoundaryIndex) -> None:
    decision = block_index.route(EAST + 0.03, TOP)  # equidistant from 420102 and 420104
    assert decision.rule is RoutingRule.NEAREST_COUNTY
    assert decision.code == "420102"
    assert [c.code for c in decision.candidates[:2]] == ["420102", "420104"]
    assert decision.candidates[0].distance_m == pytest.approx(decision.candidates[1].distance_m, abs=0.01)


def test_rule4_limit_is_a_parameter(block_index: BoundaryIndex) -> None:
    decision = block_index.route(EAST + 0.05, Y0 + 0.05, nearest_max_m=3_000)
    assert decision.rule is RoutingRule.UNROUTABLE


def test_rule4_is_geodesic_at_the_limit(block_index: BoundaryIndex) -> None:
    lat = Y0 + 0.05
    one_degree_m = geodesic_m(EAST, lat, EAST + 1.0, lat)
    just_inside = EAST + 9_990 / one_degree_m
    just_outside = EAST + 10_010 / one_degree_m
    assert block_index.route(just_inside, lat).rule is RoutingRule.NEAREST_COUNTY
    assert block_index.route(just_outside, lat).rule is RoutingRule.UNROUTABLE


def test_rule5_unroutable_with_a_province_guess(block_index: BoundaryIndex) -> None:
    decision = block_index.route(EAST + 0.3, Y0 + 0.05)  # ~29 km away
    assert decision.rule is RoutingRule.UNROUTABLE
    assert decision.code is None
    assert decision.province_code == "420000"
    assert decision.reason.code == "unroutable_province_guess"
    _assert_reason_texts(decision)


def test_rule5_unroutable_without_a_guess(block_index: BoundaryIndex) -> None:
    decision = block_index.route(2.35, 48.85)
    assert (decision.rule, decision.code, decision.province_code) == (RoutingRule.UNROUTABLE, None, None)
    assert decision.reason.code == "unroutable"
    assert decision.candidates == ()


def test_rule6_accuracy_circle_across_a_border(block_index: BoundaryIndex) -> None:
    decision = block_index.route(MID + 0.001, Y0 + 0.05, accuracy_m=500)  # ~96 m east of the border
    assert decision.rule is RoutingRule.ACCURACY_OVERLAP
    assert decision.code == "420102"
    assert decision.low_confidence
    shares = [c.overlap_share for c in decision.candidates]
    assert [c.code for c in decision.candidates] == ["420102", "420101"]
    assert shares[0] is not None and shares[1] is not None
    assert shares[0] > shares[1] > 0.2
    assert sum(s for s in shares if s is not None) == pytest.approx(1.0, abs=0.01)
    assert decision.reason.code == "accuracy_circle_largest_overlap"
    _assert_reason_texts(decision)


def test_rule6_overrides_containment_but_small_circles_do_not(block_index: BoundaryIndex) -> None:
    point = (MID - 0.002, Y0 + 0.05)  # ~190 m west of the border, inside 420101
    assert block_index.route(*point, accuracy_m=100).rule is RoutingRule.CONTAINING_COUNTY
    wide = block_index.route(*point, accuracy_m=5_000)
    assert wide.rule is RoutingRule.ACCURACY_OVERLAP
    assert wide.code == "420101"
    assert block_index.route(*point, accuracy_m=0).rule is RoutingRule.CONTAINING_COUNTY


def test_rule6_circle_partly_outside_every_county(block_index: BoundaryIndex) -> None:
    decision = block_index.route(EAST + 0.001, TOP - 0.001, accuracy_m=1_000)
    assert decision.rule is RoutingRule.ACCURACY_OVERLAP
    assert decision.code == "420102"
    assert sum(c.overlap_share or 0.0 for c in decision.candidates) < 0.5


@pytest.mark.parametrize("accuracy", [-1.0, math.nan, math.inf, MAX_ACCURACY_M + 1, "50"])
def test_bad_accuracy_is_a_value_error(block_index: BoundaryIndex, accuracy: object) -> None:
    with pytest.raises(InvalidDistanceError) as info:
        block_index.route(X0 + 0.05, Y0 + 0.05, accuracy_m=accuracy)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_route_rejects_bad_coordinates(block_index: BoundaryIndex) -> None:
    with pytest.raises(InvalidCoordinateError):
        block_index.route(math.nan, Y0)


def test_route_on_real_data(fast_index: BoundaryIndex) -> None:
    decision = fast_index.route(114.89, 30.39)
    assert (decision.rule, decision.code, decision.name) == (
        RoutingRule.CONTAINING_COUNTY,
        "420704",
        "鄂城区",
    )
    wide = fast_index.route(114.89, 30.39, accuracy_m=20_000)
    assert wide.rule is RoutingRule.ACCURACY_OVERLAP
    assert len(wide.candidates) > 2
    # In the Yellow Sea about 5 km off Qingdao's 市南区, and far out between China and Korea.
    near = fast_index.route(120.45, 36.02)
    assert (near.rule, near.code) == (RoutingRule.NEAREST_COUNTY, "370202")
    assert near.distance_m is not None and 4_000 < near.distance_m < 6_000
    far = fast_index.route(124.5, 35.0)
    assert (far.rule, far.code, far.province_code) == (RoutingRule.UNROUTABLE, None, None)


# --- rule 1 ---------------------------------------------------------------------------------------------


def test_rule1_operator_close_to_geotag() -> None:
    distance, mismatch = check_operator_location((116.3975, 39.9087), (116.3985, 39.9087))
    assert distance == pytest.approx(85.4, abs=1.0)
    assert not mismatch
    assert operator_mismatch_reason(distance).code == "operator_jurisdiction"


def test_rule1_operator_far_from_geotag() -> None:
    check = check_operator_location((116.3975, 39.9087), (116.4075, 39.9087), threshold_m=500)
    assert check.mismatch
    assert check.distance_m > 500
    reason = operator_mismatch_reason(check.distance_m, 500)
    assert reason.code == "location_mismatch"
    assert "500" in reason.zh and "500" in reason.en


def test_rule1_threshold_is_a_parameter() -> None:
    assert check_operator_location((116.0, 39.0), (116.0, 39.001), threshold_m=200).distance_m < 200
    assert check_operator_location((116.0, 39.0), (116.0, 39.01), threshold_m=200).mismatch


@pytest.mark.parametrize(
    ("operator", "point", "threshold", "error"),
    [
        ((116.0, 39.0), (116.0, math.nan), 500.0, InvalidCoordinateError),
        ((200.0, 39.0), (116.0, 39.0), 500.0, InvalidCoordinateError),
        ((116.0, 39.0), (116.0, 39.0), -1.0, InvalidDistanceError),
        ((116.0, 39.0), (116.0, 39.0), math.inf, InvalidDistanceError),
    ],
)
def test_rule1_bad_input(
    operator: tuple[float, float], point: tuple[float, float], threshold: float, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_operator_location(operator, point, threshold)
