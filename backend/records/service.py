"""Integrity records (Art. 8): create, verify, dismiss, revoke and correct; every change a version, audited.

Other domains create records through :func:`create` (a substantiated complaint case calls it with
``source="complaint", source_ref="complaint:<id>"``). A change that can move the class (a record that is or was
verified) writes a ``record.changed`` outbox event, whose worker re-rates the operator after commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import SYSTEM, Actor, snapshot
from backend.auth.scope import Scope
from backend.common.scoped import load_scoped
from backend.dates import bureau_date
from backend.db import utcnow
from backend.errors import AppError, conflict, not_found
from backend.instruments.models import Instrument, InstrumentStatus
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator, SelfCommitment
from backend.outbox.service import emit
from backend.publication import service as publication
from backend.records.models import IntegrityRecord, IntegrityRecordVersion, RecordChange, RecordSource
from backend.records.rules import BAD_KINDS, INSTRUMENT_KINDS, RecordKind, RecordState

#: Which states each change starts from; revoked is final (a record is never deleted, Art. 22 keeps history).
ALLOWED_FROM: dict[RecordChange, frozenset[RecordState]] = {
    RecordChange.verify: frozenset({RecordState.REPORTED}),
    RecordChange.dismiss: frozenset({RecordState.REPORTED}),
    RecordChange.revoke: frozenset({RecordState.REPORTED, RecordState.VERIFIED}),
    RecordChange.correct: frozenset({RecordState.REPORTED, RecordState.VERIFIED}),
}

#: Violations that break the self-commitment's promises (verified instruments, full weight, no cheating,
#: compliant net contents, accepting supervision). A breach record itself and an association's own sanction
#: (Art. 16, its rules, not the commitment) are excluded.
COMMITMENT_BREACHING_KINDS: frozenset[RecordKind] = BAD_KINDS - {
    RecordKind.COMMITMENT_BREACHED,
    RecordKind.ASSOCIATION_WARNING,
}

#: Fields a correction may change.
CORRECTABLE_FIELDS = (
    "kind",
    "fact_date",
    "summary",
    "evidence_refs",
    "instrument_id",
    "instrument_still_in_use",
    "social_impact",
)


#: Today, and the date of an instant, in the bureaus' time zone (a fact dated "today" in Beijing is not in the
#: future): both are the one date function, under the names this module's callers know.
bureau_today = local_date = bureau_date


def check_findings(
    kind: RecordKind, instrument_still_in_use: bool | None, social_impact: bool | None
) -> None:
    """Refuse a finding the kind cannot carry: Art. 13(3) is about instruments, 13(2) about accidents."""
    if instrument_still_in_use is not None and kind not in INSTRUMENT_KINDS:
        raise AppError(
            422,
            "finding_not_applicable",
            "只有计量器具类记录可以认定“继续使用”",
            "only instrument records carry instrument_still_in_use",
            {"kind": kind.value, "field": "instrument_still_in_use"},
        )
    if social_impact is not None and kind is not RecordKind.METROLOGY_ACCIDENT:
        raise AppError(
            422,
            "finding_not_applicable",
            "只有计量事故记录可以认定“造成社会影响”",
            "only metrology accidents carry social_impact",
            {"kind": kind.value, "field": "social_impact"},
        )


def check_fact_date(fact_date: date) -> None:
    """Refuse facts dated in the future: the nightly re-rating relies on windows only ever shrinking."""
    if fact_date > bureau_today():
        raise AppError(
            422,
            "fact_date_in_future",
            "事实发生日期不能晚于今天",
            "the date of the facts cannot be in the future",
            {"fact_date": fact_date.isoformat()},
        )


def _check_instrument(session: Session, operator_id: int, instrument_id: int | None) -> None:
    if instrument_id is None:
        return
    instrument = session.get(Instrument, instrument_id)
    if instrument is None or instrument.operator_id != operator_id:
        raise AppError(
            422,
            "instrument_not_of_operator",
            "该计量器具不属于此经营者",
            "the instrument does not belong to this operator",
            {"instrument_id": instrument_id},
        )


def _add_version(
    session: Session, record: IntegrityRecord, change: RecordChange, reason: str, actor: Actor
) -> None:
    session.add(
        IntegrityRecordVersion(
            record_id=record.id or 0,
            version=record.version,
            change=change,
            reason=reason,
            actor_id=actor.id,
            actor_role=str(actor.role),
            snapshot=snapshot(record) or {},
        )
    )
    session.flush()


def _after_change(
    session: Session,
    record: IntegrityRecord,
    *,
    before_state: RecordState | None,
    before_kind: RecordKind | None,
    notice: bool = True,
) -> None:
    """Re-rate through the outbox when the class can move; keep commitment breaches in step."""
    touches_rating = RecordState.VERIFIED in (before_state, record.state)
    if touches_rating:
        payload: dict[str, Any] = {
            "record_id": record.id,
            "operator_id": record.operator_id,
            "version": record.version,
        }
        if not notice:
            payload["notice"] = False
        emit(session, "record.changed", payload, dedupe_key=f"record.changed:{record.id}:v{record.version}")
        if before_kind in COMMITMENT_BREACHING_KINDS or record.kind in COMMITMENT_BREACHING_KINDS:
            sync_commitment_breaches(session, record.operator_id)


def find_by_source(session: Session, source_ref: str, kind: RecordKind) -> IntegrityRecord | None:
    """The live (not revoked) record a creator already made for this reference and kind, if any."""
    return session.execute(
        select(IntegrityRecord)
        .where(
            col(IntegrityRecord.source_ref) == source_ref,
            col(IntegrityRecord.kind) == kind,
            col(IntegrityRecord.state) != RecordState.REVOKED,
        )
        .order_by(col(IntegrityRecord.id))
        .limit(1)
    ).scalar_one_or_none()


def create(
    session: Session,
    *,
    operator: Operator,
    kind: RecordKind | str,
    fact_date: date,
    source: RecordSource | str,
    actor: Actor,
    source_ref: str | None = None,
    state: RecordState | str = RecordState.REPORTED,
    summary: str = "",
    evidence_refs: Sequence[str] = (),
    instrument_id: int | None = None,
    instrument_still_in_use: bool | None = None,
    social_impact: bool | None = None,
    reason: str = "",
    notice: bool = True,
) -> IntegrityRecord:
    """Create a record, ``reported`` or already ``verified``; idempotent on (source_ref, kind).

    ``notice=False``: the creator tells the operator of its decision itself, once for all the records it makes
    (:func:`decided`), so this record's ``record.changed`` carries ``"notice": false``."""
    # A creator passing the same reference and kind again (a retried task, a replayed request) gets the record
    # it made before; once that record is revoked, a new one may be made for the reference (a reopened case).
    kind, source, state = RecordKind(kind), RecordSource(source), RecordState(state)
    if state not in (RecordState.REPORTED, RecordState.VERIFIED):
        raise ValueError(
            f"记录只能以已报告或已核实状态创建 / a record is created reported or verified, not {state.value}"
        )
    check_findings(kind, instrument_still_in_use, social_impact)
    check_fact_date(fact_date)
    operator_id = operator.id or 0
    _check_instrument(session, operator_id, instrument_id)
    if source_ref is not None:
        existing = find_by_source(session, source_ref, kind)
        if existing is not None:
            return existing
    record = IntegrityRecord(
        operator_id=operator_id,
        kind=kind,
        fact_date=fact_date,
        source=source,
        source_ref=source_ref,
        summary=summary,
        evidence_refs=list(evidence_refs),
        instrument_id=instrument_id,
        state=state,
        instrument_still_in_use=instrument_still_in_use,
        social_impact=social_impact,
        author_id=actor.id,
    )
    session.add(record)
    session.flush()
    _add_version(session, record, RecordChange.create, reason, actor)
    audit.service.record(
        session,
        actor=actor,
        action="record.create",
        entity_type="integrity_record",
        entity_id=record.id or 0,
        after=snapshot(record),
    )
    _after_change(session, record, before_state=None, before_kind=None, notice=notice)
    return record


