"""Stored ratings (Art. 9, 10, 13): incremental re-rating of one operator and the nightly full re-rating.

An operator without a stored rating has the class its management assessment gives with no records (the
engine's rating of an empty record list); a row is written only once the operator's rating differs from that.
Every write is conditional on the revision the writer read, so a slow nightly batch never overwrites what a
record's worker wrote meanwhile, and a worker that loses the race re-reads and tries again.

The nightly re-rating is set-based on PostgreSQL: ``AGGREGATE_SQL`` computes every operator's windowed counts
for a range of operators and ``rate_from_aggregates`` classifies each of them; only operators whose counts
(the stored ``signature``) changed, or whose stored class the aggregates contradict, are then re-rated record
by record to name the records behind each reason, and only their rows are written. Between two ratings the
records do not change (each change re-rates at once) and fact dates are never in the future, so the windows
can only lose records: equal counts mean equal windowed sets and equal reasons. The one exception is Art.
13(5)'s qualifying penalties, which can change while the peak stays, so operators meeting 13(5) are always
re-rated in full. On SQLite the same decision runs in Python over each batch, from the engine's reference
``aggregate``.

The record worker's path (``rerate_for_event``) is cut to the fewest round trips: on PostgreSQL one prepared
statement reads the event, the operator, its stored rating and its windowed records outside a transaction
block; a write that keeps the class is one conditional upsert committed without waiting for the WAL flush (the
row is derived data the nightly run would restore); a class change is one durable transaction with its
history, audit entry and event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import func, insert
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col, select

from backend.audit.service import SYSTEM, Actor, AuditItem, record_many
from backend.db import UnitOfWork, bulk_insert, is_postgres, session_scope, table_of, utcnow
from backend.operators.models import ManagementAssessment, Operator
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit_many
from backend.public import store as public_store
from backend.records.engine import (
    AGGREGATE_SQL,
    OperatorFacts,
    Rating,
    RatingInputs,
    RecordFact,
    aggregate,
    aggregate_sql_params,
    rate,
    rate_from_aggregates,
    window_start,
)
from backend.records.models import IntegrityRecord, OperatorRating, RatingChange, RatingTrigger
from backend.records.rules import (
    DEFAULT_RULES,
    INSTRUMENT_KINDS,
    IntegrityClass,
    RecordKind,
    RecordState,
    RuleSet,
)
from backend.records.service import bureau_today

log = logging.getLogger(__name__)

#: Art. 10's management finding as the engine reads it.
MANAGEMENT_SOUND: dict[ManagementAssessment, bool | None] = {
    ManagementAssessment.sound: True,
    ManagementAssessment.not_fully_sound: False,
    ManagementAssessment.not_assessed: None,
}
_MANAGEMENT_CODE: dict[bool | None, str] = {True: "S", False: "N", None: "U"}
_COUNT_FIELDS = tuple(f.name for f in fields(RatingInputs) if f.name != "management_sound")
_PEAK_INDEX = _COUNT_FIELDS.index("short_changing_peak")
Method = Literal["auto", "sql", "python"]


def facts_of(assessment: ManagementAssessment) -> OperatorFacts:
    """The engine's operator facts from the stored management assessment."""
    return OperatorFacts(MANAGEMENT_SOUND[assessment])


def zero_inputs(management_sound: bool | None) -> RatingInputs:
    """The aggregates of an operator without any counting record."""
    return RatingInputs(management_sound, *(0 for _ in _COUNT_FIELDS))


def baseline_class(assessment: ManagementAssessment, rules: RuleSet = DEFAULT_RULES) -> IntegrityClass:
    """The class of an operator with no stored rating: what its management assessment gives without records."""
    return rate_from_aggregates(zero_inputs(MANAGEMENT_SOUND[assessment]), rules)[0]


def _signature(version: str, management_sound: bool | None, counts: Sequence[int]) -> str:
    return f"{version}|{_MANAGEMENT_CODE[management_sound]}|{','.join(map(str, counts))}"


def signature(inputs: RatingInputs, rules: RuleSet = DEFAULT_RULES) -> str:
    """What a class and its reasons are derived from: rule-set version, management finding, windowed counts."""
    return _signature(
        rules.version, inputs.management_sound, [getattr(inputs, name) for name in _COUNT_FIELDS]
    )


@lru_cache(maxsize=64)
def _baseline(
    management_sound: bool | None, as_of: date, rules: RuleSet
) -> tuple[IntegrityClass, list[dict[str, Any]]]:
    """The rating without records (what is shown while nothing is stored); the same for many operators."""
    rating = rate(OperatorFacts(management_sound), (), as_of, rules)
    return rating.cls, reasons_json(rating)


