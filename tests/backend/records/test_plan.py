"""Inspection plan draws: reproducible, rates respected per stratum, no operator drawn twice, CSV export."""

from __future__ import annotations

import csv
import io
import math
import random
from collections import Counter

import pytest

from backend.records.plan import (
    DEFAULT_RATES,
    InspectionRates,
    PlanCandidate,
    PlanRow,
    draw_plan,
    draw_ticket,
    to_csv,
)
from backend.records.rules import IntegrityClass

T = IntegrityClass.TRUSTWORTHY
B = IntegrityClass.BASICALLY_TRUSTWORTHY
U = IntegrityClass.UNTRUSTWORTHY


def population() -> list[PlanCandidate]:
    """Two counties with operators of every class, in sizes that exercise rounding."""
    out: list[PlanCandidate] = []
    for county, sizes in (("330106", {U: 7, B: 33, T: 101}), ("330108", {U: 1, B: 3, T: 9})):
        for cls, size in sizes.items():
            out += [PlanCandidate(f"{county}-{cls.value}-{i:04d}", cls, county) for i in range(size)]
    return out


def test_draw_is_reproducible_and_independent_of_input_order() -> None:
    people = population()
    first = draw_plan(people, "2026-Q1", seed=20260101)
    shuffled = list(people)
    random.Random(7).shuffle(shuffled)
    assert draw_plan(shuffled, "2026-Q1", seed=20260101) == first
    assert draw_plan(people, "2026-Q1", seed=20260102) != first
    assert draw_plan(people, "2026-Q2", seed=20260101) != first


def test_quota_per_jurisdiction_and_class_rounds_up() -> None:
    rows = draw_plan(population(), "2026-Q1", seed=1)
    counts = Counter((r.jurisdiction_code, r.cls) for r in rows)
    assert counts == {
        ("330106", U): 7,
        ("330106", B): math.ceil(0.3 * 33),
        ("330106", T): math.ceil(0.1 * 101),
        ("330108", U): 1,
        ("330108", B): 1,
        ("330108", T): 1,
    }
    # 0.3 x 10 must be exactly 3, not ceil(3.0000000000000004) = 4.
    ten = [PlanCandidate(f"b{i}", B, "330106") for i in range(10)]
    assert len(draw_plan(ten, "p", seed=1)) == 3


def test_rows_are_ordered_for_the_bureau() -> None:
    rows = draw_plan(population(), "2026-Q1", seed=3)
    keys = [(r.jurisdiction_code, r.cls.rank, r.operator_id) for r in rows]
    assert keys == sorted(keys)
    assert len({r.operator_id for r in rows}) == len(rows)
    assert all(r.draw_ticket == draw_ticket(3, "2026-Q1", r.operator_id) for r in rows)


def test_already_drawn_operators_are_never_drawn_again_and_count_toward_the_quota() -> None:
    people = population()
    first = draw_plan(people, "2026-Q1", seed=5)
    drawn = {r.operator_id for r in first}
    assert draw_plan(people, "2026-Q1", seed=5, already_drawn=drawn) == []
    # A later top-up with new operators draws only new ones and keeps each stratum at its quota.
    newcomers = [PlanCandidate(f"new-{i}", T, "330106") for i in range(30)]
    top_up = draw_plan(people + newcomers, "2026-Q1", seed=6, already_drawn=drawn)
    assert drawn.isdisjoint(r.operator_id for r in top_up)
    stratum_total = sum(1 for r in first if r.jurisdiction_code == "330106" and r.cls is T) + len(top_up)
    assert stratum_total == math.ceil(0.1 * 131)


def test_each_operator_is_drawn_at_its_class_rate_across_seeds() -> None:
    people = [PlanCandidate(f"t{i}", T, "110101") for i in range(50)]
    people += [PlanCandidate(f"b{i}", B, "110101") for i in range(50)]
    seeds = 400
    hits: Counter[str] = Counter()
    for seed in range(seeds):
        hits.update(r.operator_id for r in draw_plan(people, "2026-03", seed=seed))
    for candidate in people:
        rate = float(DEFAULT_RATES.rate_for(candidate.cls))
        sd = math.sqrt(rate * (1 - rate) / seeds)
        # Five standard deviations: a fair draw fails this about once in 3.5 million operators.
        assert abs(hits[candidate.operator_id] / seeds - rate) < 5 * sd, candidate


def test_custom_rates_and_their_validation() -> None:
    rates = InspectionRates(untrustworthy=0.5, basically_trustworthy=0.25, trustworthy=0.0)
    rows = draw_plan(population(), "p", seed=1, rates=rates)
    counts = Counter((r.jurisdiction_code, r.cls) for r in rows)
    assert counts[("330106", U)] == 4 and counts[("330106", B)] == 9 and counts[("330106", T)] == 0
    with pytest.raises(ValueError):
        InspectionRates(trustworthy=1.5)
    with pytest.raises(ValueError):
        InspectionRates(untrustworthy=0.2, basically_trustworthy=0.3)
    assert "第十二条" in DEFAULT_RATES.reasoning_zh and "Art. 12" in DEFAULT_RATES.reasoning_en


def test_duplicate_candidates_are_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        draw_plan([PlanCandidate("x", T, "1"), PlanCandidate("x", B, "1")], "p", seed=1)


def test_csv_is_utf8_with_bom_and_chinese_headers_by_default() -> None:
    rows = draw_plan(population(), "2026-Q1", seed=9)
    data = to_csv(rows)
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0][:4] == ["检查周期", "行政区划代码", "经营者编号", "诚信计量信用等级"]
    assert len(table) == len(rows) + 1
    assert table[1][3] == "失信" and table[1][2] == rows[0].operator_id


def test_csv_in_english_by_locale() -> None:
    rows = draw_plan(population(), "2026-Q1", seed=9)
    for locale in ("en", "en-US", "EN_gb"):
        table = list(csv.reader(io.StringIO(to_csv(rows, locale).decode("utf-8-sig"))))
        assert table[0][0] == "period" and table[1][3] == "untrustworthy"
    chinese: tuple[str | None, ...] = ("zh-CN", "zh", None, "fr")
    for other in chinese:
        assert to_csv(rows, other).decode("utf-8-sig").startswith("检查周期")


def test_csv_cells_cannot_become_formulas() -> None:
    row = PlanRow("=cmd|'/c calc'!A1", "330106", "+1", T, 1, 1, "ab")
    table = list(csv.reader(io.StringIO(to_csv([row]).decode("utf-8-sig"))))
    assert table[1][0].startswith("'=") and table[1][2] == "'+1"
