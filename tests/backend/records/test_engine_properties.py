"""Property tests: rate() and the aggregate path (Python and PostgreSQL) agree; monotonicity; determinism."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.records.engine import (
    AGGREGATE_SQL,
    OperatorFacts,
    RatingInputs,
    RecordFact,
    add_years,
    aggregate,
    aggregate_sql_params,
    rate,
    rate_from_aggregates,
    window_start,
)
from backend.records.rules import (
    BAD_KINDS,
    GOOD_KINDS,
    INSTRUMENT_KINDS,
    IntegrityClass,
    RecordKind,
    RecordState,
    RuleSet,
    ShortChangingWindow,
)

# Rating dates cluster on leap days and year ends, where calendar-year arithmetic is easiest to get wrong.
as_of_dates = st.one_of(
    st.sampled_from(
        [date(2024, 2, 29), date(2028, 2, 29), date(2025, 2, 28), date(2025, 3, 1), date(2025, 12, 31)]
    ),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2032, 12, 31)),
)

rule_sets = st.builds(
    RuleSet,
    untrustworthy_lookback_years=st.integers(1, 6),
    clean_record_years=st.integers(1, 6),
    good_record_years=st.integers(1, 6),
    inspection_failed_threshold=st.integers(1, 2),
    accident_threshold=st.integers(1, 2),
    instrument_in_use_threshold=st.integers(1, 2),
    complaint_threshold=st.integers(1, 4),
    short_changing_threshold=st.integers(1, 4),
    short_changing_window_years=st.integers(1, 2),
    short_changing_window_mode=st.sampled_from(ShortChangingWindow),
    gap_class=st.sampled_from(IntegrityClass),
    management_unassessed_class=st.sampled_from(
        [IntegrityClass.TRUSTWORTHY, IntegrityClass.BASICALLY_TRUSTWORTHY]
    ),
)
rule_sets_or_default = st.one_of(st.just(RuleSet()), rule_sets)


@st.composite
def record_lists(draw: st.DrawFn, as_of: date, max_size: int = 12) -> list[RecordFact]:
    """Records of any kind and state around ``as_of``, with dates often on window boundaries."""
    n = draw(st.integers(0, max_size))
    records = []
    for i in range(n):
        kind = draw(st.sampled_from(RecordKind))
        years = draw(st.integers(0, 7))
        fact_date = add_years(as_of, -years) + timedelta(days=draw(st.integers(-3, 3)))
        if draw(st.booleans()):
            fact_date = as_of - timedelta(days=draw(st.integers(-30, 2600)))
        records.append(
            RecordFact(
                id=f"r{i:03d}",
                kind=kind,
                state=draw(st.sampled_from(RecordState)),
                fact_date=fact_date,
                instrument_still_in_use=draw(st.sampled_from([None, True, False]))
                if kind in INSTRUMENT_KINDS
                else None,
                social_impact=draw(st.sampled_from([None, True, False]))
                if kind is RecordKind.METROLOGY_ACCIDENT
                else None,
            )
        )
    return records


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[OperatorFacts, list[RecordFact], date, RuleSet]:
    """An operator, its records, a rating date and a rule set."""
    as_of = draw(as_of_dates)
    facts = OperatorFacts(draw(st.sampled_from([None, True, False])))
    return facts, draw(record_lists(as_of)), as_of, draw(rule_sets_or_default)


@st.composite
def extra_records(draw: st.DrawFn, as_of: date, kinds: frozenset[RecordKind]) -> RecordFact:
    """One more verified record of one of ``kinds``, with an id no scenario uses."""
    kind = draw(st.sampled_from(sorted(kinds)))
    return RecordFact(
        id="extra",
        kind=kind,
        state=RecordState.VERIFIED,
        fact_date=as_of - timedelta(days=draw(st.integers(-5, 2600))),
        instrument_still_in_use=draw(st.sampled_from([None, True, False]))
        if kind in INSTRUMENT_KINDS
        else None,
        social_impact=draw(st.sampled_from([None, True, False]))
        if kind is RecordKind.METROLOGY_ACCIDENT
        else None,
    )


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_rate_agrees_with_rate_from_aggregates(
    scenario: tuple[OperatorFacts, list[RecordFact], date, RuleSet],
) -> None:
    facts, records, as_of, rules = scenario
    rating = rate(facts, records, as_of, rules)
    cls, rule_keys = rate_from_aggregates(aggregate(facts, records, as_of, rules), rules)
    assert (rating.cls, tuple(r.rule for r in rating.reasons)) == (cls, rule_keys)


@st.composite
def penalty_scenarios(draw: st.DrawFn) -> tuple[OperatorFacts, list[RecordFact], date, RuleSet]:
    """Mostly verified penalties and complaints spaced about a year apart, to probe Art. 13(4)-(5) edges."""
    as_of = draw(as_of_dates)
    base = add_years(as_of, -draw(st.integers(0, 6)))
    records = []
    for i in range(draw(st.integers(0, 6))):
        day = add_years(base, draw(st.integers(-1, 1))) + timedelta(days=draw(st.integers(-2, 2)))
        records.append(
            RecordFact(
                id=f"p{i}",
                kind=draw(
                    st.sampled_from([RecordKind.SHORT_CHANGING_PENALTY, RecordKind.COMPLAINT_SUBSTANTIATED])
                ),
                state=draw(st.sampled_from([RecordState.VERIFIED] * 4 + [RecordState.REPORTED])),
                fact_date=day,
            )
        )
    facts = OperatorFacts(draw(st.sampled_from([None, True, False])))
    return facts, records, as_of, draw(rule_sets_or_default)


@settings(max_examples=400, deadline=None)
@given(penalty_scenarios())
def test_rate_agrees_with_aggregates_on_penalty_edges(
    scenario: tuple[OperatorFacts, list[RecordFact], date, RuleSet],
) -> None:
    facts, records, as_of, rules = scenario
    rating = rate(facts, records, as_of, rules)
    cls, rule_keys = rate_from_aggregates(aggregate(facts, records, as_of, rules), rules)
    assert (rating.cls, tuple(r.rule for r in rating.reasons)) == (cls, rule_keys)


@settings(max_examples=250, deadline=None)
@given(scenarios(), st.data())
def test_adding_a_verified_bad_record_never_improves_the_class(
    scenario: tuple[OperatorFacts, list[RecordFact], date, RuleSet], data: st.DataObject
) -> None:
    facts, records, as_of, rules = scenario
    before = rate(facts, records, as_of, rules).cls
    extra = data.draw(extra_records(as_of, BAD_KINDS))
    after = rate(facts, [*records, extra], as_of, rules).cls
    assert after.rank <= before.rank


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_good_records_never_change_the_class(
    scenario: tuple[OperatorFacts, list[RecordFact], date, RuleSet], data: st.DataObject
) -> None:
    facts, records, as_of, rules = scenario
    extra = data.draw(extra_records(as_of, GOOD_KINDS))
    assert rate(facts, [*records, extra], as_of, rules).cls is rate(facts, records, as_of, rules).cls


@settings(max_examples=250, deadline=None)
@given(scenarios(), st.data())
def test_revoking_a_record_never_worsens_the_class(
    scenario: tuple[OperatorFacts, list[RecordFact], date, RuleSet], data: st.DataObject
) -> None:
    facts, records, as_of, rules = scenario
    if not records:
        return
    index = data.draw(st.integers(0, len(records) - 1))
    old = records[index]
    revoked = RecordFact(
        old.id, old.kind, RecordState.REVOKED, old.fact_date, old.instrument_still_in_use, old.social_impact
    )
    changed = [*records[:index], revoked, *records[index + 1 :]]
    assert rate(facts, changed, as_of, rules).cls.rank >= rate(facts, records, as_of, rules).cls.rank


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_rating_is_deterministic_and_order_independent(
    scenario: tuple[OperatorFacts, list[RecordFact], date, RuleSet], rnd: random.Random
) -> None:
    facts, records, as_of, rules = scenario
    shuffled = list(records)
    rnd.shuffle(shuffled)
    first = rate(facts, records, as_of, rules)
    assert rate(facts, records, as_of, rules) == first
    assert rate(facts, shuffled, as_of, rules) == first
    assert aggregate(facts, shuffled, as_of, rules) == aggregate(facts, records, as_of, rules)


@settings(max_examples=500, deadline=None)
@given(as_of_dates, st.integers(1, 8), st.integers(-4, 4))
def test_window_start_is_the_exact_boundary_of_add_years(as_of: date, years: int, offset: int) -> None:
    start = window_start(as_of, years)
    probe = start + timedelta(days=offset)
    assert (add_years(probe, years) >= as_of) == (probe >= start)


@settings(deadline=None)
@given(st.dates(min_value=date(1901, 1, 1), max_value=date(2990, 12, 31)), st.integers(-50, 50))
def test_add_years_keeps_month_and_clamps_only_feb_29(d: date, years: int) -> None:
    moved = add_years(d, years)
    assert moved.year == d.year + years and moved.month == d.month
    assert moved.day == d.day or (d.month, d.day, moved.day) == (2, 29, 28)


# --- the PostgreSQL form of the aggregation ---------------------------------------------------------------

DATABASE_URL = os.environ.get("GONGPING_TEST_DATABASE_URL", "")

needs_postgres = pytest.mark.skipif(
    not DATABASE_URL.startswith("postgresql"), reason="needs GONGPING_TEST_DATABASE_URL (PostgreSQL)"
)

CREATE = """
CREATE TEMPORARY TABLE rating_records (
    operator_id text NOT NULL,
    record_id text NOT NULL,
    kind text NOT NULL,
    state text NOT NULL,
    fact_date date NOT NULL,
    instrument_still_in_use boolean,
    social_impact boolean
)
"""
INSERT = "INSERT INTO rating_records VALUES (%s, %s, %s, %s, %s, %s, %s)"


@pytest.fixture(scope="module")
def pg_conn() -> Iterator[Any]:
    """One connection for the module; the temporary table lives as long as it does."""
    psycopg = pytest.importorskip("psycopg")
    url = DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(CREATE)
        yield connection


def sql_inputs(
    conn: Any, operators: dict[str, list[RecordFact]], as_of: date, rules: RuleSet
) -> dict[str, RatingInputs]:
    """Load the records, run AGGREGATE_SQL, and shape the rows like aggregate() output."""
    conn.execute("TRUNCATE rating_records")
    with conn.cursor() as cur:
        cur.executemany(
            INSERT,
            [
                (
                    op,
                    r.id,
                    r.kind.value,
                    r.state.value,
                    r.fact_date,
                    r.instrument_still_in_use,
                    r.social_impact,
                )
                for op, records in operators.items()
                for r in records
            ],
        )
    rows = conn.execute(AGGREGATE_SQL, aggregate_sql_params(as_of, rules)).fetchall()
    return {row[0]: RatingInputs(None, *row[1:]) for row in rows}


@st.composite
def many_operators(draw: st.DrawFn) -> tuple[dict[str, list[RecordFact]], date, RuleSet]:
    """A few operators' records on one rating date under one rule set."""
    as_of = draw(as_of_dates)
    operators = {f"op{i}": draw(record_lists(as_of)) for i in range(draw(st.integers(1, 4)))}
    for i in range(draw(st.integers(0, 2))):
        _, records, _, _ = draw(penalty_scenarios())
        operators[f"pen{i}"] = records
    return operators, as_of, draw(rule_sets_or_default)


@pytest.mark.postgres
@needs_postgres
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(many_operators())
def test_sql_matches_reference_aggregate(
    pg_conn: Any, case: tuple[dict[str, list[RecordFact]], date, RuleSet]
) -> None:
    operators, as_of, rules = case
    from_sql = sql_inputs(pg_conn, operators, as_of, rules)
    for op, records in operators.items():
        expected = aggregate(OperatorFacts(None), records, as_of, rules)
        got = from_sql.get(op, RatingInputs(None, 0, 0, 0, 0, 0, 0, 0))
        assert got == expected, op