def reasons_json(rating: Rating) -> list[dict[str, Any]]:
    """Reasons as stored and served: record ids as integers."""
    return [
        {
            "rule": r.rule,
            "article": r.article,
            "record_ids": [int(i) for i in r.record_ids],
            "explanation_zh": r.explanation_zh,
            "explanation_en": r.explanation_en,
        }
        for r in rating.reasons
    ]


def window_floor(as_of: date, rules: RuleSet = DEFAULT_RULES) -> date:
    """The earliest fact date any window still reaches on ``as_of``; older records cannot matter."""
    years = {rules.untrustworthy_lookback_years, rules.clean_record_years, rules.good_record_years}
    return min(window_start(as_of, y) for y in years)


def load_verified(
    session: Session,
    *,
    as_of: date,
    rules: RuleSet = DEFAULT_RULES,
    operator_ids: Sequence[int] | None = None,
    id_range: tuple[int, int] | None = None,
) -> dict[int, list[RecordFact]]:
    """Verified records inside the windows, per operator (index range scan on operator, state, date)."""
    # SQLAlchemy's own select: sqlmodel's typed overloads stop at four columns.
    stmt = sa_select(
        col(IntegrityRecord.id),
        col(IntegrityRecord.operator_id),
        col(IntegrityRecord.kind),
        col(IntegrityRecord.fact_date),
        col(IntegrityRecord.instrument_still_in_use),
        col(IntegrityRecord.social_impact),
    ).where(
        col(IntegrityRecord.state) == RecordState.VERIFIED,
        col(IntegrityRecord.fact_date) >= window_floor(as_of, rules),
        col(IntegrityRecord.fact_date) <= as_of,
    )
    if operator_ids is not None:
        if len(operator_ids) == 1:
            stmt = stmt.where(col(IntegrityRecord.operator_id) == operator_ids[0])
        else:
            stmt = stmt.where(col(IntegrityRecord.operator_id).in_(list(operator_ids)))
    if id_range is not None:
        stmt = stmt.where(
            col(IntegrityRecord.operator_id) >= id_range[0], col(IntegrityRecord.operator_id) < id_range[1]
        )
    result: dict[int, list[RecordFact]] = {}
    for record_id, operator_id, kind, fact_date, in_use, impact in session.execute(stmt):
        result.setdefault(operator_id, []).append(_fact(record_id, kind, fact_date, in_use, impact))
    return result


def _fact(
    record_id: int, kind: RecordKind | str, fact_date: date, in_use: bool | None, impact: bool | None
) -> RecordFact:
    """A verified record as the engine reads it."""
    kind = RecordKind(kind)
    # A finding stored on a kind that cannot carry it is ignored, exactly as AGGREGATE_SQL ignores it.
    return RecordFact(
        id=str(record_id),
        kind=kind,
        state=RecordState.VERIFIED,
        fact_date=fact_date,
        instrument_still_in_use=in_use if kind in INSTRUMENT_KINDS else None,
        social_impact=impact if kind is RecordKind.METROLOGY_ACCIDENT else None,
    )


@dataclass(frozen=True, slots=True)
class Stored:
    """What is stored for an operator (reasons loaded only when they are to be compared)."""

    cls: IntegrityClass
    signature: str
    revision: int
    rules_version: str
    reasons: list[dict[str, Any]] | None = None


def load_stored(
    session: Session,
    *,
    operator_ids: Sequence[int] | None = None,
    id_range: tuple[int, int] | None = None,
    with_reasons: bool = False,
) -> dict[int, Stored]:
    """Stored ratings by operator id."""
    columns: list[Any] = [
        col(OperatorRating.operator_id),
        col(OperatorRating.cls),
        col(OperatorRating.signature),
        col(OperatorRating.revision),
        col(OperatorRating.rules_version),
    ]
    if with_reasons:
        columns.append(col(OperatorRating.reasons))
    stmt = select(*columns)
    if operator_ids is not None:
        stmt = stmt.where(col(OperatorRating.operator_id).in_(list(operator_ids)))
    if id_range is not None:
        stmt = stmt.where(
            col(OperatorRating.operator_id) >= id_range[0], col(OperatorRating.operator_id) < id_range[1]
        )
    return {
        row[0]: Stored(row[1], row[2], row[3], row[4], row[5] if with_reasons else None)
        for row in session.execute(stmt)
    }


@dataclass(frozen=True, slots=True)
class Pending:
    """A rating to write: the class shown before, the new rating, and the revision it replaces (0: none)."""

    operator_id: int
    previous: IntegrityClass
    rating: Rating
    reasons: list[dict[str, Any]]
    signature: str
    read_revision: int

    @property
    def class_changed(self) -> bool:
        """Whether the class itself changes (audited, kept in the history, notified)."""
        return self.previous is not self.rating.cls


