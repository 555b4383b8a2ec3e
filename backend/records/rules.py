"""Integrity record vocabulary and the classification rule table (Art. 8, 10, 13), kept as data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypedDict


class RecordKind(StrEnum):
    """Kinds of integrity record (诚信计量信息记录类型), Art. 8 and Art. 16."""

    INSPECTION_FAILED = "inspection_failed"
    METROLOGY_ACCIDENT = "metrology_accident"
    INSTRUMENT_UNVERIFIED = "instrument_unverified"
    INSTRUMENT_FAILED_VERIFICATION = "instrument_failed_verification"
    INSTRUMENT_OVERDUE = "instrument_overdue"
    NET_CONTENT_NONCOMPLIANT = "net_content_noncompliant"
    SHORT_WEIGHT = "short_weight"
    METROLOGY_CHEATING = "metrology_cheating"
    COMPLAINT_SUBSTANTIATED = "complaint_substantiated"
    SHORT_CHANGING_PENALTY = "short_changing_penalty"
    COMMITMENT_BREACHED = "commitment_breached"
    ASSOCIATION_WARNING = "association_warning"
    COMMITMENT_KEPT = "commitment_kept"
    DEMONSTRATION_UNIT = "demonstration_unit"


class RecordState(StrEnum):
    """Verification state of a record; only ``verified`` ever affects a class (Art. 13 经调查核实)."""

    REPORTED = "reported"
    VERIFIED = "verified"
    DISMISSED = "dismissed"
    REVOKED = "revoked"


class IntegrityClass(StrEnum):
    """The three integrity classes of Art. 10."""

    TRUSTWORTHY = "trustworthy"
    BASICALLY_TRUSTWORTHY = "basically_trustworthy"
    UNTRUSTWORTHY = "untrustworthy"

    @property
    def rank(self) -> int:
        """Order for comparisons: 失信 0 < 基本守信 1 < 守信 2 (higher is better)."""
        return _CLASS_RANK[self]

    @property
    def label_zh(self) -> str:
        """Simplified Chinese name of the class."""
        return _CLASS_LABELS[self][0]

    @property
    def label_en(self) -> str:
        """English name of the class."""
        return _CLASS_LABELS[self][1]


_CLASS_RANK: Final[dict[IntegrityClass, int]] = {
    IntegrityClass.UNTRUSTWORTHY: 0,
    IntegrityClass.BASICALLY_TRUSTWORTHY: 1,
    IntegrityClass.TRUSTWORTHY: 2,
}
_CLASS_LABELS: Final[dict[IntegrityClass, tuple[str, str]]] = {
    IntegrityClass.TRUSTWORTHY: ("守信", "trustworthy"),
    IntegrityClass.BASICALLY_TRUSTWORTHY: ("基本守信", "basically trustworthy"),
    IntegrityClass.UNTRUSTWORTHY: ("失信", "untrustworthy"),
}


def worse_class(a: IntegrityClass, b: IntegrityClass) -> IntegrityClass:
    """The less favourable of two classes."""
    return a if a.rank <= b.rank else b


class ShortChangingWindow(StrEnum):
    """How Art. 13(5)'s 一年内 is read: any one-year span in the look-back, or the year ending on as_of."""

    ANY_SPAN = "any_span"
    TRAILING = "trailing"


@dataclass(frozen=True, slots=True)
class KindInfo:
    """Static facts about a record kind: good or bad, where the guideline names it, its labels."""

    bad: bool
    article: str
    label_zh: str
    label_en: str