def decided(
    session: Session,
    *,
    operator_id: int,
    records: Sequence[IntegrityRecord],
    jurisdiction_code: str | None,
    dedupe: str,
) -> None:
    """One decision's verified findings about an operator: one ``finding.decided``, one notice to it."""
    if not records:
        return
    emit(
        session,
        "finding.decided",
        {
            "operator_id": operator_id,
            "record_ids": sorted(r.id or 0 for r in records),
            "jurisdiction_code": jurisdiction_code,
            "decided_on": bureau_date().isoformat(),
        },
        dedupe_key=f"finding.decided:{dedupe}",
    )


def _refuse_transition(record: IntegrityRecord, change: RecordChange) -> None:
    if record.state not in ALLOWED_FROM[change]:
        raise conflict(
            "invalid_record_state",
            f"记录当前状态为“{record.state.value}”，不能执行该操作",
            f"a record in state {record.state.value!r} cannot be {change.value}-ed",
            {"state": record.state.value, "allowed_from": sorted(s.value for s in ALLOWED_FROM[change])},
        )


def _apply(
    session: Session,
    record: IntegrityRecord,
    change: RecordChange,
    *,
    actor: Actor,
    reason: str,
    updates: dict[str, Any],
) -> IntegrityRecord:
    """Apply one change as a new version, audited, then re-rate and re-check commitments as needed."""
    _refuse_transition(record, change)
    before = snapshot(record)
    before_state, before_kind = record.state, record.kind
    for key, value in updates.items():
        setattr(record, key, value)
    if change is not RecordChange.verify:
        # What was reviewed for publication (Art. 18) is no longer what the record says.
        publication.withdraw_for_change(session, record, change=change, actor=actor, reason=reason)
    record.version += 1
    record.updated_at = utcnow()
    session.add(record)
    session.flush()
    _add_version(session, record, change, reason, actor)
    audit.service.record(
        session,
        actor=actor,
        action=f"record.{change.value}",
        entity_type="integrity_record",
        entity_id=record.id or 0,
        before=before,
        after=snapshot(record),
    )
    _after_change(session, record, before_state=before_state, before_kind=before_kind)
    return record


