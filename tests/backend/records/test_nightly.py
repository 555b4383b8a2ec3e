"""The nightly full re-rating: agrees with the per-operator engine on both paths, expires windows, is idempotent."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from backend.audit.service import SYSTEM
from backend.db import is_postgres
from backend.operators.models import ManagementAssessment, Operator
from backend.records import rating, service
from backend.records.engine import add_years, rate
from backend.records.models import OperatorRating, RatingChange, RatingTrigger
from backend.records.rules import INSTRUMENT_KINDS, IntegrityClass, RecordKind
from tests.backend.records.conftest import World
from tests.factories import make_operator, make_record

TODAY = service.bureau_today()


def _uow(session: Session) -> rating.UnitOfWork:
    def unit() -> AbstractContextManager[Session]:
        return nullcontext(session)

    return unit


@pytest.fixture(params=["python", "sql"])
def method(request: pytest.FixtureRequest, session: Session) -> Iterator[rating.Method]:
    if request.param == "sql" and not is_postgres(session):
        pytest.skip("the set-based path runs on PostgreSQL")
    yield request.param


def _populate(session: Session, world: World, count: int, seed: int) -> list[Operator]:
    """Operators with a random mix of records: every kind and state, dates over seven years, findings."""
    rng = random.Random(seed)
    kinds = list(RecordKind)
    operators = []
    for n in range(count):
        operator = make_operator(session, world.staff, name=f"夜间评级{n}")
        operator.management_assessment = rng.choice(list(ManagementAssessment))
        session.add(operator)
        for _ in range(rng.randrange(0, 7)):
            kind = rng.choice(kinds)
            record = make_record(
                session,
                operator,
                kind,
                fact_date=TODAY - timedelta(days=rng.randrange(0, 7 * 365)),
                verified=rng.random() < 0.75,
                instrument_still_in_use=rng.choice([True, False, None]) if kind in INSTRUMENT_KINDS else None,
                social_impact=rng.choice([True, None]) if kind is RecordKind.METROLOGY_ACCIDENT else None,
            )
            if rng.random() < 0.1:
                service.revoke(session, record, actor=SYSTEM, reason="抽样撤销")
        operators.append(operator)
    # Two penalties in one year: Art. 13(5), always re-rated in full at night.
    pen = make_operator(session, world.staff, name="克扣两次")
    for days in (200, 20):
        make_record(session, pen, "short_changing_penalty", fact_date=TODAY - timedelta(days=days))
    operators.append(pen)
    session.flush()
    return operators


def _assert_agrees(session: Session, operators: list[Operator], as_of_days: int = 0) -> None:
    as_of = TODAY + timedelta(days=as_of_days)
    for operator in operators:
        session.refresh(operator)
        records = rating.load_verified(session, as_of=as_of, operator_ids=[operator.id or 0])
        expected = rate(
            rating.facts_of(operator.management_assessment), records.get(operator.id or 0, []), as_of
        )
        stored = session.exec(
            select(OperatorRating)
            .where(OperatorRating.operator_id == operator.id)
            .execution_options(populate_existing=True)
        ).one_or_none()
        if stored is None:
            baseline = rate(rating.facts_of(operator.management_assessment), [], as_of)
            assert (expected.cls, rating.reasons_json(expected)) == (
                baseline.cls,
                rating.reasons_json(baseline),
            )
        else:
            assert stored.cls is expected.cls, operator.name
            assert stored.reasons == rating.reasons_json(expected), operator.name


def test_nightly_agrees_with_the_per_operator_rating(
    session: Session, world: World, method: rating.Method
) -> None:
    operators = _populate(session, world, 14, seed=566)
    report = rating.rerate_all(as_of=TODAY, batch=4, unit_of_work=_uow(session), method=method)
    assert report.mismatches == 0 and report.conflicts == 0 and report.written > 0
    _assert_agrees(session, operators)
    # A year later many windows have moved; the nightly result still equals the engine's.
    later = rating.rerate_all(
        as_of=TODAY + timedelta(days=400), batch=4, unit_of_work=_uow(session), method=method
    )
    assert later.mismatches == 0
    _assert_agrees(session, operators, as_of_days=400)


def test_a_second_run_writes_nothing(session: Session, world: World, method: rating.Method) -> None:
    _populate(session, world, 6, seed=7)
    rating.rerate_all(as_of=TODAY, batch=3, unit_of_work=_uow(session), method=method)
    again = rating.rerate_all(as_of=TODAY, batch=3, unit_of_work=_uow(session), method=method)
    assert again.written == 0 and again.class_changes == 0
    # Only the operator meeting Art. 13(5) is re-rated in full; the rest compare counts and move on.
    assert again.candidates == 1 and again.operators >= 2


def test_windows_expire_overnight(session: Session, world: World, method: rating.Method) -> None:
    operator = world.operator
    make_record(session, operator, "inspection_failed", fact_date=add_years(TODAY, -5))
    rating.rerate_all(as_of=TODAY, unit_of_work=_uow(session), method=method)
    assert session.get(OperatorRating, operator.id).cls is IntegrityClass.UNTRUSTWORTHY  # type: ignore[union-attr]
    report = rating.rerate_all(as_of=TODAY + timedelta(days=1), unit_of_work=_uow(session), method=method)
    assert report.class_changes == 1
    changes = session.exec(
        select(RatingChange).where(RatingChange.operator_id == operator.id).order_by(col(RatingChange.id))
    ).all()
    assert [(c.to_cls, c.trigger) for c in changes] == [
        (IntegrityClass.UNTRUSTWORTHY, RatingTrigger.nightly),
        (IntegrityClass.BASICALLY_TRUSTWORTHY, RatingTrigger.nightly),
    ]


def test_records_outside_every_window_store_nothing(
    session: Session, world: World, method: rating.Method
) -> None:
    make_record(session, world.operator, "inspection_failed", fact_date=add_years(TODAY, -6))
    report = rating.rerate_all(as_of=TODAY, unit_of_work=_uow(session), method=method)
    assert report.written == 0
    assert session.get(OperatorRating, world.operator.id) is None


def test_nightly_and_incremental_paths_store_the_same_row(
    session: Session, world: World, method: rating.Method
) -> None:
    for days in (90, 60, 30):
        make_record(
            session, world.operator, "complaint_substantiated", fact_date=TODAY - timedelta(days=days)
        )
        make_record(
            session, world.other_operator, "complaint_substantiated", fact_date=TODAY - timedelta(days=days)
        )
    rating.rerate_operator(session, world.operator.id or 0, as_of=TODAY)
    rating.rerate_all(as_of=TODAY, unit_of_work=_uow(session), method=method)
    rows = {
        r.operator_id: r
        for r in session.exec(select(OperatorRating).execution_options(populate_existing=True)).all()
    }
    a, b = rows[world.operator.id or 0], rows[world.other_operator.id or 0]
    assert (a.cls, a.signature, len(a.reasons)) == (b.cls, b.signature, len(b.reasons))
    assert a.revision == b.revision == 1  # the nightly run found the incremental row current


def test_set_based_path_refuses_sqlite(session: Session) -> None:
    if is_postgres(session):
        pytest.skip("SQLite only")
    with pytest.raises(ValueError, match="PostgreSQL"):
        rating.rerate_range(session, 0, 10, as_of=TODAY, method="sql")