KIND_INFO: Final[dict[RecordKind, KindInfo]] = {
    RecordKind.INSPECTION_FAILED: KindInfo(
        True, "8, 13(1)", "监督检查不合格", "failed supervision inspection"
    ),
    RecordKind.METROLOGY_ACCIDENT: KindInfo(True, "13(2)", "计量事故", "metrology accident"),
    RecordKind.INSTRUMENT_UNVERIFIED: KindInfo(True, "8, 13(3)", "计量器具未检定", "instrument not verified"),
    RecordKind.INSTRUMENT_FAILED_VERIFICATION: KindInfo(
        True, "8, 13(3)", "计量器具检定不合格", "instrument failed verification"
    ),
    RecordKind.INSTRUMENT_OVERDUE: KindInfo(
        True, "8, 13(3)", "计量器具超过检定周期", "instrument verification overdue"
    ),
    RecordKind.NET_CONTENT_NONCOMPLIANT: KindInfo(
        True, "8", "定量包装商品净含量不符合要求", "prepackaged net content non-compliant"
    ),
    RecordKind.SHORT_WEIGHT: KindInfo(True, "8", "缺斤短两", "short weight"),
    RecordKind.METROLOGY_CHEATING: KindInfo(True, "8", "计量作弊", "metrology cheating"),
    RecordKind.COMPLAINT_SUBSTANTIATED: KindInfo(
        True, "8, 13(4)", "消费者投诉举报经查实", "consumer complaint substantiated"
    ),
    RecordKind.SHORT_CHANGING_PENALTY: KindInfo(
        True, "13(5)", "克扣消费者被查处", "penalised for short-changing consumers"
    ),
    RecordKind.COMMITMENT_BREACHED: KindInfo(
        True, "8", "未实现诚信计量自我承诺", "integrity self-commitment not kept"
    ),
    RecordKind.ASSOCIATION_WARNING: KindInfo(
        True, "16(2)", "行业组织警告或通报批评", "industry association warning or censure"
    ),
    RecordKind.COMMITMENT_KEPT: KindInfo(
        False, "8", "实现诚信计量自我承诺", "integrity self-commitment kept"
    ),
    RecordKind.DEMONSTRATION_UNIT: KindInfo(
        False, "8; notice §2", "诚信计量自我承诺示范单位", "self-commitment demonstration unit"
    ),
}

BAD_KINDS: Final[frozenset[RecordKind]] = frozenset(k for k, info in KIND_INFO.items() if info.bad)
GOOD_KINDS: Final[frozenset[RecordKind]] = frozenset(k for k, info in KIND_INFO.items() if not info.bad)
INSTRUMENT_KINDS: Final[frozenset[RecordKind]] = frozenset(
    {
        RecordKind.INSTRUMENT_UNVERIFIED,
        RecordKind.INSTRUMENT_FAILED_VERIFICATION,
        RecordKind.INSTRUMENT_OVERDUE,
    }
)


class Rule(StrEnum):
    """Stable rule keys; a Reason and a rule-table row carry one of these."""

    VERIFIED_ONLY = "verified_only"
    WINDOW_CONVENTION = "window_convention"
    ART13_1_INSPECTION_FAILED = "art13_1_inspection_failed"
    ART13_2_ACCIDENT_SOCIAL_IMPACT = "art13_2_accident_social_impact"
    ART13_3_INSTRUMENT_IN_USE = "art13_3_instrument_in_use"
    ART13_4_COMPLAINTS_SUBSTANTIATED = "art13_4_complaints_substantiated"
    ART13_5_SHORT_CHANGING_PENALTIES = "art13_5_short_changing_penalties"
    ART13_LOOKBACK = "art13_lookback"
    ART10_TRUSTWORTHY = "art10_trustworthy"
    ART10_BASICALLY_TRUSTWORTHY = "art10_basically_trustworthy"
    MANAGEMENT_NOT_ASSESSED = "management_not_assessed"
    GAP = "bad_record_below_untrustworthy_threshold"
    GOOD_RECORD = "good_record"