def verify(
    session: Session,
    record: IntegrityRecord,
    *,
    actor: Actor,
    reason: str = "",
    instrument_still_in_use: bool | None = None,
    social_impact: bool | None = None,
) -> IntegrityRecord:
    """Confirm a reported record after investigation (Art. 13 经调查核实), optionally with its findings."""
    _refuse_transition(record, RecordChange.verify)
    updates: dict[str, Any] = {"state": RecordState.VERIFIED}
    if instrument_still_in_use is not None:
        updates["instrument_still_in_use"] = instrument_still_in_use
    if social_impact is not None:
        updates["social_impact"] = social_impact
    check_findings(
        record.kind,
        updates.get("instrument_still_in_use", record.instrument_still_in_use),
        updates.get("social_impact", record.social_impact),
    )
    return _apply(session, record, RecordChange.verify, actor=actor, reason=reason, updates=updates)


def _need_reason(reason: str) -> None:
    if not reason.strip():
        raise AppError(422, "reason_required", "必须填写理由", "a reason is required")


def dismiss(session: Session, record: IntegrityRecord, *, actor: Actor, reason: str) -> IntegrityRecord:
    """Find a reported record unfounded; it never counts."""
    _need_reason(reason)
    return _apply(
        session,
        record,
        RecordChange.dismiss,
        actor=actor,
        reason=reason,
        updates={"state": RecordState.DISMISSED},
    )


def revoke(session: Session, record: IntegrityRecord, *, actor: Actor, reason: str) -> IntegrityRecord:
    """Revoke a record (Art. 22): it stays with its history but never counts again."""
    _need_reason(reason)
    return _apply(
        session,
        record,
        RecordChange.revoke,
        actor=actor,
        reason=reason,
        updates={"state": RecordState.REVOKED},
    )


def correct(
    session: Session, record: IntegrityRecord, *, actor: Actor, reason: str, changes: dict[str, Any]
) -> IntegrityRecord:
    """Change a record's fields (Art. 22 变更) as a new version; findings a new kind cannot carry are dropped."""
    _need_reason(reason)
    _refuse_transition(record, RecordChange.correct)
    unknown = set(changes) - set(CORRECTABLE_FIELDS)
    if unknown:
        raise ValueError(f"这些字段不可更正 / not correctable: {sorted(unknown)}")
    updates = {k: v for k, v in changes.items() if getattr(record, k) != v}
    kind = RecordKind(updates.get("kind", record.kind))
    # A finding inherited from the old kind is dropped when the new kind cannot carry it; one given
    # explicitly in the same correction is checked and refused.
    for field, applies in (
        ("instrument_still_in_use", kind in INSTRUMENT_KINDS),
        ("social_impact", kind is RecordKind.METROLOGY_ACCIDENT),
    ):
        if not applies and field not in changes and getattr(record, field) is not None:
            updates[field] = None
    check_findings(
        kind,
        updates.get("instrument_still_in_use", record.instrument_still_in_use),
        updates.get("social_impact", record.social_impact),
    )
    if "fact_date" in updates:
        check_fact_date(updates["fact_date"])
    if "instrument_id" in updates:
        _check_instrument(session, record.operator_id, updates["instrument_id"])
    if "evidence_refs" in updates:
        updates["evidence_refs"] = list(updates["evidence_refs"])
    if not updates:
        raise AppError(422, "nothing_to_correct", "更正内容与现有记录相同", "the correction changes nothing")
    return _apply(session, record, RecordChange.correct, actor=actor, reason=reason, updates=updates)


