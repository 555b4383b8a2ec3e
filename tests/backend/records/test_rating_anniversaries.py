"""Window edges on their anniversaries, in the Python engine and in the nightly ``AGGREGATE_SQL`` (PostgreSQL).

A record exactly N years old on the rating date is still inside an N-year window (Civil Code Art. 202: the
period ends on the anniversary); one day older it is out. Art. 13(5)'s one-year window holds two penalties a
calendar year apart. Each case states the expected counts, so a comparison that loses its ``=`` (``>=`` → ``>``)
in either implementation fails here, not only when the two happen to disagree.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session

from backend.records.engine import (
    AGGREGATE_SQL,
    OperatorFacts,
    RatingInputs,
    RecordFact,
    aggregate,
    aggregate_sql_params,
    window_start,
)
from backend.records.rules import DEFAULT_RULES, RecordKind, RecordState, RuleSet, ShortChangingWindow

AS_OF = date(2026, 6, 15)
LEAP_AS_OF = date(2028, 2, 29)
DAY = timedelta(days=1)
ZERO = RatingInputs(None, 0, 0, 0, 0, 0, 0, 0)
TRAILING = RuleSet(short_changing_window_mode=ShortChangingWindow.TRAILING)


def _rec(record_id: str, kind: RecordKind, day: date, **extra: bool) -> RecordFact:
    return RecordFact(record_id, kind, RecordState.VERIFIED, day, **extra)


def _years_before(as_of: date, years: int, days: int = 0) -> date:
    """The oldest fact date still ``years`` years old or less on ``as_of`` (the anniversary; on Feb 29 the day
    after Feb 28, whose anniversary falls on Feb 28), moved ``days`` later (negative: earlier)."""
    return window_start(as_of, years) + timedelta(days=days)


def _counts(**counts: int) -> RatingInputs:
    return RatingInputs(
        None,
        counts.get("inspections_failed", 0),
        counts.get("accidents", 0),
        counts.get("instruments_in_use", 0),
        counts.get("complaints", 0),
        counts.get("short_changing_peak", 0),
        counts.get("bad_records", 0),
        counts.get("good_records", 0),
    )


# (name, as_of, rules, records, expected counts)
CASES: list[tuple[str, date, RuleSet, list[RecordFact], RatingInputs]] = [
    *(
        (
            f"failed inspection {label} (5-year look-back and clean window)",
            as_of,
            DEFAULT_RULES,
            [_rec("r1", RecordKind.INSPECTION_FAILED, _years_before(as_of, 5, days))],
            _counts(inspections_failed=1, bad_records=1) if days >= 0 else ZERO,
        )
        for as_of in (AS_OF, LEAP_AS_OF)
        for label, days in (("exactly five years old", 0), ("one day less", 1), ("one day more", -1))
    ),
    *(
        (
            f"substantiated complaint {label}",
            AS_OF,
            DEFAULT_RULES,
            [_rec("r1", RecordKind.COMPLAINT_SUBSTANTIATED, _years_before(AS_OF, 5, days))],
            _counts(complaints=1, bad_records=1) if days >= 0 else ZERO,
        )
        for label, days in (("exactly five years old", 0), ("one day more", -1))
    ),
    *(
        (
            f"accident with social impact {label}",
            AS_OF,
            DEFAULT_RULES,
            [_rec("r1", RecordKind.METROLOGY_ACCIDENT, _years_before(AS_OF, 5, days), social_impact=True)],
            _counts(accidents=1, bad_records=1) if days >= 0 else ZERO,
        )
        for label, days in (("exactly five years old", 0), ("one day more", -1))
    ),
    *(
        (
            f"good record {label} (5-year good window)",
            AS_OF,
            DEFAULT_RULES,
            [_rec("g1", RecordKind.COMMITMENT_KEPT, _years_before(AS_OF, 5, days))],
            _counts(good_records=1) if days >= 0 else ZERO,
        )
        for label, days in (("exactly five years old", 0), ("one day more", -1))
    ),
    # The clean window alone (a shorter look-back than clean window isolates clean_years' comparison).
    *(
        (
            f"bad record outside a 2-year look-back, {label} in the 5-year clean window",
            AS_OF,
            RuleSet(untrustworthy_lookback_years=2),
            [_rec("r1", RecordKind.INSPECTION_FAILED, _years_before(AS_OF, 5, days))],
            _counts(bad_records=1) if days >= 0 else ZERO,
        )
        for label, days in (("exactly five years old", 0), ("one day more", -1))
    ),
    # Art. 13(5): two penalties a calendar year apart fall in one one-year window; a day further they do not.
    *(
        (
            f"two penalties {label} apart (any one-year span)",
            AS_OF,
            DEFAULT_RULES,
            [
                _rec("p1", RecordKind.SHORT_CHANGING_PENALTY, _years_before(AS_OF, 3)),
                _rec("p2", RecordKind.SHORT_CHANGING_PENALTY, _years_before(AS_OF, 2, extra)),
            ],
            _counts(short_changing_peak=2 if extra <= 0 else 1, bad_records=2),
        )
        for label, extra in (("exactly one year", 0), ("one year less a day", -1), ("one year and a day", 1))
    ),
    # Art. 13(5), trailing mode: a penalty exactly one year old is still in the year before the rating date.
    *(
        (
            f"penalty {label} in the trailing year",
            AS_OF,
            TRAILING,
            [
                _rec("p1", RecordKind.SHORT_CHANGING_PENALTY, _years_before(AS_OF, 1, days)),
                _rec("p2", RecordKind.SHORT_CHANGING_PENALTY, AS_OF),
            ],
            _counts(short_changing_peak=2 if days >= 0 else 1, bad_records=2),
        )
        for label, days in (("exactly one year old", 0), ("one day more", -1))
    ),
    # A penalty exactly five years old still counts towards the look-back's penalties.
    *(
        (
            f"two penalties, the older {label}",
            AS_OF,
            DEFAULT_RULES,
            [
                _rec("p1", RecordKind.SHORT_CHANGING_PENALTY, _years_before(AS_OF, 5, days)),
                _rec("p2", RecordKind.SHORT_CHANGING_PENALTY, _years_before(AS_OF, 4, days - 1)),
            ],
            _counts(short_changing_peak=2 if days >= 0 else 1, bad_records=2 if days >= 0 else 1),
        )
        for label, days in (("exactly five years old", 0), ("one day more", -1))
    ),
    (
        "a record dated on the rating date counts; one dated the day after does not",
        AS_OF,
        DEFAULT_RULES,
        [
            _rec("r1", RecordKind.INSPECTION_FAILED, AS_OF),
            _rec("r2", RecordKind.INSPECTION_FAILED, AS_OF + DAY),
        ],
        _counts(inspections_failed=1, bad_records=1),
    ),
]
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(("name", "as_of", "rules", "records", "expected"), CASES, ids=IDS)
def test_python_engine_counts_the_anniversary(
    name: str, as_of: date, rules: RuleSet, records: list[RecordFact], expected: RatingInputs
) -> None:
    assert aggregate(OperatorFacts(None), records, as_of, rules) == expected, name


_CREATE = """
CREATE TEMPORARY TABLE rating_records (
    operator_id text NOT NULL,
    record_id text NOT NULL,
    kind text NOT NULL,
    state text NOT NULL,
    fact_date date NOT NULL,
    instrument_still_in_use boolean,
    social_impact boolean
) ON COMMIT DROP
"""
_INSERT = (
    "INSERT INTO rating_records VALUES (%(op)s, %(id)s, %(kind)s, %(state)s, %(day)s, %(in_use)s, %(impact)s)"
)


@pytest.mark.postgres
@pytest.mark.parametrize(("name", "as_of", "rules", "records", "expected"), CASES, ids=IDS)
def test_nightly_sql_counts_the_anniversary(
    session: Session,
    name: str,
    as_of: date,
    rules: RuleSet,
    records: list[RecordFact],
    expected: RatingInputs,
) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("AGGREGATE_SQL is PostgreSQL's; set GONGPING_TEST_DATABASE_URL")
    conn = session.connection()
    conn.exec_driver_sql(_CREATE)
    for r in records:
        conn.exec_driver_sql(
            _INSERT,
            {
                "op": "op",
                "id": r.id,
                "kind": r.kind.value,
                "state": r.state.value,
                "day": r.fact_date,
                "in_use": r.instrument_still_in_use,
                "impact": r.social_impact,
            },
        )
    rows = conn.exec_driver_sql(AGGREGATE_SQL, aggregate_sql_params(as_of, rules)).fetchall()
    got = RatingInputs(None, *rows[0][1:]) if rows else ZERO
    assert got == expected, name