def decide(
    operator_id: int,
    management_sound: bool | None,
    records: Sequence[RecordFact],
    stored: Stored | None,
    as_of: date,
    rules: RuleSet = DEFAULT_RULES,
    inputs: RatingInputs | None = None,
) -> Pending | None:
    """Rate one operator; the write needed, or None when what is stored (or shown without a row) holds."""
    facts = OperatorFacts(management_sound)
    inputs = inputs or aggregate(facts, records, as_of, rules)
    sig = signature(inputs, rules)
    rating = rate(facts, records, as_of, rules)
    reasons = reasons_json(rating)
    if stored is None:
        baseline_cls, baseline_reasons = _baseline(management_sound, as_of, rules)
        if rating.cls is baseline_cls and reasons == baseline_reasons:
            return None
        return Pending(operator_id, baseline_cls, rating, reasons, sig, 0)
    if (
        stored.signature == sig
        and stored.cls is rating.cls
        and stored.rules_version == rating.rules_version
        and stored.reasons == reasons
    ):
        return None
    return Pending(operator_id, stored.cls, rating, reasons, sig, stored.revision)


def write(
    session: Session, pending: Sequence[Pending], *, trigger: RatingTrigger, actor: Actor = SYSTEM
) -> list[Pending]:
    """Upsert ratings whose revision is still the one read; record, audit and announce each class change."""
    if not pending:
        return []
    now = utcnow()
    if is_postgres(session):
        applied_ids = _upsert_postgres(session, pending, now)
    else:
        applied_ids = _upsert_portable(session, pending, now)
    applied = [p for p in pending if p.operator_id in applied_ids]
    changed = [p for p in applied if p.class_changed]
    if changed:
        _record_class_changes(session, changed, trigger=trigger, actor=actor)
    return applied


# The batch travels as one JSON document that PostgreSQL unpacks: psycopg then sends one string, where a
# multi-row VALUES list (or text arrays of JSON) would be built and escaped value by value.
_UPSERT_PG = """
INSERT INTO operator_rating (operator_id, cls, as_of, reasons, rules_version, signature, revision, updated_at)
SELECT operator_id, cls, as_of, reasons, rules_version, signature, revision, updated_at
FROM json_to_recordset(%(rows)s::json) AS x(operator_id integer, cls varchar, as_of date, reasons json,
                                            rules_version varchar, signature varchar, revision integer,
                                            updated_at timestamptz)
ON CONFLICT (operator_id) DO UPDATE SET
    cls = EXCLUDED.cls, as_of = EXCLUDED.as_of, reasons = EXCLUDED.reasons,
    rules_version = EXCLUDED.rules_version, signature = EXCLUDED.signature, revision = EXCLUDED.revision,
    updated_at = EXCLUDED.updated_at
WHERE operator_rating.revision = EXCLUDED.revision - 1
RETURNING operator_id
"""


# The same upsert committing without waiting for the WAL flush, for a write that keeps the class (new reasons or
# counts): used by the worker only, as a statement that is its own transaction. The row is derived data: were
# PostgreSQL itself to crash within the WAL writer's delay (wal_writer_delay, 200 ms by default) and lose it,
# the stored signature would differ from the records' counts and the nightly run rewrites the row. A class
# change (history, audit chain, rating.changed) always commits durably.
_UPSERT_PG_RELAXED = _UPSERT_PG.replace(
    "INSERT INTO",
    "WITH relaxed AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))\nINSERT INTO",
    1,
).replace("updated_at timestamptz)", "updated_at timestamptz), relaxed", 1)
#: Whether the worker's same-class writes commit without waiting for the flush (the bench compares both).
RELAXED_SAME_CLASS_COMMIT = True


def _upsert_postgres(
    session: Session, pending: Sequence[Pending], now: datetime, *, relaxed: bool = False
) -> set[int]:
    rows = [
        {
            "operator_id": p.operator_id,
            "cls": p.rating.cls.value,
            "as_of": p.rating.as_of.isoformat(),
            "reasons": p.reasons,
            "rules_version": p.rating.rules_version,
            "signature": p.signature,
            "revision": p.read_revision + 1,
            "updated_at": now.isoformat(),
        }
        for p in pending
    ]
    sql = _UPSERT_PG_RELAXED if relaxed else _UPSERT_PG
    result = session.connection().exec_driver_sql(sql, {"rows": json.dumps(rows, ensure_ascii=False)})
    applied = {row[0] for row in result}
    public_store.touch(session, applied)
    return applied


