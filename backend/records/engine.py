"""The integrity classification engine (Art. 10, 13): pure functions from records to a class with reasons."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Final, TypeVar

from backend.records.rules import (
    ART13_RULES,
    BAD_KINDS,
    DEFAULT_RULES,
    GOOD_KINDS,
    INSTRUMENT_KINDS,
    RULE_TEXT,
    IntegrityClass,
    RecordKind,
    RecordState,
    Rule,
    RuleSet,
    ShortChangingWindow,
    render,
    worse_class,
)

K = TypeVar("K")

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class OperatorFacts:
    """Facts about an operator that are not records: Art. 10's management finding (None = not assessed)."""

    management_sound: bool | None = None


@dataclass(frozen=True, slots=True)
class RecordFact:
    """The part of an integrity record the engine reads."""

    id: str
    kind: RecordKind
    state: RecordState
    fact_date: date
    # Art. 13(3) needs the finding that the instrument was still in use; None = no finding.
    instrument_still_in_use: bool | None = None
    # Art. 13(2) needs the finding that the accident had social impact; None = no finding.
    social_impact: bool | None = None

    def __post_init__(self) -> None:
        """Refuse findings that belong to another kind, which would signal a mapping bug upstream."""
        if self.instrument_still_in_use is not None and self.kind not in INSTRUMENT_KINDS:
            raise ValueError(
                f"记录 {self.id}：仅计量器具类记录可有“继续使用”认定 / "
                f"record {self.id}: only instrument records carry instrument_still_in_use"
            )
        if self.social_impact is not None and self.kind is not RecordKind.METROLOGY_ACCIDENT:
            raise ValueError(
                f"记录 {self.id}：仅计量事故记录可有“社会影响”认定 / "
                f"record {self.id}: only metrology accidents carry social_impact"
            )


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason for a class: the rule, its article, the records it rests on and a bilingual explanation."""

    rule: str
    article: str
    record_ids: tuple[str, ...]
    explanation_zh: str
    explanation_en: str


@dataclass(frozen=True, slots=True)
class Rating:
    """The result of a classification: the class, the rating date, the rule-set version and the reasons."""

    cls: IntegrityClass
    as_of: date
    reasons: tuple[Reason, ...]
    rules_version: str = DEFAULT_RULES.version


# Counts are of VERIFIED records dated on or before as_of; "in an N-year window" means
# fact_date + interval 'N years' >= as_of (Civil Code Art. 202 arithmetic, which PostgreSQL shares).
@dataclass(frozen=True, slots=True)
class RatingInputs:
    """Per-operator counts that SQL can compute set-wise; rate_from_aggregates turns them into a class."""

    management_sound: bool | None
    # Art. 13(1)-(4): in the untrustworthy look-back window.
    inspections_failed: int
    accidents_with_social_impact: int
    instruments_in_use: int
    complaints_substantiated: int
    # Art. 13(5), ANY_SPAN: the largest number of penalties in the look-back window falling within
    # [p, p + W years] for some penalty date p, i.e. max(count(*) OVER (ORDER BY fact_date RANGE BETWEEN
    # CURRENT ROW AND INTERVAL 'W years' FOLLOWING)); TRAILING: penalties within W years of as_of.
    short_changing_peak: int
    # Any bad kind in the clean-record window (Art. 10), and good kinds in the good-record window.
    bad_records: int
    good_records: int


def add_years(d: date, years: int) -> date:
    """The same day ``years`` later or earlier; Feb 29 becomes Feb 28 where there is none (Civil Code 202)."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


@lru_cache(maxsize=1024)
def window_start(as_of: date, years: int) -> date:
    """The earliest fact date still inside a ``years``-year window on ``as_of`` (usable as a SQL bound)."""
    start = add_years(as_of, -years)
    # add_years is monotone but not injective around Feb 29, so settle the exact boundary by probing.
    while add_years(start, years) < as_of:
        start += _ONE_DAY
    while add_years(start - _ONE_DAY, years) >= as_of:
        start -= _ONE_DAY
    return start


def _sort_key(record: RecordFact) -> tuple[date, str]:
    """Chronological order with the id as tie-breaker, so reasons list records deterministically."""
    return (record.fact_date, record.id)


def _ids(records: Iterable[RecordFact]) -> tuple[str, ...]:
    """Record ids in chronological order."""
    return tuple(r.id for r in sorted(records, key=_sort_key))


def _check_unique(records: Sequence[RecordFact]) -> None:
    """Refuse duplicate record ids, which would double-count toward Art. 13's thresholds."""
    if len({r.id for r in records}) == len(records):
        return
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValueError(f"重复的记录编号 {record.id} / duplicate record id {record.id}")
        seen.add(record.id)


