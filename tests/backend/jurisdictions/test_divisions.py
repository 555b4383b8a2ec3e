"""The GB/T 2260 division tree read from the maintained code table."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from backend.jurisdictions import divisions
from backend.jurisdictions.divisions import (
    Division,
    UnknownDivision,
    ancestors,
    children,
    data_package_version,
    get_division,
    is_within,
    level_of,
    load_divisions,
)


def test_counts_per_level_are_those_of_the_mainland() -> None:
    counts = Counter(d.level for d in load_divisions())
    # 22 provinces + 5 autonomous regions + 4 municipalities; Hong Kong, Macau and Taiwan are excluded.
    assert counts["province"] == 31
    assert 330 <= counts["prefecture"] <= 336
    assert 2_820 <= counts["county"] <= 2_870


def test_codes_are_unique_six_digit_and_sorted() -> None:
    codes = [d.code for d in load_divisions()]
    assert codes == sorted(set(codes))
    assert all(len(c) == 6 and c.isdigit() for c in codes)


def test_every_non_province_has_a_parent_in_the_table_and_a_province_at_the_top() -> None:
    by_code = {d.code: d for d in load_divisions()}
    for d in by_code.values():
        if d.level == "province":
            assert d.parent_code is None
            continue
        assert d.parent_code in by_code, d
        chain = ancestors(d.code)
        assert chain[0].level == "province"
        assert d.code.startswith(chain[0].code[:2])


def test_no_hong_kong_macau_or_taiwan() -> None:
    assert not [d for d in load_divisions() if d.code[:2] in {"71", "81", "82"}]


@pytest.mark.parametrize(
    ("code", "name", "parent"),
    [
        # 2023: 撤销米林县、错那县，设立县级米林市、错那市 (Tibet).
        ("540481", "米林市", "540400"),
        ("540581", "错那市", "540500"),
        # 2023: 新疆生产建设兵团 白杨市, a county-level city directly under the autonomous region.
        ("659012", "白杨市", "650000"),
        # 2024: 和田地区 新设和康县、和安县.
        ("653228", "和康县", "653200"),
        ("653229", "和安县", "653200"),
    ],
)
def test_recent_changes_are_present(code: str, name: str, parent: str) -> None:
    assert get_division(code) == Division(code, name, "county", parent)


@pytest.mark.parametrize("code", ["540422", "540530"])
def test_abolished_counties_are_gone(code: str) -> None:
    with pytest.raises(UnknownDivision):
        get_division(code)


def test_municipality_districts_hang_directly_under_the_municipality() -> None:
    assert get_division("110101") == Division("110101", "东城区", "county", "110000")
    assert [a.code for a in ancestors("110101")] == ["110000"]
    # The virtual 市辖区 / 县 entries of old GB/T 2260 editions are not divisions here.
    for virtual in ("110100", "120100", "310100", "500100", "500200"):
        with pytest.raises(UnknownDivision):
            get_division(virtual)
    assert {d.level for d in children("500000")} == {"county"}


def test_province_administered_county_level_units_have_the_province_as_parent() -> None:
    xiantao = get_division("429004")
    assert (xiantao.name, xiantao.level, xiantao.parent_code) == ("仙桃市", "county", "420000")
    assert get_division("419001").parent_code == "410000"  # 济源市
    assert get_division("469001").parent_code == "460000"  # 五指山市


def test_prefecture_cities_without_districts_are_childless_prefectures() -> None:
    for code, name in [
        ("441900", "东莞市"),
        ("442000", "中山市"),
        ("620200", "嘉峪关市"),
        ("460400", "儋州市"),
    ]:
        d = get_division(code)
        assert (d.name, d.level, d.parent_code) == (name, "prefecture", code[:2] + "0000")
        assert children(code) == []


def test_ordinary_three_level_chain() -> None:
    assert [(a.code, a.name) for a in ancestors("440305")] == [("440000", "广东省"), ("440300", "深圳市")]
    assert level_of("440000") == "province"
    assert level_of("440300") == "prefecture"
    assert level_of("440305") == "county"
    assert ancestors("440000") == []


def test_children_of_none_are_the_provinces() -> None:
    provinces = children(None)
    assert len(provinces) == 31
    assert provinces[0] == Division("110000", "北京市", "province", None)


def test_is_within() -> None:
    assert is_within("440305", "440000")
    assert is_within("440305", "440300")
    assert is_within("440305", "440305")
    assert not is_within("440305", "110000")
    assert not is_within("440000", "440305")
    with pytest.raises(UnknownDivision):
        is_within("440305", "999999")


@pytest.mark.parametrize("bad", ["", "11", "1101", "110101000000", "999999", "abcdef", None, 110101])
def test_unknown_or_malformed_codes_raise_unknown_division(bad: object) -> None:
    with pytest.raises(UnknownDivision) as info:
        level_of(bad)  # type: ignore[arg-type]
    assert info.value.code == bad
    with pytest.raises(LookupError):
        ancestors(bad)  # type: ignore[arg-type]


def test_load_divisions_is_cached_but_returns_a_fresh_list() -> None:
    first = load_divisions()
    first.clear()
    assert len(load_divisions()) > 3_000
    assert load_divisions()[0] is load_divisions()[0]


def test_data_package_version_is_reported() -> None:
    major, minor, patch = (int(p) for p in data_package_version().split(".")[:3])
    assert (major, minor, patch) >= (1, 0, 6)


def _record(**fields: str | None) -> SimpleNamespace:
    base: dict[str, str | None] = {
        "province_code": "13",
        "province_name": "河北省",
        "city_code": None,
        "city_name": None,
        "district_code": None,
        "district_name": None,
        "district_type": None,
    }
    base.update(fields)
    return SimpleNamespace(**base)


def test_build_rejects_conflicting_entries_for_one_code() -> None:
    records = [
        _record(city_code="1301", city_name="石家庄市", district_code="130102", district_name="长安区"),
        _record(city_code="1301", city_name="石家庄", district_code="130104", district_name="桥西区"),
    ]
    with pytest.raises(RuntimeError, match="conflicting"):
        divisions._build(records)


def test_build_rejects_a_county_whose_code_does_not_extend_its_parent() -> None:
    records = [_record(city_code="1301", city_name="石家庄市", district_code="140102", district_name="错区")]
    with pytest.raises(RuntimeError, match="does not extend"):
        divisions._build(records)


def test_build_skips_excluded_and_codeless_provinces() -> None:
    records = [
        _record(province_code="81", province_name="香港特别行政区"),
        _record(province_code="资料暂缺", province_name="台湾省"),
        _record(),
    ]
    assert divisions._build(records) == (Division("130000", "河北省", "province", None),)