def _upsert_portable(session: Session, pending: Sequence[Pending], now: datetime) -> set[int]:
    table = table_of(OperatorRating)
    rows = [
        {
            "operator_id": p.operator_id,
            "cls": p.rating.cls,
            "as_of": p.rating.as_of,
            "reasons": p.reasons,
            "rules_version": p.rating.rules_version,
            "signature": p.signature,
            "revision": p.read_revision + 1,
            "updated_at": now,
        }
        for p in pending
    ]
    stmt = sqlite.insert(table)
    upsert = stmt.on_conflict_do_update(
        index_elements=[table.c.operator_id],
        set_={name: stmt.excluded[name] for name in rows[0] if name != "operator_id"},
        where=table.c.revision == stmt.excluded.revision - 1,
    ).returning(table.c.operator_id)
    applied = set(session.execute(upsert, rows[0] if len(rows) == 1 else rows).scalars())
    public_store.touch(session, applied)
    return applied


#: Up to this many rows go as plain INSERTs; more go by COPY (bulk_insert).
_FEW = 20


def _record_class_changes(
    session: Session, changed: Sequence[Pending], *, trigger: RatingTrigger, actor: Actor
) -> None:
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "operator_id": p.operator_id,
            "from_cls": p.previous,
            "to_cls": p.rating.cls,
            "as_of": p.rating.as_of,
            "reasons": p.reasons,
            "rules_version": p.rating.rules_version,
            "trigger": trigger,
            "at": now,
        }
        for p in changed
    ]
    history = table_of(RatingChange)
    if len(rows) > _FEW:
        # COPY on PostgreSQL: a first rating of a whole archive records hundreds of thousands of changes.
        bulk_insert(session, history, rows, assign_ids=True)
    else:
        # A worker's single change: one INSERT … RETURNING is one round trip, COPY would be three.
        for row in rows:
            row["id"] = session.execute(insert(history).values(**row).returning(history.c.id)).scalar_one()
    record_many(
        session,
        actor=actor,
        items=[
            AuditItem(
                "rating.change",
                "operator",
                str(p.operator_id),
                {"class": p.previous.value},
                {
                    "class": p.rating.cls.value,
                    "as_of": p.rating.as_of.isoformat(),
                    "rules": [r["rule"] for r in p.reasons],
                    "rules_version": p.rating.rules_version,
                    "change_id": row["id"],
                    "trigger": trigger.value,
                },
            )
            for p, row in zip(changed, rows, strict=True)
        ],
    )
    # Each change id is new, so the dedupe keys cannot repeat: no look-up of existing ones.
    events = [
        (
            {
                "operator_id": p.operator_id,
                "change_id": row["id"],
                "from": p.previous.value,
                "to": p.rating.cls.value,
                "as_of": p.rating.as_of.isoformat(),
            },
            f"rating.changed:{row['id']}",
        )
        for p, row in zip(changed, rows, strict=True)
    ]
    emit_many(session, "rating.changed", events, known_new=True)


@dataclass
class RerateReport:
    """What a re-rating did."""

    operators: int = 0  # operators looked at: with a verified record in the windows or a stored rating
    candidates: int = 0  # of those, operators whose inputs changed and were rated record by record
    written: int = 0
    class_changes: int = 0
    conflicts: int = 0  # writes skipped because another writer got there first
    mismatches: int = 0  # set-based and per-operator classes disagreed (a bug; the per-operator one is kept)
    # Classes of the operators looked at, as the nightly run derived them from the aggregates.
    untrustworthy: int = 0
    basically_trustworthy: int = 0
    trustworthy: int = 0

    def add(self, other: RerateReport) -> None:
        """Accumulate another report."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _load_one(
    session: Session, operator_id: int, as_of: date, rules: RuleSet
) -> tuple[ManagementAssessment, Stored | None, list[RecordFact]] | None:
    """An operator's assessment, stored rating and windowed verified records in one round trip."""
    loaded = _load(session, col(Operator.id) == operator_id, as_of, rules)
    return loaded[1:4] if loaded is not None else None