def _short_changing_any_span(penalties: list[RecordFact], years: int, threshold: int) -> list[RecordFact]:
    """Penalties that belong to some group of ``threshold`` or more lying within one ``years`` span."""
    if len(penalties) < threshold:
        return []
    ordered = sorted(penalties, key=_sort_key)
    qualifying: set[int] = set()
    end = 0
    for first, record in enumerate(ordered):
        limit = add_years(record.fact_date, years)
        end = max(end, first)
        while end < len(ordered) and ordered[end].fact_date <= limit:
            end += 1
        if end - first >= threshold:
            qualifying.update(range(first, end))
    return [ordered[i] for i in sorted(qualifying)]


def _classify(
    hits: Sequence[Rule], has_bad: bool, management_sound: bool | None, rules: RuleSet
) -> tuple[IntegrityClass, tuple[Rule, ...]]:
    """Art. 10/13 decision from what the evidence established; shared by both rating paths."""
    if hits:
        return IntegrityClass.UNTRUSTWORTHY, tuple(hits)
    if management_sound is True:
        management_cls, management_rule = IntegrityClass.TRUSTWORTHY, Rule.ART10_TRUSTWORTHY
    elif management_sound is False:
        management_cls, management_rule = (
            IntegrityClass.BASICALLY_TRUSTWORTHY,
            Rule.ART10_BASICALLY_TRUSTWORTHY,
        )
    else:
        management_cls, management_rule = rules.management_unassessed_class, Rule.MANAGEMENT_NOT_ASSESSED
    if not has_bad:
        return management_cls, (management_rule,)
    # A bad record never earns more than the management finding would without it: keeps rating monotone.
    cls = worse_class(rules.gap_class, management_cls)
    if cls.rank < rules.gap_class.rank:
        return cls, (Rule.GAP, management_rule)
    return cls, (Rule.GAP,)


@lru_cache(maxsize=4096)
def _explanations(rule: Rule, rules: RuleSet, count: int) -> tuple[str, str]:
    """The zh and en explanation of a rule for an evidence count; cached, as bulk re-rating repeats them."""
    text = RULE_TEXT[rule]
    return render(text.explanation_zh, rule, rules, count), render(text.explanation_en, rule, rules, count)


def _reason(rule: Rule, rules: RuleSet, record_ids: tuple[str, ...]) -> Reason:
    """A Reason for a rule, its text filled from the rule set and the evidence."""
    zh, en = _explanations(rule, rules, len(record_ids))
    return Reason(
        rule=rule.value,
        article=RULE_TEXT[rule].article,
        record_ids=record_ids,
        explanation_zh=zh,
        explanation_en=en,
    )


# Where each kind's evidence goes in rate(): Art. 13 item number minus one.
_ART13_SLOT: dict[RecordKind, int] = {
    RecordKind.INSPECTION_FAILED: 0,
    RecordKind.METROLOGY_ACCIDENT: 1,
    **dict.fromkeys(INSTRUMENT_KINDS, 2),
    RecordKind.COMPLAINT_SUBSTANTIATED: 3,
    RecordKind.SHORT_CHANGING_PENALTY: 4,
}


@lru_cache(maxsize=256)
def _window_starts(as_of: date, rules: RuleSet) -> tuple[date, date, date, date]:
    """First fact dates inside the look-back, clean-record, good-record and short-changing windows."""
    return (
        window_start(as_of, rules.untrustworthy_lookback_years),
        window_start(as_of, rules.clean_record_years),
        window_start(as_of, rules.good_record_years),
        window_start(as_of, rules.short_changing_window_years),
    )


def _art13_thresholds(rules: RuleSet) -> tuple[int, int, int, int, int]:
    """Art. 13(1)-(5) thresholds in article order."""
    return (
        rules.inspection_failed_threshold,
        rules.accident_threshold,
        rules.instrument_in_use_threshold,
        rules.complaint_threshold,
        rules.short_changing_threshold,
    )


