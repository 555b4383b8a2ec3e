"""Risk-tiered inspection planning (Art. 11-12): reproducible draws per jurisdiction and class, CSV export."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from backend.records.rules import IntegrityClass


@dataclass(frozen=True, slots=True)
class InspectionRates:
    """Share of each class's operators to inspect per period, with the reasoning shown to bureaus."""

    untrustworthy: float = 1.0
    basically_trustworthy: float = 0.3
    trustworthy: float = 0.1
    reasoning_zh: str = (
        "第十二条要求失信经营者列入重点监管对象、加大检查频次，故每期全部检查（100%）；"
        "第十一条要求按信用等级分类监管，基本守信风险“较小”取30%，守信风险“很小”取10%，"
        "守信经营者仍被抽查以保持“双随机”抽查的威慑。各类别按辖区分层，配额向上取整，"
        "使小辖区也至少抽到一户。"
    )
    reasoning_en: str = (
        "Art. 12 puts untrustworthy operators under key supervision with more frequent inspections: all of "
        "them every period (100%). Art. 11 tiers supervision by class: basically trustworthy (risk 'small') "
        "30%, trustworthy (risk 'very small') 10%, still sampled so random inspection keeps its deterrent. "
        "Each class is stratified by jurisdiction and quotas round up, so a small jurisdiction still gets at "
        "least one inspection."
    )

    def __post_init__(self) -> None:
        """Keep rates within [0, 1] and tiered as Art. 11-12 require (worse class, no fewer inspections)."""
        rates = (self.untrustworthy, self.basically_trustworthy, self.trustworthy)
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("抽查比例须在0到1之间 / rates must lie between 0 and 1")
        if not self.untrustworthy >= self.basically_trustworthy >= self.trustworthy:
            raise ValueError(
                "信用等级越低，抽查比例不得越小 / "
                "a worse class must not be inspected less often than a better one"
            )

    def rate_for(self, cls: IntegrityClass) -> Fraction:
        """The rate of a class as an exact fraction, so 0.3 x 10 is 3 and not 3.0000000000000004."""
        value = {
            IntegrityClass.UNTRUSTWORTHY: self.untrustworthy,
            IntegrityClass.BASICALLY_TRUSTWORTHY: self.basically_trustworthy,
            IntegrityClass.TRUSTWORTHY: self.trustworthy,
        }[cls]
        return Fraction(str(value))


DEFAULT_RATES: Final[InspectionRates] = InspectionRates()


@dataclass(frozen=True, slots=True)
class PlanCandidate:
    """An operator that may be drawn: its id, current class and jurisdiction (GB/T 2260 code)."""

    operator_id: str
    cls: IntegrityClass
    jurisdiction_code: str


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One drawn operator, with the figures that let anyone re-check the draw."""

    period_key: str
    jurisdiction_code: str
    operator_id: str
    cls: IntegrityClass
    stratum_size: int
    stratum_quota: int
    draw_ticket: str


def draw_ticket(seed: int | str, period_key: str, operator_id: str) -> str:
    """An operator's lottery ticket for a period: a hash, so the draw is reproducible and auditable."""
    # Whoever knows the seed can predict the draw: generate it at draw time (e.g. secrets.randbits(64)) and
    # store it with the plan, so the draw can be audited afterwards but not foreseen.
    # Unit separators keep ("1", "2x") and ("12", "x") from hashing the same text.
    text = f"{seed}\x1f{period_key}\x1f{operator_id}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def draw_plan(
    candidates: Iterable[PlanCandidate],
    period_key: str,
    seed: int | str,
    rates: InspectionRates = DEFAULT_RATES,
    already_drawn: Collection[str] = frozenset(),
) -> list[PlanRow]:
    """Draw the operators to inspect this period: per (jurisdiction, class), lowest tickets up to the quota."""
    # The quota, ceil(rate x stratum size), is for the whole period: operators in already_drawn count toward
    # it and are never drawn again, so repeated draws within a period top up and never exceed the rate.
    strata: dict[tuple[str, IntegrityClass], list[PlanCandidate]] = {}
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.operator_id in seen:
            raise ValueError(
                f"经营者 {candidate.operator_id} 重复出现 / operator {candidate.operator_id} listed twice"
            )
        seen.add(candidate.operator_id)
        strata.setdefault((candidate.jurisdiction_code, candidate.cls), []).append(candidate)

    drawn_before = set(already_drawn)
    rows: list[PlanRow] = []
    for (jurisdiction, cls), members in strata.items():
        quota = math.ceil(rates.rate_for(cls) * len(members))
        remaining = quota - sum(1 for m in members if m.operator_id in drawn_before)
        if remaining <= 0:
            continue
        tickets = sorted(
            (draw_ticket(seed, period_key, m.operator_id), m.operator_id)
            for m in members
            if m.operator_id not in drawn_before
        )
        for ticket, operator_id in tickets[:remaining]:
            rows.append(
                PlanRow(
                    period_key=period_key,
                    jurisdiction_code=jurisdiction,
                    operator_id=operator_id,
                    cls=cls,
                    stratum_size=len(members),
                    stratum_quota=quota,
                    draw_ticket=ticket,
                )
            )
    # Bureaus work jurisdiction by jurisdiction, the riskiest operators first.
    rows.sort(key=lambda r: (r.jurisdiction_code, r.cls.rank, r.operator_id))
    return rows


_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("检查周期", "period"),
    ("行政区划代码", "jurisdiction code"),
    ("经营者编号", "operator id"),
    ("诚信计量信用等级", "integrity class"),
    ("同辖区同等级经营者数", "operators in stratum"),
    ("本期应检查数", "quota for period"),
    ("抽签码", "draw ticket"),
)

# Spreadsheet programs run cells starting with these as formulas (CSV injection), so such cells get a quote.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A text cell that Excel will show, never evaluate."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _english(locale: str | None) -> bool:
    """Whether a locale tag asks for English; Chinese and anything unknown get Simplified Chinese."""
    return bool(locale) and str(locale).strip().lower().startswith("en")


def to_csv(rows: Sequence[PlanRow], locale: str | None = "zh-CN") -> bytes:
    """The plan as UTF-8 CSV bytes with a BOM (Excel reads the Chinese), headers in the locale's language."""
    english = _english(locale)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([en if english else zh for zh, en in _HEADERS])
    for row in rows:
        writer.writerow(
            [
                _cell(row.period_key),
                _cell(row.jurisdiction_code),
                _cell(row.operator_id),
                row.cls.label_en if english else row.cls.label_zh,
                row.stratum_size,
                row.stratum_quota,
                row.draw_ticket,
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")