def _load(
    session: Session, where: Any, as_of: date, rules: RuleSet, *, event_id: int | None = None
) -> tuple[int, ManagementAssessment, Stored | None, list[RecordFact], dict[str, Any]] | None:
    """Operator id, assessment, stored rating, windowed verified records (and the event's payload) in one query.

    With ``event_id`` the operator is the one the outbox event names: the worker reads its event, the operator,
    the stored rating and the records in a single statement (an index scan on each; the records' is index-only).
    """
    record = table_of(IntegrityRecord)
    columns: list[Any] = [
        col(Operator.id),
        col(Operator.management_assessment),
        col(OperatorRating.cls),
        col(OperatorRating.signature),
        col(OperatorRating.revision),
        col(OperatorRating.rules_version),
        col(OperatorRating.reasons),
        record.c.id,
        record.c.kind,
        record.c.fact_date,
        record.c.instrument_still_in_use,
        record.c.social_impact,
    ]
    stmt: Any
    if event_id is None:
        stmt = sa_select(*columns).select_from(Operator)
    else:
        event = table_of(OutboxEvent)
        stmt = (
            sa_select(*columns, event.c.payload)
            .select_from(event)
            .join(Operator, col(Operator.id) == event.c.payload["operator_id"].as_integer())
        )
        where = event.c.id == event_id
    stmt = (
        stmt.outerjoin(OperatorRating, col(OperatorRating.operator_id) == col(Operator.id))
        .outerjoin(
            record,
            (record.c.operator_id == col(Operator.id))
            & (record.c.state == RecordState.VERIFIED)
            & (record.c.fact_date >= window_floor(as_of, rules))
            & (record.c.fact_date <= as_of),
        )
        .where(where)
    )
    # Core rows straight from the connection: nothing here is an ORM entity.
    rows = session.connection().execute(stmt).all()
    if not rows:
        return None
    operator_id, assessment, cls, sig, revision, rules_version, reasons = rows[0][:7]
    stored = Stored(IntegrityClass(cls), sig, revision, rules_version, reasons) if cls is not None else None
    records = [_fact(row[7], row[8], row[9], row[10], row[11]) for row in rows if row[7] is not None]
    payload: dict[str, Any] = rows[0][12] if event_id is not None else {}
    return operator_id, ManagementAssessment(assessment), stored, records, payload


def rerate_operator(
    session: Session,
    operator_id: int,
    *,
    as_of: date | None = None,
    trigger: RatingTrigger = RatingTrigger.record,
    actor: Actor = SYSTEM,
    rules: RuleSet = DEFAULT_RULES,
    attempts: int = 3,
) -> RerateReport:
    """Re-rate one operator from its verified records (the worker's incremental path); idempotent."""
    as_of = as_of or bureau_today()
    report = RerateReport()
    for _ in range(attempts):
        loaded = _load_one(session, operator_id, as_of, rules)
        if loaded is None:
            return report
        assessment, stored, own = loaded
        report.operators = 1
        pending = decide(operator_id, MANAGEMENT_SOUND[assessment], own, stored, as_of, rules)
        if pending is None:
            return report
        report.candidates = 1
        applied = write(session, [pending], trigger=trigger, actor=actor)
        if applied:
            report.written = 1
            report.class_changes = int(applied[0].class_changed)
            return report
        # Another writer committed a newer revision between our read and our write: read again.
        report.conflicts += 1
    log.warning("operator %s: rating not written after %s conflicting attempts", operator_id, attempts)
    return report


# The worker's read on PostgreSQL, one statement: the event, its operator, the stored rating and the windowed
# verified records as one JSON array (the ratings index answers it index-only). A constant text, so psycopg
# prepares it after a few uses and nothing is built per call; the reasons arrive once, not once per record.
_EVENT_LOAD_PG = """
SELECT o.id, o.management_assessment, r.cls, r.signature, r.revision, r.rules_version, r.reasons,
       (SELECT json_agg(json_build_array(i.id, i.kind, i.fact_date, i.instrument_still_in_use, i.social_impact))
        FROM integrity_record AS i
        WHERE i.operator_id = o.id AND i.state = 'verified'
          AND i.fact_date >= %(floor)s AND i.fact_date <= %(as_of)s),
       e.payload
FROM outbox_event AS e
JOIN operator AS o ON o.id = (e.payload ->> 'operator_id')::integer
LEFT JOIN operator_rating AS r ON r.operator_id = o.id
WHERE e.id = %(event_id)s
"""


def _load_event_postgres(
    session: Session, event_id: int, as_of: date, rules: RuleSet
) -> tuple[int, ManagementAssessment, Stored | None, list[RecordFact], dict[str, Any]] | None:
    """``_load`` for an event on PostgreSQL, in one prepared statement with nothing built per call."""
    row = (
        session.connection()
        .exec_driver_sql(
            _EVENT_LOAD_PG, {"event_id": event_id, "floor": window_floor(as_of, rules), "as_of": as_of}
        )
        .first()
    )
    if row is None:
        return None
    operator_id, assessment, cls, sig, revision, rules_version, reasons, found, payload = row
    stored = Stored(_CLASS_OF_VALUE[cls], sig, revision, rules_version, reasons) if cls is not None else None
    records = [
        _fact(record_id, kind, date.fromisoformat(day), in_use, impact)
        for record_id, kind, day, in_use, impact in found or ()
    ]
    return operator_id, ManagementAssessment(assessment), stored, records, payload