def rate(
    facts: OperatorFacts, records: Sequence[RecordFact], as_of: date, rules: RuleSet = DEFAULT_RULES
) -> Rating:
    """Classify one operator on ``as_of`` from its records, with reasons citing record ids."""
    _check_unique(records)
    art13_start, clean_start, good_start, trailing_start = _window_starts(as_of, rules)

    evidence: tuple[list[RecordFact], ...] = ([], [], [], [], [])
    bad: list[RecordFact] = []
    good: list[RecordFact] = []
    verified = RecordState.VERIFIED
    for record in records:
        day = record.fact_date
        if record.state is not verified or day > as_of:
            continue
        kind = record.kind
        if kind in GOOD_KINDS:
            if day >= good_start:
                good.append(record)
            continue
        if day >= clean_start:
            bad.append(record)
        slot = _ART13_SLOT.get(kind)
        if slot is None or day < art13_start:
            continue
        # Art. 13(2) and (3) need a positive finding; a missing one (None) does not meet the condition.
        if slot == 1 and record.social_impact is not True:
            continue
        if slot == 2 and record.instrument_still_in_use is not True:
            continue
        evidence[slot].append(record)

    thresholds = _art13_thresholds(rules)
    penalties = evidence[4]
    if rules.short_changing_window_mode is ShortChangingWindow.ANY_SPAN:
        qualifying = _short_changing_any_span(penalties, rules.short_changing_window_years, thresholds[4])
    else:
        in_window = [r for r in penalties if r.fact_date >= trailing_start]
        qualifying = in_window if len(in_window) >= thresholds[4] else []
    # Short-changing evidence is reduced to the penalties in qualifying spans, so any one left meets (5).
    evidence = (*evidence[:4], qualifying)
    needed = (*thresholds[:4], 1)
    hits = [
        rule for rule, found, need in zip(ART13_RULES, evidence, needed, strict=True) if len(found) >= need
    ]
    cls, decided = _classify(hits, bool(bad), facts.management_sound, rules)

    reasons: list[Reason] = []
    for rule in decided:
        if rule in ART13_RULES:
            ids = _ids(evidence[ART13_RULES.index(rule)])
        elif rule is Rule.GAP:
            ids = _ids(bad)
        else:
            ids = ()
        reasons.append(_reason(rule, rules, ids))
    if good:
        reasons.append(_reason(Rule.GOOD_RECORD, rules, _ids(good)))
    return Rating(cls=cls, as_of=as_of, reasons=tuple(reasons), rules_version=rules.version)


def rate_many(
    items: Iterable[tuple[K, OperatorFacts, Sequence[RecordFact]]],
    as_of: date,
    rules: RuleSet = DEFAULT_RULES,
) -> Iterator[tuple[K, Rating]]:
    """Rate operators one after another, lazily, for bulk re-rating on one date."""
    for operator_id, facts, records in items:
        yield operator_id, rate(facts, records, as_of, rules)


def _within(fact_date: date, years: int, as_of: date) -> bool:
    """Whether ``fact_date`` lies in a ``years``-year window on ``as_of``, tested the way SQL does."""
    return fact_date <= as_of and add_years(fact_date, years) >= as_of


def aggregate(
    facts: OperatorFacts, records: Sequence[RecordFact], as_of: date, rules: RuleSet = DEFAULT_RULES
) -> RatingInputs:
    """Reference implementation of the per-operator SQL aggregation that feeds rate_from_aggregates."""
    _check_unique(records)
    verified = [r for r in records if r.state is RecordState.VERIFIED]
    lookback = rules.untrustworthy_lookback_years

    def count(kinds: frozenset[RecordKind], needs_finding: bool = False) -> int:
        """Verified records of some kinds in the look-back window, optionally only with a True finding."""
        total = 0
        for r in verified:
            if r.kind not in kinds or not _within(r.fact_date, lookback, as_of):
                continue
            finding = (
                r.social_impact if r.kind is RecordKind.METROLOGY_ACCIDENT else r.instrument_still_in_use
            )
            if not needs_finding or finding is True:
                total += 1
        return total

    penalty_dates = [
        r.fact_date
        for r in verified
        if r.kind is RecordKind.SHORT_CHANGING_PENALTY and _within(r.fact_date, lookback, as_of)
    ]
    span = rules.short_changing_window_years
    if rules.short_changing_window_mode is ShortChangingWindow.ANY_SPAN:
        peak = max(
            (sum(1 for q in penalty_dates if p <= q <= add_years(p, span)) for p in penalty_dates),
            default=0,
        )
    else:
        peak = sum(1 for p in penalty_dates if _within(p, span, as_of))

    return RatingInputs(
        management_sound=facts.management_sound,
        inspections_failed=count(frozenset({RecordKind.INSPECTION_FAILED})),
        accidents_with_social_impact=count(frozenset({RecordKind.METROLOGY_ACCIDENT}), needs_finding=True),
        instruments_in_use=count(INSTRUMENT_KINDS, needs_finding=True),
        complaints_substantiated=count(frozenset({RecordKind.COMPLAINT_SUBSTANTIATED})),
        short_changing_peak=peak,
        bad_records=sum(
            1
            for r in verified
            if r.kind in BAD_KINDS and _within(r.fact_date, rules.clean_record_years, as_of)
        ),
        good_records=sum(
            1
            for r in verified
            if r.kind in GOOD_KINDS and _within(r.fact_date, rules.good_record_years, as_of)
        ),
    )