# --- reading, scoped -------------------------------------------------------------------------------------


#: What a missing or out-of-scope record is called in the 404.
RECORD = ("诚信计量记录", "integrity record")


def get_in_scope(session: Session, scope: Scope, record_id: int) -> IntegrityRecord:
    """The record if its operator lies in the scope; 404 otherwise, so ids outside reveal nothing."""
    return load_scoped(session, scope, IntegrityRecord, record_id, RECORD, via="operator")


def get_for_operator(session: Session, operator_id: int, record_id: int) -> IntegrityRecord:
    """One of the operator's own records; 404 for anyone else's."""
    record = session.get(IntegrityRecord, record_id)
    if record is None or record.operator_id != operator_id:
        raise not_found("诚信计量记录", "integrity record")
    return record


@dataclass(frozen=True)
class RecordFilter:
    """Listing filters."""

    operator_id: int | None = None
    state: RecordState | None = None
    kind: RecordKind | None = None
    source: RecordSource | None = None
    #: Any of these sources (the review queue of reports from institutions, associations and supervisors).
    sources: tuple[RecordSource, ...] = ()


def list_in_scope(
    session: Session, scope: Scope, flt: RecordFilter, *, limit: int, offset: int
) -> tuple[Sequence[IntegrityRecord], int]:
    """Records of operators in the scope, newest facts first."""
    stmt = (
        select(IntegrityRecord)
        .join(Operator, col(Operator.id) == col(IntegrityRecord.operator_id))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        .where(col(Jurisdiction.path).startswith(scope.path))
    )
    stmt = _filtered(stmt, flt)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.order_by(col(IntegrityRecord.fact_date).desc(), col(IntegrityRecord.id).desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(rows), total


def list_for_operator(
    session: Session, operator_id: int, flt: RecordFilter, *, limit: int, offset: int
) -> tuple[Sequence[IntegrityRecord], int]:
    """An operator's own records, newest facts first."""
    stmt = _filtered(
        select(IntegrityRecord).where(col(IntegrityRecord.operator_id) == operator_id),
        RecordFilter(state=flt.state, kind=flt.kind, source=flt.source),
    )
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.order_by(col(IntegrityRecord.fact_date).desc(), col(IntegrityRecord.id).desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(rows), total


def _filtered(stmt: Any, flt: RecordFilter) -> Any:
    if flt.operator_id is not None:
        stmt = stmt.where(col(IntegrityRecord.operator_id) == flt.operator_id)
    if flt.state is not None:
        stmt = stmt.where(col(IntegrityRecord.state) == flt.state)
    if flt.kind is not None:
        stmt = stmt.where(col(IntegrityRecord.kind) == flt.kind)
    if flt.source is not None:
        stmt = stmt.where(col(IntegrityRecord.source) == flt.source)
    if flt.sources:
        stmt = stmt.where(col(IntegrityRecord.source).in_(flt.sources))
    return stmt


def versions(session: Session, record_id: int) -> Sequence[IntegrityRecordVersion]:
    """Every version of a record, oldest first."""
    return (
        session.execute(
            select(IntegrityRecordVersion)
            .where(col(IntegrityRecordVersion.record_id) == record_id)
            .order_by(col(IntegrityRecordVersion.version))
        )
        .scalars()
        .all()
    )


def last_decision_reasons(session: Session, record_ids: Iterable[int]) -> dict[int, str]:
    """The reason given with each record's latest verify, dismiss or revoke (what a reporter is told)."""
    ids = list(record_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(
            col(IntegrityRecordVersion.record_id),
            col(IntegrityRecordVersion.version),
            col(IntegrityRecordVersion.reason),
        )
        .where(
            col(IntegrityRecordVersion.record_id).in_(ids),
            col(IntegrityRecordVersion.change).in_(
                [RecordChange.verify, RecordChange.dismiss, RecordChange.revoke]
            ),
        )
        .order_by(col(IntegrityRecordVersion.version))
    ).all()
    return {record_id: reason for record_id, _v, reason in rows}


# --- self-commitment (Art. 8 good record, and its breach) --------------------------------------------------


def commitment_ref(commitment_id: int) -> str:
    """The source reference tying records to one signed self-commitment."""
    return f"self_commitment:{commitment_id}"


def record_commitment_signed(
    session: Session, *, operator: Operator, commitment: SelfCommitment, actor: Actor
) -> IntegrityRecord:
    """The good record of a signed self-commitment (Art. 8 良好记录), verified: the signature is the fact."""
    return create(
        session,
        operator=operator,
        kind=RecordKind.COMMITMENT_KEPT,
        fact_date=local_date(commitment.signed_at),
        source=RecordSource.self_commitment,
        source_ref=commitment_ref(commitment.id or 0),
        state=RecordState.VERIFIED,
        summary=f"签署诚信计量自我承诺（承诺书版本 {commitment.text_version}）",
        actor=actor,
        reason="签署自我承诺 / self-commitment signed",
    )


#: The outbox topic that re-rates an operator when a fact about it that is not a record changes (Art. 10's
#: management assessment); the relay sends it to the same task as ``record.changed``.
RATING_INPUTS_CHANGED: Final = "operator.rating_inputs_changed"


def demonstration_ref(operator_id: int) -> str:
    """The source reference of the good record a demonstration-unit designation makes."""
    return f"operator:{operator_id}:demonstration_unit"


def operator_facts_changed(
    session: Session,
    operator: Operator,
    *,
    before: dict[str, Any],
    actor: Actor,
) -> None:
    """Follow a staff edit of an operator's rating inputs (Art. 8, 10): called by the operator update.

    The demonstration-unit flag and its good record move together: setting the flag makes a verified
    ``demonstration_unit`` record (示范单位, Art. 8 良好记录); clearing it revokes that record. Both go through
    :func:`create` / :func:`revoke`, so they are versioned, audited and re-rate the operator. A changed
    management assessment (sound / not fully sound separates 守信 from 基本守信) re-rates through the outbox, on
    the same worker path as a record change.
    """
    operator_id = operator.id or 0
    was_demo = bool(before.get("is_demonstration_unit"))
    if operator.is_demonstration_unit and not was_demo:
        create(
            session,
            operator=operator,
            kind=RecordKind.DEMONSTRATION_UNIT,
            fact_date=bureau_today(),
            source=RecordSource.staff,
            source_ref=demonstration_ref(operator_id),
            state=RecordState.VERIFIED,
            summary="被认定为诚信计量示范单位",
            actor=actor,
            reason="工作人员认定为示范单位 / designated a demonstration unit by staff",
        )
    elif was_demo and not operator.is_demonstration_unit:
        live = session.execute(
            select(IntegrityRecord).where(
                col(IntegrityRecord.operator_id) == operator_id,
                col(IntegrityRecord.source_ref) == demonstration_ref(operator_id),
                col(IntegrityRecord.kind) == RecordKind.DEMONSTRATION_UNIT,
                col(IntegrityRecord.state).in_([RecordState.REPORTED, RecordState.VERIFIED]),
            )
        ).scalars()
        for record in live:
            revoke(
                session,
                record,
                actor=actor,
                reason="示范单位认定已撤销 / demonstration-unit designation withdrawn",
            )
    previous = before.get("management_assessment")
    if previous is not None and str(previous) != operator.management_assessment.value:
        emit(
            session,
            RATING_INPUTS_CHANGED,
            {
                "operator_id": operator_id,
                "trigger": "manual",
                "management_assessment": operator.management_assessment.value,
            },
            dedupe_key=f"{RATING_INPUTS_CHANGED}:{operator_id}:{operator.updated_at.isoformat()}",
        )


def _in_force(commitment: SelfCommitment, fact_date: date) -> bool:
    """Whether a violation on ``fact_date`` happened under this commitment."""
    # Days are the only resolution records have: the signing day itself does not count (the violation may
    # have preceded the signature that day), the day a commitment is superseded still does.
    if fact_date <= local_date(commitment.signed_at):
        return False
    return commitment.withdrawn_at is None or fact_date <= local_date(commitment.withdrawn_at)


def sync_commitment_breaches(session: Session, operator_id: int) -> None:
    """Keep one verified ``commitment_breached`` record per commitment, citing its earliest violation."""
    # A breach is a bad record of Art. 8 (未实现诚信计量自我承诺) but none of Art. 13's five conditions, so on
    # its own it places an operator under the gap rule (基本守信 by default); it always accompanies the verified
    # violation it cites, which is what Art. 13 counts. When that violation is revoked or corrected away the
    # breach follows it; a breach staff revoked for a violation stays revoked.
    commitments = (
        session.execute(select(SelfCommitment).where(col(SelfCommitment.operator_id) == operator_id))
        .scalars()
        .all()
    )
    if not commitments:
        return
    violations = session.execute(
        select(col(IntegrityRecord.id), col(IntegrityRecord.fact_date))
        .where(
            col(IntegrityRecord.operator_id) == operator_id,
            col(IntegrityRecord.state) == RecordState.VERIFIED,
            col(IntegrityRecord.kind).in_(COMMITMENT_BREACHING_KINDS),
        )
        .order_by(col(IntegrityRecord.fact_date), col(IntegrityRecord.id))
    ).all()
    operator = session.get(Operator, operator_id)
    assert operator is not None
    for commitment in commitments:
        ref = commitment_ref(commitment.id or 0)
        earliest = next(((rid, day) for rid, day in violations if _in_force(commitment, day)), None)
        breaches = (
            session.execute(
                select(IntegrityRecord).where(
                    col(IntegrityRecord.source_ref) == ref,
                    col(IntegrityRecord.kind) == RecordKind.COMMITMENT_BREACHED,
                )
            )
            .scalars()
            .all()
        )
        live = next((b for b in breaches if b.state is not RecordState.REVOKED), None)
        if earliest is None:
            if live is not None:
                revoke(
                    session,
                    live,
                    actor=SYSTEM,
                    reason="所引用的违法记录已不成立 / the violation it cited no longer stands",
                )
            continue
        cited = [f"record:{earliest[0]}"]
        if live is not None:
            if live.evidence_refs != cited or live.fact_date != earliest[1]:
                correct(
                    session,
                    live,
                    actor=SYSTEM,
                    reason="改为引用承诺期内最早的违法记录 / now cites the earliest violation under the commitment",
                    changes={"evidence_refs": cited, "fact_date": earliest[1]},
                )
            continue
        if any(b.evidence_refs == cited for b in breaches):
            continue  # staff revoked the breach for exactly this violation: their decision stands
        create(
            session,
            operator=operator,
            kind=RecordKind.COMMITMENT_BREACHED,
            fact_date=earliest[1],
            source=RecordSource.self_commitment,
            source_ref=ref,
            state=RecordState.VERIFIED,
            evidence_refs=cited,
            summary=f"承诺期内发生经核实的违法违规行为（记录 {earliest[0]}）",
            actor=SYSTEM,
            reason="自我承诺期内的违法记录经核实 / a violation under the commitment was verified",
        )


# --- the overdue sweep (Art. 13(3)) ----------------------------------------------------------------------------


def record_overdue_instrument(
    session: Session, *, instrument_id: int, valid_until: date
) -> IntegrityRecord | None:
    """A reported ``instrument_overdue`` record for an instrument the sweep found overdue, if it still is."""
    # Reported, not verified: the registry may lag behind a verification done elsewhere, and whether the
    # instrument is still used in trade (Art. 13(3)) is for staff to find.
    instrument = session.get(Instrument, instrument_id)
    if (
        instrument is None
        or instrument.status is not InstrumentStatus.in_use
        or instrument.valid_until != valid_until
        or valid_until >= bureau_today()
    ):
        return None  # re-verified or retired since the sweep saw it
    operator = session.get(Operator, instrument.operator_id)
    assert operator is not None
    return create(
        session,
        operator=operator,
        kind=RecordKind.INSTRUMENT_OVERDUE,
        fact_date=valid_until + timedelta(days=1),
        source=RecordSource.overdue_sweep,
        source_ref=f"instrument:{instrument_id}:overdue:{valid_until.isoformat()}",
        state=RecordState.REPORTED,
        instrument_id=instrument_id,
        summary=f"计量器具（出厂编号 {instrument.serial}）检定有效期至 {valid_until.isoformat()}，已超期",
        actor=SYSTEM,
        reason="检定超期巡查 / overdue sweep",
    )