def rerate_for_event(
    event_id: int,
    *,
    as_of: date | None = None,
    rules: RuleSet = DEFAULT_RULES,
    attempts: int = 3,
    unit_of_work: UnitOfWork = session_scope,
) -> RerateReport:
    """The worker's re-rating for a ``record.changed`` or ``operator.rating_inputs_changed`` event.

    Built for the round trips, which a loaded machine makes expensive. On PostgreSQL the read runs outside a
    transaction block (autocommit: no BEGIN, no COMMIT): one statement reads the event, the operator, its
    stored rating and its windowed records. Nothing to write (the usual case once stored signatures match) ends
    there. A rating whose class stays (new reasons or counts) is one conditional upsert, its own transaction.
    Only a class change opens a transaction, for the row, its history, the audit entry and the
    ``rating.changed`` event together. The conditional upsert on the revision read keeps every path safe
    against a concurrent writer (the nightly batch, another record's worker): the loser reads again.
    """
    as_of = as_of or bureau_today()
    report = RerateReport()
    for _ in range(attempts):
        with unit_of_work() as session:
            fast = is_postgres(session)
            if fast:
                session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                loaded = _load_event_postgres(session, event_id, as_of, rules)
            else:
                loaded = _load(session, None, as_of, rules, event_id=event_id)
            if loaded is None:
                return report
            operator_id, assessment, stored, own, payload = loaded
            trigger = RatingTrigger(payload.get("trigger", RatingTrigger.record.value))
            report.operators = 1
            pending = decide(operator_id, MANAGEMENT_SOUND[assessment], own, stored, as_of, rules)
            if pending is None:
                return report
            report.candidates = 1
            if fast and not pending.class_changed:
                applied = bool(
                    _upsert_postgres(session, [pending], utcnow(), relaxed=RELAXED_SAME_CLASS_COMMIT)
                )
            else:
                applied = None  # written below, in a transaction
        if applied is None:
            with unit_of_work() as session:
                applied = bool(write(session, [pending], trigger=trigger))
        if applied:
            report.written = 1
            report.class_changes = int(pending.class_changed)
            return report
        report.conflicts += 1
    log.warning("event %s: rating not written after %s conflicting attempts", event_id, attempts)
    return report


# The caller's rating_records for AGGREGATE_SQL: one range of operators, verified, inside the windows.
_RANGE_HEAD = """
WITH rating_records AS (
    SELECT operator_id, kind, state, fact_date, instrument_still_in_use, social_impact
    FROM integrity_record
    WHERE operator_id >= %(lo)s AND operator_id < %(hi)s AND state = 'verified'
      AND fact_date >= %(floor)s AND fact_date <= %(as_of)s
),
agg AS ("""
_RANGE_TAIL = """)
SELECT o.id, o.management_assessment, r.signature, r.cls,
       agg.inspections_failed, agg.accidents_with_social_impact, agg.instruments_in_use,
       agg.complaints_substantiated, agg.short_changing_peak, agg.bad_records, agg.good_records
FROM operator AS o
LEFT JOIN agg ON agg.operator_id = o.id
LEFT JOIN operator_rating AS r ON r.operator_id = o.id
WHERE o.id >= %(lo)s AND o.id < %(hi)s AND (agg.operator_id IS NOT NULL OR r.operator_id IS NOT NULL)
ORDER BY o.id
"""
# Module constants only; every value is a bound parameter.
_RANGE_SQL = _RANGE_HEAD + AGGREGATE_SQL + _RANGE_TAIL


@dataclass(frozen=True, slots=True)
class _Seen:
    """One operator of a range whose inputs changed since its rating was stored."""

    operator_id: int
    management_sound: bool | None
    inputs: RatingInputs
    stored_signature: str | None


_SOUND_OF_VALUE: dict[str, bool | None] = {a.value: sound for a, sound in MANAGEMENT_SOUND.items()}
_CLASS_OF_VALUE: dict[str, IntegrityClass] = {c.value: c for c in IntegrityClass}


@lru_cache(maxsize=65536)
def _derived(rules: RuleSet, sound: bool | None, counts: tuple[int, ...]) -> tuple[IntegrityClass, str]:
    """The set-based class and signature of some counts (cached: counts repeat across operators)."""
    return rate_from_aggregates(RatingInputs(sound, *counts), rules)[0], _signature(
        rules.version, sound, counts
    )


