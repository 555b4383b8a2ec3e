"""The public explanation of a class follows the rule that decided it, with the rule set's own figures."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from backend.public.explain import PUBLIC_RULE_TEXT, class_legend, deciding_rules, explain, zh_number
from backend.records.engine import OperatorFacts, RecordFact, rate
from backend.records.rules import (
    ART13_RULES,
    DEFAULT_RULES,
    IntegrityClass,
    RecordKind,
    RecordState,
    Rule,
    RuleSet,
    rule_table,
)

AS_OF = date(2026, 6, 1)
#: Every figure differs from the defaults, so a figure written into a sentence shows up as a mismatch.
ODD_RULES = RuleSet(
    version="test/odd",
    untrustworthy_lookback_years=4,
    clean_record_years=3,
    good_record_years=2,
    complaint_threshold=6,
    short_changing_threshold=7,
    short_changing_window_years=2,
)
#: Rules that only qualify how the deciding ones count; they never decide a class.
QUALIFIERS = {Rule.VERIFIED_ONLY, Rule.WINDOW_CONVENTION, Rule.ART13_LOOKBACK, Rule.GOOD_RECORD}
#: Phrases that claim a clean record.
CLEAN_CLAIMS = ("无经核实的不良", "无不良", "no verified bad", "no bad")


def _record(n: int, kind: RecordKind, days_ago: int, **finding: bool) -> RecordFact:
    return RecordFact(str(n), kind, RecordState.VERIFIED, AS_OF - timedelta(days=days_ago), **finding)


def _evidence(rule: Rule, rules: RuleSet) -> tuple[OperatorFacts, list[RecordFact]]:
    """Facts under which ``rule`` decides the class."""
    sound = OperatorFacts(management_sound=True)
    if rule is Rule.ART10_TRUSTWORTHY:
        return sound, []
    if rule is Rule.ART10_BASICALLY_TRUSTWORTHY:
        return OperatorFacts(management_sound=False), []
    if rule is Rule.MANAGEMENT_NOT_ASSESSED:
        return OperatorFacts(), []
    if rule is Rule.GAP:
        return sound, [_record(1, RecordKind.COMPLAINT_SUBSTANTIATED, 30)]
    if rule is Rule.ART13_1_INSPECTION_FAILED:
        return sound, [_record(1, RecordKind.INSPECTION_FAILED, 30)]
    if rule is Rule.ART13_2_ACCIDENT_SOCIAL_IMPACT:
        return sound, [_record(1, RecordKind.METROLOGY_ACCIDENT, 30, social_impact=True)]
    if rule is Rule.ART13_3_INSTRUMENT_IN_USE:
        return sound, [_record(1, RecordKind.INSTRUMENT_OVERDUE, 30, instrument_still_in_use=True)]
    if rule is Rule.ART13_4_COMPLAINTS_SUBSTANTIATED:
        kind = RecordKind.COMPLAINT_SUBSTANTIATED
        return sound, [_record(n, kind, 10 * n) for n in range(rules.complaint_threshold)]
    assert rule is Rule.ART13_5_SHORT_CHANGING_PENALTIES
    kind = RecordKind.SHORT_CHANGING_PENALTY
    return sound, [_record(n, kind, 10 * n) for n in range(rules.short_changing_threshold)]


def test_every_rule_of_the_table_either_decides_with_a_public_text_or_only_qualifies() -> None:
    for row in rule_table(DEFAULT_RULES):
        rule = Rule(row["rule"])
        assert (rule in PUBLIC_RULE_TEXT) != (rule in QUALIFIERS), rule


@pytest.mark.parametrize("rules", [DEFAULT_RULES, ODD_RULES], ids=["default", "odd"])
@pytest.mark.parametrize("rule", sorted(PUBLIC_RULE_TEXT, key=list(Rule).index), ids=str)
def test_each_deciding_rule_gives_its_own_true_text(rule: Rule, rules: RuleSet) -> None:
    facts, records = _evidence(rule, rules)
    rating = rate(facts, records, AS_OF, rules)
    decided = deciding_rules(r.rule for r in rating.reasons)
    assert decided[0] is rule
    row = next(r for r in rule_table(rules) if r["rule"] == rule.value)
    zh, en = explain(rating.cls, decided, rules)
    # The window of the deciding rule, from the rule set, in both languages; never another period.
    window = row["window_years"]
    assert window is not None
    assert f"{zh_number(window)}年内" in zh and f"{window} year" in en, (zh, en)
    others = {rules.untrustworthy_lookback_years, rules.clean_record_years, rules.short_changing_window_years}
    for other in others - {window}:
        assert f"{zh_number(other)}年内" not in zh and f"{other} year" not in en
    if row["threshold"] is not None and rule in (
        Rule.ART13_4_COMPLAINTS_SUBSTANTIATED,
        Rule.ART13_5_SHORT_CHANGING_PENALTIES,
    ):
        assert f"{zh_number(row['threshold'])}次以上" in zh and f"{row['threshold']} or more" in en
    # No text claims a clean record when a bad one counts, and every text where none counts says so.
    counts_bad = rule in ART13_RULES or rule is Rule.GAP
    assert PUBLIC_RULE_TEXT[rule].bad_records is counts_bad
    claims_clean = any(claim in zh or claim in en.lower() for claim in CLEAN_CLAIMS)
    assert claims_clean is not counts_bad, (rule, zh, en)
    # The text ends on what the class given means (Art. 10's risk).
    risk = {
        IntegrityClass.TRUSTWORTHY: "风险很小。",
        IntegrityClass.BASICALLY_TRUSTWORTHY: "风险较小。",
        IntegrityClass.UNTRUSTWORTHY: "已列为重点监管对象。",
    }
    assert zh.endswith(risk[rating.cls]), zh


def test_the_gap_class_of_verified_bad_records_says_so() -> None:
    """The defect: 基本守信 by the gap rule was explained as "五年内无不良计量信用记录"."""
    facts, records = _evidence(Rule.GAP, DEFAULT_RULES)
    rating = rate(facts, records, AS_OF)
    assert rating.cls is IntegrityClass.BASICALLY_TRUSTWORTHY
    zh, en = explain(rating.cls, deciding_rules(r.rule for r in rating.reasons))
    assert zh.startswith("五年内有经核实的不良计量信用记录") and "无不良" not in zh and "列为基本守信" in zh
    assert en.startswith("Has verified bad metrology records within 5 years") and "no verified bad" not in en


def test_a_gap_under_a_worse_management_finding_names_both_grounds() -> None:
    rules = replace(DEFAULT_RULES, gap_class=IntegrityClass.TRUSTWORTHY)
    records = [_record(1, RecordKind.COMPLAINT_SUBSTANTIATED, 30)]
    rating = rate(OperatorFacts(management_sound=False), records, AS_OF, rules)
    decided = deciding_rules(r.rule for r in rating.reasons)
    assert rating.cls is IntegrityClass.BASICALLY_TRUSTWORTHY
    assert decided == (Rule.GAP, Rule.ART10_BASICALLY_TRUSTWORTHY)
    zh, _ = explain(rating.cls, decided, rules)
    # The class named is the one given, not the gap rule's default.
    assert "列为基本守信" in zh and "列为守信" not in zh and "管理制度尚不够完善" in zh


@pytest.mark.parametrize("rules", [DEFAULT_RULES, ODD_RULES], ids=["default", "odd"])
def test_the_legend_lists_every_ground_of_each_class(rules: RuleSet) -> None:
    legend = dict(class_legend(rules))
    assert list(legend) == [
        IntegrityClass.TRUSTWORTHY,
        IntegrityClass.BASICALLY_TRUSTWORTHY,
        IntegrityClass.UNTRUSTWORTHY,
    ]
    basic_zh, basic_en = legend[IntegrityClass.BASICALLY_TRUSTWORTHY]
    clean = zh_number(rules.clean_record_years)
    # 基本守信 covers both "no bad record, management not sound" and the gap of verified bad records.
    assert f"{clean}年内无经核实的不良计量信用记录，但计量管理制度尚不够完善" in basic_zh
    assert f"{clean}年内有经核实的不良计量信用记录，但未达到第十三条" in basic_zh
    assert "not yet fully sound" in basic_en and "meet none of Art. 13" in basic_en
    bad_zh, _ = legend[IntegrityClass.UNTRUSTWORTHY]
    for item in ("（一）", "（二）", "（三）", "（四）", "（五）"):
        assert f"第十三条第{item}项" in bad_zh
    assert f"{zh_number(rules.complaint_threshold)}次以上消费者投诉" in bad_zh
    assert f"{clean}年内无经核实的不良" in legend[IntegrityClass.TRUSTWORTHY][0]


def test_chinese_numerals() -> None:
    assert [zh_number(n) for n in (1, 2, 5, 10, 11, 20, 35, 99, 100)] == [
        "一",
        "二",
        "五",
        "十",
        "十一",
        "二十",
        "三十五",
        "九十九",
        "100",
    ]
