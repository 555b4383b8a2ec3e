"""Table-driven tests of the classification engine: each Art. 13 rule, window edges and defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from backend.records.engine import (
    OperatorFacts,
    Rating,
    RecordFact,
    add_years,
    aggregate,
    rate,
    rate_from_aggregates,
    rate_many,
    window_start,
)
from backend.records.rules import (
    DEFAULT_RULES,
    INSTRUMENT_KINDS,
    IntegrityClass,
    RecordKind,
    RecordState,
    Rule,
    RuleSet,
    ShortChangingWindow,
    rule_table,
)

AS_OF = date(2025, 6, 15)
T = IntegrityClass.TRUSTWORTHY
B = IntegrityClass.BASICALLY_TRUSTWORTHY
U = IntegrityClass.UNTRUSTWORTHY
K = RecordKind
GAP = Rule.GAP.value


def rec(
    record_id: str,
    kind: RecordKind,
    when: date | int,
    state: RecordState = RecordState.VERIFIED,
    *,
    in_use: bool | None = None,
    impact: bool | None = None,
) -> RecordFact:
    """A record dated ``when`` (a date, or a number of days before AS_OF)."""
    day = when if isinstance(when, date) else AS_OF - timedelta(days=when)
    return RecordFact(record_id, kind, state, day, instrument_still_in_use=in_use, social_impact=impact)


def check(
    records: list[RecordFact],
    expected_cls: IntegrityClass,
    expected_rules: tuple[str, ...],
    *,
    management: bool | None = True,
    as_of: date = AS_OF,
    rules: RuleSet = DEFAULT_RULES,
) -> Rating:
    """Rate, assert class and reason rules, and assert the aggregate path agrees."""
    facts = OperatorFacts(management_sound=management)
    rating = rate(facts, records, as_of, rules)
    assert rating.cls is expected_cls
    assert tuple(r.rule for r in rating.reasons) == expected_rules
    assert rate_from_aggregates(aggregate(facts, records, as_of, rules), rules) == (
        expected_cls,
        expected_rules,
    )
    return rating


@dataclass(frozen=True)
class Case:
    """One row of a rule table test."""

    name: str
    records: list[RecordFact]
    cls: IntegrityClass
    rules: tuple[str, ...]


ART13_CASES = [
    Case(
        "13(1) one failed inspection", [rec("i1", K.INSPECTION_FAILED, 10)], U, ("art13_1_inspection_failed",)
    ),
    Case(
        "13(2) accident with social impact",
        [rec("a1", K.METROLOGY_ACCIDENT, 10, impact=True)],
        U,
        ("art13_2_accident_social_impact",),
    ),
    Case("13(2) accident, no social impact", [rec("a1", K.METROLOGY_ACCIDENT, 10, impact=False)], B, (GAP,)),
    Case("13(2) accident, impact not found", [rec("a1", K.METROLOGY_ACCIDENT, 10)], B, (GAP,)),
    *[
        Case(
            f"13(3) {kind.value} still in use",
            [rec("n1", kind, 10, in_use=True)],
            U,
            ("art13_3_instrument_in_use",),
        )
        for kind in sorted(INSTRUMENT_KINDS)
    ],
    *[
        Case(f"13(3) {kind.value} no longer in use", [rec("n1", kind, 10, in_use=False)], B, (GAP,))
        for kind in sorted(INSTRUMENT_KINDS)
    ],
    *[
        Case(f"13(3) {kind.value} use not found", [rec("n1", kind, 10)], B, (GAP,))
        for kind in sorted(INSTRUMENT_KINDS)
    ],
    Case(
        "13(4) two complaints",
        [rec("c1", K.COMPLAINT_SUBSTANTIATED, 10), rec("c2", K.COMPLAINT_SUBSTANTIATED, 20)],
        B,
        (GAP,),
    ),
    Case(
        "13(4) three complaints",
        [rec(f"c{i}", K.COMPLAINT_SUBSTANTIATED, 100 * i) for i in range(1, 4)],
        U,
        ("art13_4_complaints_substantiated",),
    ),
    Case(
        "13(4) three complaints years apart",
        [rec(f"c{i}", K.COMPLAINT_SUBSTANTIATED, 500 * i) for i in range(1, 4)],
        U,
        ("art13_4_complaints_substantiated",),
    ),
    Case("13(5) one penalty", [rec("s1", K.SHORT_CHANGING_PENALTY, 10)], B, (GAP,)),
    Case(
        "13(5) two penalties within a year",
        [rec("s1", K.SHORT_CHANGING_PENALTY, 10), rec("s2", K.SHORT_CHANGING_PENALTY, 300)],
        U,
        ("art13_5_short_changing_penalties",),
    ),
    Case(
        "13(5) two penalties same day",
        [rec("s1", K.SHORT_CHANGING_PENALTY, 10), rec("s2", K.SHORT_CHANGING_PENALTY, 10)],
        U,
        ("art13_5_short_changing_penalties",),
    ),
    Case(
        "13(5) two penalties two years apart",
        [rec("s1", K.SHORT_CHANGING_PENALTY, 10), rec("s2", K.SHORT_CHANGING_PENALTY, 740)],
        B,
        (GAP,),
    ),
    Case(
        "13(5) a pair within a year three years ago (any span)",
        [rec("s1", K.SHORT_CHANGING_PENALTY, 1100), rec("s2", K.SHORT_CHANGING_PENALTY, 1000)],
        U,
        ("art13_5_short_changing_penalties",),
    ),
    *[
        Case(f"Art. 8 bad record {kind.value} alone", [rec("x1", kind, 10)], B, (GAP,))
        for kind in (
            K.NET_CONTENT_NONCOMPLIANT,
            K.SHORT_WEIGHT,
            K.METROLOGY_CHEATING,
            K.COMMITMENT_BREACHED,
            K.ASSOCIATION_WARNING,
        )
    ],
    Case(
        "several conditions: reasons in article order",
        [
            rec("s2", K.SHORT_CHANGING_PENALTY, 20),
            rec("s1", K.SHORT_CHANGING_PENALTY, 30),
            rec("i1", K.INSPECTION_FAILED, 40),
            rec("n1", K.INSTRUMENT_OVERDUE, 50, in_use=True),
        ],
        U,
        ("art13_1_inspection_failed", "art13_3_instrument_in_use", "art13_5_short_changing_penalties"),
    ),
]


@pytest.mark.parametrize("case", ART13_CASES, ids=lambda c: c.name)
def test_art13_rule_table(case: Case) -> None:
    check(case.records, case.cls, case.rules)


def test_art13_reasons_cite_record_ids_chronologically() -> None:
    rating = check(
        [
            rec("c-b", K.COMPLAINT_SUBSTANTIATED, 5),
            rec("c-a", K.COMPLAINT_SUBSTANTIATED, 50),
            rec("c-c", K.COMPLAINT_SUBSTANTIATED, 5),
            rec("c-old", K.COMPLAINT_SUBSTANTIATED, 3000),
        ],
        U,
        ("art13_4_complaints_substantiated",),
    )
    (reason,) = rating.reasons
    assert reason.record_ids == ("c-a", "c-b", "c-c")
    assert reason.article == "13(4)"
    assert "3" in reason.explanation_zh and "第十三条第（四）项" in reason.explanation_zh
    assert "Art. 13(4)" in reason.explanation_en


def test_short_changing_cites_only_penalties_in_a_qualifying_span() -> None:
    rating = check(
        [
            rec("s-lone", K.SHORT_CHANGING_PENALTY, 1500),
            rec("s1", K.SHORT_CHANGING_PENALTY, 200),
            rec("s2", K.SHORT_CHANGING_PENALTY, 100),
        ],
        U,
        ("art13_5_short_changing_penalties",),
    )
    assert rating.reasons[0].record_ids == ("s1", "s2")


# --- windows at their edges: the day before, the day of and the day after the boundary --------------------

EDGE = [(-1, True), (0, True), (1, False)]


@pytest.mark.parametrize(("offset", "counts"), EDGE, ids=["day-before", "day-of", "day-after"])
@pytest.mark.parametrize(
    "fact_date",
    [date(2020, 6, 15), date(2020, 2, 29), date(2019, 2, 28), date(2020, 12, 31)],
    ids=str,
)
def test_art13_lookback_edges(fact_date: date, offset: int, counts: bool) -> None:
    boundary = add_years(fact_date, 5)
    as_of = boundary + timedelta(days=offset)
    records = [rec("i1", K.INSPECTION_FAILED, fact_date)]
    if counts:
        check(records, U, ("art13_1_inspection_failed",), as_of=as_of)
    else:
        check(records, T, ("art10_trustworthy",), as_of=as_of)


@pytest.mark.parametrize(("offset", "counts"), EDGE, ids=["day-before", "day-of", "day-after"])
def test_clean_record_window_edges(offset: int, counts: bool) -> None:
    fact_date = date(2020, 2, 29)
    as_of = add_years(fact_date, 5) + timedelta(days=offset)
    records = [rec("c1", K.COMPLAINT_SUBSTANTIATED, fact_date)]
    if counts:
        check(records, B, (GAP,), as_of=as_of)
    else:
        check(records, T, ("art10_trustworthy",), as_of=as_of)


def test_leap_day_boundaries_follow_civil_code_month_end_rule() -> None:
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)
    assert add_years(date(2024, 2, 29), -5) == date(2019, 2, 28)
    # A record of 2019-02-28 leaves the five-year window after 2024-02-28; 2024-02-29 is one day too late.
    assert window_start(date(2024, 2, 29), 5) == date(2019, 3, 1)
    assert window_start(date(2024, 2, 28), 5) == date(2019, 2, 28)
    assert window_start(date(2025, 2, 28), 1) == date(2024, 2, 28)


@pytest.mark.parametrize(("offset", "counts"), EDGE, ids=["day-before", "day-of", "day-after"])
@pytest.mark.parametrize("first", [date(2024, 3, 10), date(2024, 2, 29), date(2023, 2, 28)], ids=str)
def test_short_changing_span_edges(first: date, offset: int, counts: bool) -> None:
    second = add_years(first, 1) + timedelta(days=offset)
    records = [rec("s1", K.SHORT_CHANGING_PENALTY, first), rec("s2", K.SHORT_CHANGING_PENALTY, second)]
    expected = (U, ("art13_5_short_changing_penalties",)) if counts else (B, (GAP,))
    check(records, *expected, as_of=date(2025, 6, 15))


TRAILING = RuleSet(short_changing_window_mode=ShortChangingWindow.TRAILING)


@pytest.mark.parametrize(("offset", "counts"), EDGE, ids=["day-before", "day-of", "day-after"])
def test_short_changing_trailing_edges(offset: int, counts: bool) -> None:
    first, second = date(2024, 3, 10), date(2024, 9, 1)
    as_of = add_years(first, 1) + timedelta(days=offset)
    records = [rec("s1", K.SHORT_CHANGING_PENALTY, first), rec("s2", K.SHORT_CHANGING_PENALTY, second)]
    expected = (U, ("art13_5_short_changing_penalties",)) if counts else (B, (GAP,))
    check(records, *expected, as_of=as_of, rules=TRAILING)


def test_trailing_and_any_span_readings_differ_on_an_old_pair() -> None:
    records = [
        rec("s1", K.SHORT_CHANGING_PENALTY, date(2021, 1, 1)),
        rec("s2", K.SHORT_CHANGING_PENALTY, date(2021, 6, 1)),
    ]
    check(records, U, ("art13_5_short_changing_penalties",))
    check(records, B, (GAP,), rules=TRAILING)


def test_short_changing_pair_straddling_the_lookback_start_does_not_count() -> None:
    lookback_start = window_start(AS_OF, 5)
    records = [
        rec("s1", K.SHORT_CHANGING_PENALTY, lookback_start - timedelta(days=1)),
        rec("s2", K.SHORT_CHANGING_PENALTY, lookback_start + timedelta(days=100)),
    ]
    rating = check(records, B, (GAP,))
    assert rating.reasons[0].record_ids == ("s2",)


def test_records_after_as_of_are_ignored() -> None:
    check([rec("i1", K.INSPECTION_FAILED, AS_OF + timedelta(days=1))], T, ("art10_trustworthy",))
    check([rec("i1", K.INSPECTION_FAILED, AS_OF)], U, ("art13_1_inspection_failed",))


# --- state filtering ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "cls", "rules"),
    [
        (RecordState.VERIFIED, U, ("art13_1_inspection_failed",)),
        (RecordState.REPORTED, T, ("art10_trustworthy",)),
        (RecordState.DISMISSED, T, ("art10_trustworthy",)),
        (RecordState.REVOKED, T, ("art10_trustworthy",)),
    ],
)
def test_only_verified_records_count(state: RecordState, cls: IntegrityClass, rules: tuple[str, ...]) -> None:
    check([rec("i1", K.INSPECTION_FAILED, 10, state)], cls, rules)


def test_unverified_complaints_do_not_complete_a_threshold() -> None:
    records = [
        rec("c1", K.COMPLAINT_SUBSTANTIATED, 10),
        rec("c2", K.COMPLAINT_SUBSTANTIATED, 20),
        rec("c3", K.COMPLAINT_SUBSTANTIATED, 30, RecordState.REPORTED),
        rec("c4", K.COMPLAINT_SUBSTANTIATED, 40, RecordState.REVOKED),
    ]
    rating = check(records, B, (GAP,))
    assert rating.reasons[0].record_ids == ("c2", "c1")


# --- management finding and the defaults -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("management", "cls", "rule"),
    [
        (True, T, "art10_trustworthy"),
        (False, B, "art10_basically_trustworthy"),
        (None, B, "management_not_assessed"),
    ],
)
def test_no_bad_record_follows_management_finding(
    management: bool | None, cls: IntegrityClass, rule: str
) -> None:
    check([], cls, (rule,), management=management)


def test_unassessed_management_default_is_data() -> None:
    rules = RuleSet(management_unassessed_class=T)
    check([], T, ("management_not_assessed",), management=None, rules=rules)


@pytest.mark.parametrize("management", [True, False, None])
def test_gap_default_is_basically_trustworthy(management: bool | None) -> None:
    rating = check([rec("c1", K.COMPLAINT_SUBSTANTIATED, 10)], B, (GAP,), management=management)
    assert rating.reasons[0].record_ids == ("c1",)
    assert "基本守信" in rating.reasons[0].explanation_zh
    assert "basically trustworthy" in rating.reasons[0].explanation_en


def test_gap_class_is_data() -> None:
    strict = RuleSet(gap_class=U)
    check([rec("c1", K.COMPLAINT_SUBSTANTIATED, 10)], U, (GAP,), rules=strict)
    lenient = RuleSet(gap_class=T)
    check([rec("c1", K.COMPLAINT_SUBSTANTIATED, 10)], T, (GAP,), rules=lenient)
    # A bad record never lifts an operator above what its management finding alone would give.
    check(
        [rec("c1", K.COMPLAINT_SUBSTANTIATED, 10)],
        B,
        (GAP, "art10_basically_trustworthy"),
        management=False,
        rules=lenient,
    )


def test_thresholds_are_data() -> None:
    rules = RuleSet(complaint_threshold=2, short_changing_threshold=3, untrustworthy_lookback_years=1)
    complaints = [rec("c1", K.COMPLAINT_SUBSTANTIATED, 10), rec("c2", K.COMPLAINT_SUBSTANTIATED, 20)]
    check(complaints, U, ("art13_4_complaints_substantiated",), rules=rules)
    pair = [rec("s1", K.SHORT_CHANGING_PENALTY, 10), rec("s2", K.SHORT_CHANGING_PENALTY, 20)]
    check(pair, B, (GAP,), rules=rules)
    check([rec("i1", K.INSPECTION_FAILED, 400)], B, (GAP,), rules=rules)


# --- good records -----------------------------------------------------------------------------------------


def test_good_records_never_override_untrustworthy() -> None:
    records = [
        rec("i1", K.INSPECTION_FAILED, 10),
        rec("g2", K.DEMONSTRATION_UNIT, 5),
        rec("g1", K.COMMITMENT_KEPT, 30),
    ]
    rating = check(records, U, ("art13_1_inspection_failed", "good_record"))
    assert rating.reasons[-1].record_ids == ("g1", "g2")


def test_good_records_support_but_do_not_lift_a_class() -> None:
    check([rec("g1", K.COMMITMENT_KEPT, 10)], T, ("art10_trustworthy", "good_record"))
    check(
        [rec("g1", K.DEMONSTRATION_UNIT, 10)],
        B,
        ("art10_basically_trustworthy", "good_record"),
        management=False,
    )
    check(
        [rec("g1", K.COMMITMENT_KEPT, 10), rec("c1", K.COMPLAINT_SUBSTANTIATED, 10)], B, (GAP, "good_record")
    )


def test_old_or_unverified_good_records_are_not_listed() -> None:
    check([rec("g1", K.COMMITMENT_KEPT, 3000)], T, ("art10_trustworthy",))
    check([rec("g1", K.COMMITMENT_KEPT, 10, RecordState.REPORTED)], T, ("art10_trustworthy",))


# --- shape, validation and bulk ---------------------------------------------------------------------------


def test_rating_carries_as_of_and_rule_version() -> None:
    rating = rate(OperatorFacts(True), [], AS_OF)
    assert rating.as_of == AS_OF
    assert rating.rules_version == DEFAULT_RULES.version


def test_every_reason_has_both_languages() -> None:
    records = [rec("i1", K.INSPECTION_FAILED, 10), rec("g1", K.COMMITMENT_KEPT, 10)]
    for management in (True, False, None):
        for recs in ([], records, records[1:]):
            for reason in rate(OperatorFacts(management), recs, AS_OF).reasons:
                assert re.search(r"[\u4e00-\u9fff]", reason.explanation_zh)
                assert reason.explanation_en and "{" not in reason.explanation_en + reason.explanation_zh


def test_duplicate_record_ids_are_refused() -> None:
    records = [rec("c1", K.COMPLAINT_SUBSTANTIATED, 10), rec("c1", K.COMPLAINT_SUBSTANTIATED, 20)]
    with pytest.raises(ValueError, match="duplicate"):
        rate(OperatorFacts(True), records, AS_OF)
    with pytest.raises(ValueError, match="duplicate"):
        aggregate(OperatorFacts(True), records, AS_OF)


def test_findings_on_the_wrong_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="social_impact"):
        rec("c1", K.COMPLAINT_SUBSTANTIATED, 10, impact=True)
    with pytest.raises(ValueError, match="instrument_still_in_use"):
        rec("a1", K.METROLOGY_ACCIDENT, 10, in_use=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"complaint_threshold": 0},
        {"untrustworthy_lookback_years": 0},
        {"short_changing_window_years": 0},
        {"management_unassessed_class": U},
    ],
)
def test_invalid_rule_sets_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RuleSet(**kwargs)  # type: ignore[arg-type]


def test_rate_many_keeps_ids_and_order() -> None:
    items = [
        ("op-2", OperatorFacts(True), [rec("i1", K.INSPECTION_FAILED, 10)]),
        ("op-1", OperatorFacts(False), []),
    ]
    result = list(rate_many(items, AS_OF))
    assert [(op, r.cls) for op, r in result] == [("op-2", U), ("op-1", B)]


# --- the rule table --------------------------------------------------------------------------------------


def test_rule_table_lists_every_rule_with_bilingual_text() -> None:
    rows = rule_table()
    assert [row["rule"] for row in rows] == [rule.value for rule in Rule]
    for row in rows:
        assert re.search(r"[\u4e00-\u9fff]", row["condition_zh"]), row["rule"]
        assert re.search(r"[\u4e00-\u9fff]", row["choice_reasoning_zh"]), row["rule"]
        assert row["condition_en"] and row["choice_reasoning_en"] and row["article_en"], row["rule"]
        assert "{" not in row["condition_zh"] + row["condition_en"]
        assert row["window_days"] is None


def test_rule_table_reflects_the_rule_set() -> None:
    default = {row["rule"]: row for row in rule_table()}
    assert default["art13_4_complaints_substantiated"]["threshold"] == 3
    assert default["art13_5_short_changing_penalties"]["threshold"] == 2
    assert default["art13_5_short_changing_penalties"]["window_years"] == 1
    assert default["art13_lookback"]["window_years"] == 5
    assert default[GAP]["outcome_class"] == "basically_trustworthy"
    assert default["management_not_assessed"]["outcome_class"] == "basically_trustworthy"
    assert "任意一年期间" in default["art13_5_short_changing_penalties"]["condition_zh"]

    custom = {row["rule"]: row for row in rule_table(RuleSet(complaint_threshold=4, gap_class=U))}
    assert custom["art13_4_complaints_substantiated"]["threshold"] == 4
    assert "4次以上" in custom["art13_4_complaints_substantiated"]["condition_zh"]
    assert custom[GAP]["outcome_class"] == "untrustworthy"