class _Candidates:
    """Classifies every operator of a range from its aggregates and keeps those whose rating must be rewritten."""

    # Runs once per operator per night, so the engine's record-by-record rating is left for the operators
    # whose windowed counts differ from what their rating was stored with (or whose stored class disagrees).

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.seen = 0
        self.classes: dict[IntegrityClass, int] = dict.fromkeys(IntegrityClass, 0)
        self.found: list[_Seen] = []
        zero = (0,) * len(_COUNT_FIELDS)
        self._zero = {sound: _signature(rules.version, sound, zero) for sound in (True, False, None)}

    def add(
        self,
        operator_id: int,
        sound: bool | None,
        counts: Sequence[int],
        stored: str | None,
        stored_cls: IntegrityClass | None,
    ) -> None:
        """Look at one operator: its management finding, fresh counts and what is stored (None: no row)."""
        self.seen += 1
        cls, sig = _derived(self.rules, sound, tuple(counts))
        self.classes[cls] += 1
        if stored is None:
            changed = sig != self._zero[sound]
        else:
            # Equal counts mean equal windowed records, except the penalties cited under Art. 13(5); a stored
            # class the aggregates contradict (edited by hand, an old bug) is rewritten too.
            changed = (
                sig != stored
                or counts[_PEAK_INDEX] >= self.rules.short_changing_threshold
                or cls is not stored_cls
            )
        if changed:
            self.found.append(_Seen(operator_id, sound, RatingInputs(sound, *counts), stored))


def _scan_sql(session: Session, lo: int, hi: int, as_of: date, rules: RuleSet) -> _Candidates:
    params = aggregate_sql_params(as_of, rules) | {"lo": lo, "hi": hi, "floor": window_floor(as_of, rules)}
    candidates = _Candidates(rules)
    zero = (0,) * len(_COUNT_FIELDS)
    for (
        operator_id,
        assessment,
        stored_signature,
        stored_cls,
        *counts,
    ) in session.connection().exec_driver_sql(_RANGE_SQL, params):
        candidates.add(
            operator_id,
            _SOUND_OF_VALUE[assessment],
            counts if counts[0] is not None else zero,
            stored_signature,
            _CLASS_OF_VALUE[stored_cls] if stored_cls is not None else None,
        )
    return candidates


def _scan_python(
    session: Session, lo: int, hi: int, as_of: date, rules: RuleSet, records: dict[int, list[RecordFact]]
) -> _Candidates:
    stored = load_stored(session, id_range=(lo, hi))
    operators = session.execute(
        select(col(Operator.id), col(Operator.management_assessment))
        .where(col(Operator.id) >= lo, col(Operator.id) < hi)
        .order_by(col(Operator.id))
    ).all()
    candidates = _Candidates(rules)
    for operator_id, assessment in operators:
        own = records.get(operator_id)
        row = stored.get(operator_id)
        if not own and row is None:
            continue
        sound = MANAGEMENT_SOUND[assessment]
        inputs = aggregate(OperatorFacts(sound), own or [], as_of, rules)
        counts = [getattr(inputs, name) for name in _COUNT_FIELDS]
        candidates.add(operator_id, sound, counts, row.signature if row else None, row.cls if row else None)
    return candidates


def rerate_range(
    session: Session,
    lo: int,
    hi: int,
    *,
    as_of: date,
    rules: RuleSet = DEFAULT_RULES,
    method: Method = "auto",
    trigger: RatingTrigger = RatingTrigger.nightly,
    actor: Actor = SYSTEM,
) -> RerateReport:
    """Re-rate operators with ids in [lo, hi): set-based on PostgreSQL, batched Python otherwise."""
    use_sql = method == "sql" or (method == "auto" and is_postgres(session))
    if use_sql and not is_postgres(session):
        raise ValueError("集合计算路径需要 PostgreSQL / the set-based path needs PostgreSQL")
    records: dict[int, list[RecordFact]] | None = None
    if use_sql:
        scan = _scan_sql(session, lo, hi, as_of, rules)
    else:
        records = load_verified(session, as_of=as_of, rules=rules, id_range=(lo, hi))
        scan = _scan_python(session, lo, hi, as_of, rules, records)
    candidates = scan.found
    report = RerateReport(
        operators=scan.seen,
        candidates=len(candidates),
        untrustworthy=scan.classes[IntegrityClass.UNTRUSTWORTHY],
        basically_trustworthy=scan.classes[IntegrityClass.BASICALLY_TRUSTWORTHY],
        trustworthy=scan.classes[IntegrityClass.TRUSTWORTHY],
    )
    if not candidates:
        return report
    ids = [c.operator_id for c in candidates]
    if records is None:
        # Many candidates (a first rating): one range scan; few (a normal night): only theirs.
        records = (
            load_verified(session, as_of=as_of, rules=rules, id_range=(lo, hi))
            if len(ids) * 4 > hi - lo
            else load_verified(session, as_of=as_of, rules=rules, operator_ids=ids)
        )
    stored = load_stored(
        session, operator_ids=[c.operator_id for c in candidates if c.stored_signature], with_reasons=True
    )
    pending: list[Pending] = []
    for c in candidates:
        decision = decide(
            c.operator_id,
            c.management_sound,
            records.get(c.operator_id, []),
            stored.get(c.operator_id),
            as_of,
            rules,
            inputs=c.inputs,
        )
        if use_sql:
            report.mismatches += _cross_check(c, decision, stored.get(c.operator_id), rules)
        if decision is not None:
            pending.append(decision)
    applied = write(session, pending, trigger=trigger, actor=actor)
    report.written = len(applied)
    report.class_changes = sum(1 for p in applied if p.class_changed)
    report.conflicts = len(pending) - len(applied)
    return report


