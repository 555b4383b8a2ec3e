"""What a class means for the public (Art. 10, 13, 19), said from the rule that decided it.

A class alone does not say why: 基本守信 is given both for "no bad record in five years, management not yet
sound" and, under the gap rule, for "verified bad records that reach no Art. 13 condition". So the public
sentence is built from the deciding rule(s) the engine stored with the class, with every window and threshold
read from the rule set (``backend.records.rules.rule_table``), never written into the sentence. The legend lists,
for each class, every rule that can give it under the rule set.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Final, NamedTuple

from backend.records.rules import (
    DEFAULT_RULES,
    IntegrityClass,
    Rule,
    RuleSet,
    rule_table,
)

Bilingual = tuple[str, str]


class PublicRuleText(NamedTuple):
    """A deciding rule in plain words; ``{years}``, ``{threshold}`` and ``{cls}`` come from the rule set."""

    zh: str
    en: str
    #: Whether the rule rests on verified bad records (its text must never claim a clean record).
    bad_records: bool


#: Every rule that can decide a class. The others (verified-only, window convention, look-back, good records)
#: qualify how the deciding ones count and never decide a class on their own.
PUBLIC_RULE_TEXT: Final[dict[Rule, PublicRuleText]] = {
    Rule.ART10_TRUSTWORTHY: PublicRuleText(
        "遵守计量法律法规，计量管理制度健全、主体责任落实到位，{years}年内无经核实的不良计量信用记录。",
        "Obeys the metrology laws, runs a sound metrology management system with clear responsibility, and "
        "has no verified bad metrology record in {years} years.",
        bad_records=False,
    ),
    Rule.ART10_BASICALLY_TRUSTWORTHY: PublicRuleText(
        "{years}年内无经核实的不良计量信用记录，但计量管理制度尚不够完善。",
        "Has no verified bad metrology record in {years} years, but its metrology management system is not "
        "yet fully sound.",
        bad_records=False,
    ),
    Rule.MANAGEMENT_NOT_ASSESSED: PublicRuleText(
        "{years}年内无经核实的不良计量信用记录；计量管理制度尚未评估，按评级规则列为{cls}。",
        "Has no verified bad metrology record in {years} years; its metrology management system has not been "
        "assessed yet, which the rating rules class as {cls}.",
        bad_records=False,
    ),
    Rule.GAP: PublicRuleText(
        "{years}年内有经核实的不良计量信用记录，但未达到第十三条列入失信的任何一项标准，按评级规则列为{cls}。",
        "Has verified bad metrology records within {years} years that meet none of Art. 13's conditions for "
        "untrustworthy; the rating rules class this as {cls}.",
        bad_records=True,
    ),
    Rule.ART13_1_INSPECTION_FAILED: PublicRuleText(
        "经调查核实，{years}年内在市场监管部门组织的计量监督检查中存在不合格记录（第十三条第（一）项）。",
        "Verified by investigation: failed a metrology supervision inspection by the bureau within {years} "
        "years (Art. 13(1)).",
        bad_records=True,
    ),
    Rule.ART13_2_ACCIDENT_SOCIAL_IMPACT: PublicRuleText(
        "经调查核实，{years}年内因计量器具量值不准确等原因引发计量事故并造成社会影响（第十三条第（二）项）。",
        "Verified by investigation: caused a metrology accident with social impact within {years} years "
        "(Art. 13(2)).",
        bad_records=True,
    ),
    Rule.ART13_3_INSTRUMENT_IN_USE: PublicRuleText(
        "经调查核实，{years}年内有计量器具未按规定检定、检定不合格或超过检定周期仍继续使用（第十三条第（三）项）。",
        "Verified by investigation: kept using an instrument that was not verified, failed verification or was "
        "overdue, within {years} years (Art. 13(3)).",
        bad_records=True,
    ),
    Rule.ART13_4_COMPLAINTS_SUBSTANTIATED: PublicRuleText(
        "经调查核实，{years}年内有{threshold}次以上消费者投诉经查属实（第十三条第（四）项）。",
        "Verified by investigation: {threshold} or more consumer complaints found true within {years} years "
        "(Art. 13(4)).",
        bad_records=True,
    ),
    Rule.ART13_5_SHORT_CHANGING_PENALTIES: PublicRuleText(
        "经调查核实，{years}年内发生{threshold}次以上克扣消费者被查处（第十三条第（五）项）。",
        "Verified by investigation: penalised {threshold} or more times for short-changing consumers within "
        "{years} year(s) (Art. 13(5)).",
        bad_records=True,
    ),
}

#: Art. 10's words on the risk each class carries; the part of the explanation that depends on the class only.
CLASS_RISK: Final[dict[IntegrityClass, Bilingual]] = {
    IntegrityClass.TRUSTWORTHY: ("诚信计量信用风险很小。", "A very low integrity risk."),
    IntegrityClass.BASICALLY_TRUSTWORTHY: ("诚信计量信用风险较小。", "A low integrity risk."),
    IntegrityClass.UNTRUSTWORTHY: (
        "诚信计量信用风险较大，已列为重点监管对象。",
        "A high integrity risk: the operator is under key supervision.",
    ),
}

_ZH_DIGITS: Final = "零一二三四五六七八九"


def zh_number(n: int) -> str:
    """A small count in Chinese numerals, as the guideline writes its periods (五年, 十二年); digits past 99."""
    if not 0 <= n <= 99:
        return str(n)
    tens, units = divmod(n, 10)
    if tens == 0:
        return _ZH_DIGITS[units]
    head = "" if tens == 1 else _ZH_DIGITS[tens]
    return f"{head}十{_ZH_DIGITS[units] if units else ''}"


@lru_cache(maxsize=16)
def _figures(rules: RuleSet) -> dict[str, tuple[int | None, int | None]]:
    """Each rule's (threshold, window in years) under a rule set, as the public rule table states them."""
    return {row["rule"]: (row["threshold"], row["window_years"]) for row in rule_table(rules)}