# Art. 13's conditions in the order the article lists them; reasons follow this order.
ART13_RULES: Final[tuple[Rule, ...]] = (
    Rule.ART13_1_INSPECTION_FAILED,
    Rule.ART13_2_ACCIDENT_SOCIAL_IMPACT,
    Rule.ART13_3_INSTRUMENT_IN_USE,
    Rule.ART13_4_COMPLAINTS_SUBSTANTIATED,
    Rule.ART13_5_SHORT_CHANGING_PENALTIES,
)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every threshold, window and default of the classification; the defaults are DEFAULT_RULES."""

    version: str = "566-2017/1"
    untrustworthy_lookback_years: int = 5
    clean_record_years: int = 5
    good_record_years: int = 5
    inspection_failed_threshold: int = 1
    accident_threshold: int = 1
    instrument_in_use_threshold: int = 1
    complaint_threshold: int = 3
    short_changing_threshold: int = 2
    short_changing_window_years: int = 1
    short_changing_window_mode: ShortChangingWindow = ShortChangingWindow.ANY_SPAN
    gap_class: IntegrityClass = IntegrityClass.BASICALLY_TRUSTWORTHY
    management_unassessed_class: IntegrityClass = IntegrityClass.BASICALLY_TRUSTWORTHY

    def __post_init__(self) -> None:
        """Reject rule sets that cannot be applied or that would contradict Art. 10."""
        for name in (
            "untrustworthy_lookback_years",
            "clean_record_years",
            "good_record_years",
            "inspection_failed_threshold",
            "accident_threshold",
            "instrument_in_use_threshold",
            "complaint_threshold",
            "short_changing_threshold",
            "short_changing_window_years",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} 必须 ≥ 1 / must be >= 1")
        # Art. 10 reserves 失信 for operators with violations; an unassessed management system is not one.
        if self.management_unassessed_class is IntegrityClass.UNTRUSTWORTHY:
            raise ValueError(
                "未评估管理制度不能判为失信 / an unassessed management system cannot mean untrustworthy"
            )


DEFAULT_RULES: Final[RuleSet] = RuleSet()


@dataclass(frozen=True, slots=True)
class RuleText:
    """Bilingual text of one rule; ``{name}`` placeholders are filled from the RuleSet and the evidence."""

    article: str
    article_zh: str
    article_en: str
    condition_zh: str
    condition_en: str
    explanation_zh: str
    explanation_en: str
    reasoning_zh: str
    reasoning_en: str


RULE_TEXT: Final[dict[Rule, RuleText]] = {
    Rule.VERIFIED_ONLY: RuleText(
        article="13, 19, 22",
        article_zh="第十三条（经调查核实）、第十九条、第二十二条",
        article_en="Art. 13 (after investigation and verification), Art. 19, Art. 22",
        condition_zh="只有状态为“已核实”的记录参与评级；已报告、已驳回、已撤销的记录一律不计。",
        condition_en=(
            "Only records in state 'verified' count; reported, dismissed and revoked records never do."
        ),
        explanation_zh="",
        explanation_en="",
        reasoning_zh=(
            "第十三条要求“经调查核实”方可列入失信；第二十二条规定不准确的信息经核实后应予更正或撤销，"
            "因此未核实或已撤销的记录不得影响评级。"
        ),
        reasoning_en=(
            "Art. 13 requires investigation and verification before classing an operator untrustworthy; "
            "Art. 22 makes inaccurate information corrected or revoked, so unverified or revoked records "
            "must not affect the class."
        ),
    ),
    Rule.WINDOW_CONVENTION: RuleText(
        article="10, 13",
        article_zh="第十条、第十三条；《民法典》第二百零一条、第二百零二条、第一千二百五十九条",
        article_en="Art. 10, 13; Civil Code Art. 201, 202, 1259",
        condition_zh=(
            "“N年内”按日历年计算：记录日期为D，则在评级日不晚于D加N年的对应日时计入；"
            "2月29日加N年无对应日时取2月28日（月末日）。评级日之后发生的记录不计。“以上”包括本数。"
        ),
        condition_en=(
            "'Within N years' uses calendar years: a record dated D counts while the rating date is on or "
            "before the same day N years after D; Feb 29 plus N years with no such day falls on Feb 28 "
            "(the month's last day). Records dated after the rating date are ignored. 'Or more' includes "
            "the number itself."
        ),
        explanation_zh="",
        explanation_en="",
        reasoning_zh=(
            "指南未规定期间算法，采用《民法典》第二百零一条（开始当日不计入）"
            "和第二百零二条（到期月对应日为最后一日，无对应日的以月末日为最后一日）；"
            "第一千二百五十九条规定“以上”包括本数。此算法与PostgreSQL的 date + interval 'N years' 一致，"
            "便于数据库预聚合。"
        ),
        reasoning_en=(
            "The guideline gives no way to count periods, so the Civil Code applies: Art. 201 (the start "
            "day is not counted) and Art. 202 (the period ends on the corresponding day, or the month's "
            "last day when there is none); Art. 1259 makes 'or more' (以上) inclusive. PostgreSQL's date + "
            "interval 'N years' computes the same dates, so the database can pre-aggregate."
        ),
    ),
    Rule.ART13_1_INSPECTION_FAILED: RuleText(
        article="13(1)",
        article_zh="第十三条第（一）项",
        article_en="Art. 13(1)",
        condition_zh="在市场监管部门组织的计量监督检查中存在不合格记录（{threshold}次以上）。",
        condition_en=(
            "A failed result in a metrology supervision inspection organised by a bureau ({threshold} or "
            "more)."
        ),
        explanation_zh=(
            "{years}年内有{count}条经核实的计量监督检查不合格记录，符合第十三条第（一）项，列为失信。"
        ),
        explanation_en=(
            "{count} verified failed supervision inspection(s) within {years} years meet Art. 13(1): "
            "untrustworthy."
        ),
        reasoning_zh="条文为“存在不合格记录”，一次即构成，阈值取1。",
        reasoning_en="The article says 'has a failed record', so a single one suffices: threshold 1.",
    ),
    Rule.ART13_2_ACCIDENT_SOCIAL_IMPACT: RuleText(
        article="13(2)",
        article_zh="第十三条第（二）项",
        article_en="Art. 13(2)",
        condition_zh="因计量器具量值不准确等原因引发计量事故并造成社会影响（{threshold}次以上）。",
        condition_en=(
            "A metrology accident caused by inaccurate instruments or similar, with social impact "
            "({threshold} or more)."
        ),
        explanation_zh=(
            "{years}年内有{count}起经核实并认定造成社会影响的计量事故，符合第十三条第（二）项，列为失信。"
        ),
        explanation_en=(
            "{count} verified metrology accident(s) with social impact within {years} years meet Art. "
            "13(2): untrustworthy."
        ),
        reasoning_zh=(
            "只有调查认定“造成社会影响”的事故才计入；未认定（空值）或认定无社会影响的事故仍是不良记录，"
            "但不构成本项。"
        ),
        reasoning_en=(
            "Only accidents found to have social impact count; an accident with that finding absent (null) "
            "or negative is still a bad record but does not meet this condition."
        ),
    ),
    Rule.ART13_3_INSTRUMENT_IN_USE: RuleText(
        article="13(3)",
        article_zh="第十三条第（三）项",
        article_en="Art. 13(3)",
        condition_zh="计量器具未按规定申请检定、检定不合格或者超过检定周期且继续使用（{threshold}次以上）。",
        condition_en=(
            "An instrument not verified as required, failed verification or overdue, and still in use "
            "({threshold} or more)."
        ),
        explanation_zh=(
            "{years}年内有{count}条经核实的计量器具未检定、检定不合格或超期且继续使用的记录，"
            "符合第十三条第（三）项，列为失信。"
        ),
        explanation_en=(
            "{count} verified record(s) of an unverified, failed or overdue instrument still in use within "
            "{years} years meet Art. 13(3): untrustworthy."
        ),
        reasoning_zh="条文以“继续使用”为要件，故只计入调查认定仍在使用的记录；未认定（空值）的不计入本项。",
        reasoning_en=(
            "The article requires continued use, so only records with a finding that the instrument was "
            "still in use count; a null finding does not."
        ),
    ),
    Rule.ART13_4_COMPLAINTS_SUBSTANTIATED: RuleText(
        article="13(4)",
        article_zh="第十三条第（四）项",
        article_en="Art. 13(4)",
        condition_zh="存在{threshold}次以上消费者投诉并经查实。",
        condition_en="{threshold} or more consumer complaints found true on investigation.",
        explanation_zh=(
            "{years}年内经查实的消费者投诉{count}次，达到第十三条第（四）项“{threshold}次以上”，列为失信。"
        ),
        explanation_en=(
            "{count} substantiated consumer complaints within {years} years reach Art. 13(4)'s "
            "'{threshold} or more': untrustworthy."
        ),
        reasoning_zh="“三次以上”包括三次（《民法典》第一千二百五十九条），阈值取3；计数期间见“第十三条回溯期”规则。",
        reasoning_en=(
            "'Three or more' includes three (Civil Code Art. 1259): threshold 3; counted over the "
            "look-back window."
        ),
    ),
    Rule.ART13_5_SHORT_CHANGING_PENALTIES: RuleText(
        article="13(5)",
        article_zh="第十三条第（五）项",
        article_en="Art. 13(5)",
        condition_zh="{window_years}年内发生{threshold}次以上克扣消费者被查处（计算方式：{mode_zh}）。",
        condition_en=(
            "{threshold} or more penalties for short-changing consumers within {window_years} year(s) "
            "(reading: {mode_en})."
        ),
        explanation_zh=(
            "有{count}次经核实的克扣消费者被查处记录落在同一{window_years}年期间内，符合第十三条第（五）"
            "项，列为失信。"
        ),
        explanation_en=(
            "{count} verified short-changing penalties fall within one {window_years}-year span, meeting "
            "Art. 13(5): untrustworthy."
        ),
        reasoning_zh=(
            "“一年内发生两次以上”描述的是违法行为的频次，而非评级日前一年的状态：默认取“任意一年期间”，"
            "即回溯期内任意两次查处日期相隔不超过一年即构成（数据库可用 RANGE BETWEEN CURRENT ROW AND "
            "INTERVAL '1 year' FOLLOWING 窗口函数计算）。若只看评级日前一年，一次检查不合格可致失信五年，"
            "而一年内两次克扣被查处只致失信一年，轻重倒置。可改为“trailing”（仅评级日前一年）。"
        ),
        reasoning_en=(
            "'Two or more within one year' describes how often the violation happened, not the state in "
            "the year before the rating date: by default any one-year span counts, i.e. two penalties no "
            "more than one year apart anywhere in the look-back window (in SQL, a RANGE BETWEEN CURRENT "
            "ROW AND INTERVAL '1 year' FOLLOWING window). Reading it as the trailing year only would let "
            "one failed inspection mean five years of 失信 but two short-changing penalties only one, "
            "inverting their gravity. 'trailing' (the year ending on the rating date) is available."
        ),
    ),
    Rule.ART13_LOOKBACK: RuleText(
        article="10, 13",
        article_zh="第十条、第十三条",
        article_en="Art. 10, 13",
        condition_zh="第十三条第（一）至（五）项只计入评级日前{years}年内的已核实记录。",
        condition_en=(
            "Art. 13(1)-(5) count only verified records within {years} years before the rating date."
        ),
        explanation_zh="",
        explanation_en="",
        reasoning_zh=(
            "第十三条未规定回溯期限；第十条以“五年内无不良计量信用记录”界定守信和基本守信，故取同一期限："
            "超过五年的不良记录不再计入，避免失信状态无限期延续。"
        ),
        reasoning_en=(
            "Art. 13 sets no look-back period; Art. 10 defines the two good classes by 'no bad record "
            "within five years', so the same period is used: a bad record older than five years no longer "
            "counts, and 失信 cannot last forever."
        ),
    ),
    Rule.ART10_TRUSTWORTHY: RuleText(
        article="10",
        article_zh="第十条第二款",
        article_en="Art. 10 para. 2",
        condition_zh="{years}年内无已核实的不良记录，且计量管理制度健全、主体责任落实到位。",
        condition_en=(
            "No verified bad record within {years} years, and a sound metrology management system with the "
            "operator's responsibility in place."
        ),
        explanation_zh="{years}年内无已核实的不良记录，计量管理制度经评估健全，列为守信。",
        explanation_en=(
            "No verified bad record within {years} years and the management system was assessed sound: "
            "trustworthy."
        ),
        reasoning_zh="第十条原文。",
        reasoning_en="Art. 10 as written.",
    ),
    Rule.ART10_BASICALLY_TRUSTWORTHY: RuleText(
        article="10",
        article_zh="第十条第三款",
        article_en="Art. 10 para. 3",
        condition_zh="{years}年内无已核实的不良记录，但计量管理制度不够完善。",
        condition_en=(
            "No verified bad record within {years} years, but the management system is not fully sound."
        ),
        explanation_zh="计量管理制度经评估不够完善，列为基本守信。",
        explanation_en="The management system was assessed not fully sound: basically trustworthy.",
        reasoning_zh="第十条原文。",
        reasoning_en="Art. 10 as written.",
    ),
    Rule.MANAGEMENT_NOT_ASSESSED: RuleText(
        article="10",
        article_zh="第十条",
        article_en="Art. 10",
        condition_zh="{years}年内无已核实的不良记录，计量管理制度尚未评估：列为{class_zh}。",
        condition_en=(
            "No verified bad record within {years} years and the management system not yet assessed: "
            "{class_en}."
        ),
        explanation_zh="计量管理制度尚未评估，按规则列为{class_zh}。",
        explanation_en=(
            "The management system has not been assessed; the rule set classes this as {class_en}."
        ),
        reasoning_zh=(
            "守信要求“计量管理制度健全、主体责任落实到位”的肯定性认定，未评估不能推定健全；"
            "未评估也不是违法违规，不能列为失信。基本守信是不作有利推定、亦不加惩戒的稳妥默认值。"
        ),
        reasoning_en=(
            "守信 needs a positive finding that the management system is sound, which cannot be presumed "
            "without an assessment; an unassessed system is no violation either, so it cannot mean 失信. "
            "基本守信 presumes nothing favourable and punishes nothing: the conservative default."
        ),
    ),
    Rule.GAP: RuleText(
        article="10, 13",
        article_zh="第十条、第十三条",
        article_en="Art. 10, 13",
        condition_zh=(
            "{years}年内有已核实的不良记录，但不符合第十三条任何一项：列为{class_zh}（若管理制度认定更低，"
            "则取较低者）。"
        ),
        condition_en=(
            "A verified bad record within {years} years that meets none of Art. 13's conditions: "
            "{class_en} (or lower when the management finding gives a lower class)."
        ),
        explanation_zh=(
            "{years}年内有{count}条已核实的不良记录，未达到第十三条任何一项失信标准，按规则列为{class_zh}。"
        ),
        explanation_en=(
            "{count} verified bad record(s) within {years} years, none reaching an Art. 13 threshold: "
            "{class_en} under the rule set."
        ),
        reasoning_zh=(
            "条文存在空白：守信和基本守信均要求五年内无不良记录，而第十三条穷尽列举了列入失信的情形。"
            "例如仅有一次查实投诉的经营者字面上不属于任何一类。第十三条是列入失信的具体标准，"
            "不得以评级名义扩大惩戒（第二十条），故取非守信类别中惩戒最轻的基本守信，并在理由中写明。"
        ),
        reasoning_en=(
            "The guideline has a gap: 守信 and 基本守信 both require no bad record within five years, "
            "while Art. 13 lists exactly when to class 失信; an operator with, say, one substantiated "
            "complaint fits no class literally. Art. 13 is the operative test for 失信 and Art. 20 forbids "
            "using ratings to restrict operators beyond the law, so the least punitive class that is not "
            "守信, 基本守信, applies, with this reason stated."
        ),
    ),
    Rule.GOOD_RECORD: RuleText(
        article="8",
        article_zh="第八条第四款",
        article_en="Art. 8 para. 4",
        condition_zh="{years}年内已核实的良好记录（实现自我承诺、示范单位）作为支持性理由列出，不改变类别。",
        condition_en=(
            "Verified good records within {years} years (self-commitment kept, demonstration unit) are "
            "listed as supporting reasons and never change the class."
        ),
        explanation_zh="{years}年内有{count}条已核实的良好记录，作为支持性信息列出，不抵消任何失信条件。",
        explanation_en=(
            "{count} verified good record(s) within {years} years, listed in support; they offset no "
            "untrustworthy condition."
        ),
        reasoning_zh="第十条和第十三条的分类条件均不含良好记录；良好记录不能抵消第十三条的违法事实。",
        reasoning_en=(
            "Neither Art. 10 nor Art. 13 makes good records a condition; they cannot offset the violations "
            "Art. 13 lists."
        ),
    ),
}

_MODE_TEXT: Final[dict[ShortChangingWindow, tuple[str, str]]] = {
    ShortChangingWindow.ANY_SPAN: ("回溯期内任意一年期间", "any one-year span within the look-back window"),
    ShortChangingWindow.TRAILING: ("截至评级日的一年期间", "the year ending on the rating date"),
}


class RuleRow(TypedDict):
    """One row of the public rule table."""

    rule: str
    article: str
    article_zh: str
    article_en: str
    condition_zh: str
    condition_en: str
    threshold: int | None
    window_years: int | None
    window_days: int | None
    outcome_class: str | None
    choice_reasoning_zh: str
    choice_reasoning_en: str


def _params(rule: Rule, rules: RuleSet) -> tuple[int | None, int | None, IntegrityClass | None]:
    """The threshold, window (years) and outcome class a rule uses under a rule set."""
    lookback = rules.untrustworthy_lookback_years
    untrustworthy = IntegrityClass.UNTRUSTWORTHY
    table: dict[Rule, tuple[int | None, int | None, IntegrityClass | None]] = {
        Rule.VERIFIED_ONLY: (None, None, None),
        Rule.WINDOW_CONVENTION: (None, None, None),
        Rule.ART13_1_INSPECTION_FAILED: (rules.inspection_failed_threshold, lookback, untrustworthy),
        Rule.ART13_2_ACCIDENT_SOCIAL_IMPACT: (rules.accident_threshold, lookback, untrustworthy),
        Rule.ART13_3_INSTRUMENT_IN_USE: (rules.instrument_in_use_threshold, lookback, untrustworthy),
        Rule.ART13_4_COMPLAINTS_SUBSTANTIATED: (rules.complaint_threshold, lookback, untrustworthy),
        Rule.ART13_5_SHORT_CHANGING_PENALTIES: (
            rules.short_changing_threshold,
            rules.short_changing_window_years,
            untrustworthy,
        ),
        Rule.ART13_LOOKBACK: (None, lookback, None),
        Rule.ART10_TRUSTWORTHY: (None, rules.clean_record_years, IntegrityClass.TRUSTWORTHY),
        Rule.ART10_BASICALLY_TRUSTWORTHY: (
            None,
            rules.clean_record_years,
            IntegrityClass.BASICALLY_TRUSTWORTHY,
        ),
        Rule.MANAGEMENT_NOT_ASSESSED: (None, rules.clean_record_years, rules.management_unassessed_class),
        Rule.GAP: (None, rules.clean_record_years, rules.gap_class),
        Rule.GOOD_RECORD: (None, rules.good_record_years, None),
    }
    return table[rule]


def render(template: str, rule: Rule, rules: RuleSet, count: int = 0) -> str:
    """Fill a rule text template with the rule set's figures and an evidence count."""
    threshold, window, outcome = _params(rule, rules)
    mode_zh, mode_en = _MODE_TEXT[rules.short_changing_window_mode]
    years = rules.untrustworthy_lookback_years if rule in ART13_RULES else window
    return template.format(
        count=count,
        threshold=threshold,
        years=years,
        window_years=window,
        mode_zh=mode_zh,
        mode_en=mode_en,
        class_zh=outcome.label_zh if outcome else "",
        class_en=outcome.label_en if outcome else "",
    )


def rule_table(rules: RuleSet = DEFAULT_RULES) -> list[RuleRow]:
    """The rule table as rows for an API endpoint, in the fixed order of the Rule enum."""
    rows: list[RuleRow] = []
    for rule in Rule:
        text = RULE_TEXT[rule]
        threshold, window, outcome = _params(rule, rules)
        rows.append(
            RuleRow(
                rule=rule.value,
                article=text.article,
                article_zh=text.article_zh,
                article_en=text.article_en,
                condition_zh=render(text.condition_zh, rule, rules),
                condition_en=render(text.condition_en, rule, rules),
                threshold=threshold,
                window_years=window,
                # Windows are calendar years (Civil Code Art. 202), never a fixed day count.
                window_days=None,
                outcome_class=outcome.value if outcome else None,
                choice_reasoning_zh=text.reasoning_zh,
                choice_reasoning_en=text.reasoning_en,
            )
        )
    return rows