def _cross_check(seen: _Seen, decision: Pending | None, stored: Stored | None, rules: RuleSet) -> int:
    """1 when the set-based class and rule keys disagree with the per-operator rating, else 0."""
    expected_cls, expected_rules = rate_from_aggregates(seen.inputs, rules)
    if decision is not None:
        got = (decision.rating.cls, tuple(r["rule"] for r in decision.reasons))
    elif stored is not None and stored.reasons is not None:
        got = (stored.cls, tuple(r["rule"] for r in stored.reasons))
    else:
        # Unchanged and no row: the rating equals the no-record rating.
        got = rate_from_aggregates(zero_inputs(seen.management_sound), rules)
    if got == (expected_cls, tuple(str(r) for r in expected_rules)):
        return 0
    log.error(
        "operator %s: set-based rating %s differs from per-operator %s", seen.operator_id, expected_cls, got
    )
    return 1


def operator_ranges(session: Session, batch: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of operator ids covering every operator, ``batch`` ids each."""
    lo, hi = session.execute(select(func.min(col(Operator.id)), func.max(col(Operator.id)))).one()
    if lo is None:
        return []
    return [(start, start + batch) for start in range(lo, hi + 1, batch)]


def rerate_all(
    *,
    as_of: date | None = None,
    batch: int = 20_000,
    unit_of_work: UnitOfWork = session_scope,
    method: Method = "auto",
    rules: RuleSet = DEFAULT_RULES,
    progress: Callable[[int, int], None] | None = None,
) -> RerateReport:
    """Re-rate every operator on ``as_of`` (the nightly run), one committed transaction per id range."""
    as_of = as_of or bureau_today()
    with unit_of_work() as session:
        ranges = operator_ranges(session, batch)
    report = RerateReport()
    for number, (lo, hi) in enumerate(ranges, start=1):
        with unit_of_work() as session:
            report.add(rerate_range(session, lo, hi, as_of=as_of, rules=rules, method=method))
        if progress is not None:
            progress(number, len(ranges))
    return report


# --- reading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrentRating:
    """An operator's rating as served: stored, or computed now when nothing is stored yet."""

    operator_id: int
    cls: IntegrityClass
    as_of: date
    reasons: list[dict[str, Any]]
    rules_version: str
    stored: bool


def current(session: Session, operator: Operator, rules: RuleSet = DEFAULT_RULES) -> CurrentRating:
    """The stored rating, or (no row yet) the rating computed now from the same records."""
    operator_id = operator.id or 0
    row = session.execute(
        select(OperatorRating)
        .where(col(OperatorRating.operator_id) == operator_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is not None:
        return CurrentRating(operator_id, row.cls, row.as_of, row.reasons, row.rules_version, True)
    as_of = bureau_today()
    records = load_verified(session, as_of=as_of, rules=rules, operator_ids=[operator_id])
    rating = rate(facts_of(operator.management_assessment), records.get(operator_id, []), as_of, rules)
    return CurrentRating(operator_id, rating.cls, as_of, reasons_json(rating), rating.rules_version, False)


def history(session: Session, operator_id: int, *, limit: int, offset: int) -> Sequence[RatingChange]:
    """An operator's class changes, newest first."""
    return (
        session.execute(
            select(RatingChange)
            .where(col(RatingChange.operator_id) == operator_id)
            .order_by(col(RatingChange.id).desc())
            .limit(limit)
            .offset(offset)
        )
        .scalars()
        .all()
    )