def rule_sentence(rule: Rule, cls: IntegrityClass, rules: RuleSet = DEFAULT_RULES) -> Bilingual:
    """One deciding rule in plain zh and en words, its figures from the rule set; KeyError if it decides nothing."""
    text = PUBLIC_RULE_TEXT[rule]
    threshold, years = _figures(rules)[rule.value]
    return (
        text.zh.format(years=zh_number(years or 0), threshold=zh_number(threshold or 0), cls=cls.label_zh),
        text.en.format(years=years, threshold=threshold, cls=cls.label_en),
    )


def deciding_rules(reasons: Iterable[str]) -> tuple[Rule, ...]:
    """Of stored reason keys, the rules that decide a class, in their stored order (unknown keys skipped)."""
    found: list[Rule] = []
    for key in reasons:
        try:
            rule = Rule(key)
        except ValueError:
            continue
        if rule in PUBLIC_RULE_TEXT and rule not in found:
            found.append(rule)
    return tuple(found)


@lru_cache(maxsize=256)
def explain(cls: IntegrityClass, decided_by: tuple[Rule, ...], rules: RuleSet = DEFAULT_RULES) -> Bilingual:
    """The public explanation of a class: why (its deciding rules), then what it means (Art. 10's risk)."""
    sentences = [rule_sentence(rule, cls, rules) for rule in decided_by if rule in PUBLIC_RULE_TEXT]
    risk_zh, risk_en = CLASS_RISK[cls]
    return (
        "".join(zh for zh, _ in sentences) + risk_zh,
        " ".join([*(en for _, en in sentences), risk_en]),
    )


def class_legend(rules: RuleSet = DEFAULT_RULES) -> list[tuple[IntegrityClass, Bilingual]]:
    """Each class with every way the rule set can give it, best class first, for the public legend."""
    outcome = {row["rule"]: row["outcome_class"] for row in rule_table(rules)}
    legend: list[tuple[IntegrityClass, Bilingual]] = []
    for cls in sorted(IntegrityClass, key=lambda c: -c.rank):
        ways = [rule for rule in PUBLIC_RULE_TEXT if outcome[rule.value] == cls.value]
        sentences = [rule_sentence(rule, cls, rules) for rule in ways]
        zh = "；".join(s.rstrip("。") for s, _ in sentences)
        en = "; or ".join(s.rstrip(".") for _, s in sentences)
        if len(ways) > 1:
            zh, en = f"下列任何一种情形：{zh}", f"Any one of: {en}"
        risk_zh, risk_en = CLASS_RISK[cls]
        legend.append((cls, (f"{zh}。{risk_zh}" if zh else risk_zh, f"{en}. {risk_en}" if en else risk_en)))
    return legend