def rate_from_aggregates(
    agg: RatingInputs, rules: RuleSet = DEFAULT_RULES
) -> tuple[IntegrityClass, tuple[str, ...]]:
    """Classify from pre-aggregated counts; returns the class and the reason rule keys rate() would give."""
    t1, t2, t3, t4, t5 = _art13_thresholds(rules)
    hits = [
        rule
        for rule, met in zip(
            ART13_RULES,
            (
                agg.inspections_failed >= t1,
                agg.accidents_with_social_impact >= t2,
                agg.instruments_in_use >= t3,
                agg.complaints_substantiated >= t4,
                agg.short_changing_peak >= t5,
            ),
            strict=True,
        )
        if met
    ]
    cls, decided = _classify(hits, agg.bad_records > 0, agg.management_sound, rules)
    if agg.good_records > 0:
        return cls, (*decided, Rule.GOOD_RECORD)
    return cls, decided


# The set-based form of aggregate() for PostgreSQL. The caller supplies a relation named rating_records
# (a view, temporary table or CTE prefixed to this text) with the columns operator_id, kind (text),
# state (text), fact_date (date), instrument_still_in_use (boolean) and social_impact (boolean), and binds
# aggregate_sql_params(). Operators without any verified record get no row: use zero counts for them.
# "fact_date + make_interval(years => N) >= as_of" is Civil Code Art. 202 arithmetic, as in add_years().
AGGREGATE_SQL: Final[str] = """
WITH v AS (
    SELECT operator_id, kind, fact_date, instrument_still_in_use, social_impact
    FROM rating_records
    WHERE state = 'verified' AND fact_date <= %(as_of)s
),
pen AS (
    SELECT operator_id, fact_date,
           count(*) OVER (PARTITION BY operator_id ORDER BY fact_date
                          RANGE BETWEEN CURRENT ROW AND make_interval(years => %(span_years)s) FOLLOWING)
               AS in_span
    FROM v
    WHERE kind = 'short_changing_penalty'
      AND fact_date + make_interval(years => %(lookback_years)s) >= %(as_of)s
),
sc AS (
    SELECT operator_id,
           max(in_span) AS any_span,
           count(*) FILTER (WHERE fact_date + make_interval(years => %(span_years)s) >= %(as_of)s) AS trailing
    FROM pen
    GROUP BY operator_id
),
c AS (
    SELECT operator_id,
           count(*) FILTER (WHERE kind = 'inspection_failed' AND lb) AS inspections_failed,
           count(*) FILTER (WHERE kind = 'metrology_accident' AND social_impact IS TRUE AND lb)
               AS accidents_with_social_impact,
           count(*) FILTER (WHERE kind = ANY(%(instrument_kinds)s) AND instrument_still_in_use IS TRUE AND lb)
               AS instruments_in_use,
           count(*) FILTER (WHERE kind = 'complaint_substantiated' AND lb) AS complaints_substantiated,
           count(*) FILTER (
               WHERE kind = ANY(%(bad_kinds)s)
                 AND fact_date + make_interval(years => %(clean_years)s) >= %(as_of)s
           ) AS bad_records,
           count(*) FILTER (
               WHERE kind = ANY(%(good_kinds)s)
                 AND fact_date + make_interval(years => %(good_years)s) >= %(as_of)s
           ) AS good_records
    FROM (
        SELECT *, fact_date + make_interval(years => %(lookback_years)s) >= %(as_of)s AS lb FROM v
    ) AS windowed
    GROUP BY operator_id
)
SELECT c.operator_id,
       c.inspections_failed,
       c.accidents_with_social_impact,
       c.instruments_in_use,
       c.complaints_substantiated,
       coalesce(CASE WHEN %(any_span)s THEN sc.any_span ELSE sc.trailing END, 0) AS short_changing_peak,
       c.bad_records,
       c.good_records
FROM c LEFT JOIN sc USING (operator_id)
ORDER BY c.operator_id
"""


def aggregate_sql_params(as_of: date, rules: RuleSet = DEFAULT_RULES) -> dict[str, object]:
    """Bind parameters for AGGREGATE_SQL under a rule set (psycopg named-parameter style)."""
    return {
        "as_of": as_of,
        "lookback_years": rules.untrustworthy_lookback_years,
        "clean_years": rules.clean_record_years,
        "good_years": rules.good_record_years,
        "span_years": rules.short_changing_window_years,
        "any_span": rules.short_changing_window_mode is ShortChangingWindow.ANY_SPAN,
        "instrument_kinds": sorted(k.value for k in INSTRUMENT_KINDS),
        "bad_kinds": sorted(k.value for k in BAD_KINDS),
        "good_kinds": sorted(k.value for k in GOOD_KINDS),
    }
