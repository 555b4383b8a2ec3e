"""The publication gate (Art. 18, 19): a verified record becomes public only after a second staff member's review.

Staff ask for a record to be published; another staff member in scope, who neither entered, verified,
corrected nor asked for it (four eyes), confirms the three checks of Art. 18 (no state or trade secret, no
personal data, nothing from another organ not yet disclosed) and approves, or refuses with reasons. Staff may
take a publication down with reasons; a correction or revocation of the record withdraws it automatically
(:func:`withdraw_for_change`, called by the records service inside the change). This module is the only writer
of ``IntegrityRecord.public_eligible``, the one flag every public read path checks. Every step is audited in
the caller's transaction; publishing and unpublishing write a ``publication.changed`` outbox event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import Actor, snapshot
from backend.auth.scope import Scope
from backend.db import utcnow
from backend.errors import AppError, conflict
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from backend.outbox.service import emit
from backend.publication.models import OPEN_STATUSES, PublicationStatus, RecordPublication
from backend.publication.schemas import PublicationApprove
from backend.records.models import (
    CorrectionRequest,
    CorrectionStatus,
    IntegrityRecord,
    IntegrityRecordVersion,
    RecordChange,
)
from backend.records.rules import RecordState

ENTITY = "record_publication"

#: The Art. 18 checks a reviewer confirms, with what each means (for the error that names a missing one).
CONFIRMATIONS: dict[str, tuple[str, str]] = {
    "no_state_or_trade_secret": ("不含国家秘密、商业秘密", "no state or trade secret"),
    "no_personal_data": ("不含个人隐私", "no personal data"),
    "no_undisclosed_information_of_other_organs": (
        "不含其他机关尚未公开的信息",
        "nothing from another organ not yet disclosed",
    ),
}

#: How a withdrawal names the record change that caused it.
_CHANGE_TEXT: dict[RecordChange, tuple[str, str]] = {
    RecordChange.correct: ("已更正", "corrected"),
    RecordChange.revoke: ("已撤销", "revoked"),
    RecordChange.dismiss: ("已驳回", "dismissed"),
}

#: Record changes whose actor shaped what the record says, and so may not review its publication.
_AUTHORING_CHANGES = (RecordChange.create, RecordChange.verify, RecordChange.correct)


def _need_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise AppError(422, "reason_required", "必须填写理由", "a reason is required")
    return reason


def _lock(session: Session, record: IntegrityRecord) -> IntegrityRecord:
    """Re-read the record under a row lock (PostgreSQL): publication steps on one record run one at a time."""
    locked: IntegrityRecord = session.execute(
        select(IntegrityRecord)
        .where(col(IntegrityRecord.id) == record.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    return locked


def open_publication(session: Session, record_id: int) -> RecordPublication | None:
    """The record's pending or published request, if any."""
    return session.execute(
        select(RecordPublication).where(
            col(RecordPublication.record_id) == record_id,
            col(RecordPublication.status).in_(sorted(OPEN_STATUSES)),
        )
    ).scalar_one_or_none()


def history(session: Session, record_id: int) -> Sequence[RecordPublication]:
    """Every publication request of a record, newest first."""
    return (
        session.execute(
            select(RecordPublication)
            .where(col(RecordPublication.record_id) == record_id)
            .order_by(col(RecordPublication.id).desc())
        )
        .scalars()
        .all()
    )


def involved(session: Session, record_ids: Iterable[int]) -> dict[int, set[int]]:
    """Per record, the accounts that entered, verified or corrected it (who may not review its publication)."""
    ids = sorted(set(record_ids))
    if not ids:
        return {}
    found: dict[int, set[int]] = {i: set() for i in ids}
    for record_id, author_id in session.execute(
        select(col(IntegrityRecord.id), col(IntegrityRecord.author_id)).where(
            col(IntegrityRecord.id).in_(ids)
        )
    ):
        if author_id is not None:
            found[record_id].add(author_id)
    for record_id, actor_id in session.execute(
        select(col(IntegrityRecordVersion.record_id), col(IntegrityRecordVersion.actor_id)).where(
            col(IntegrityRecordVersion.record_id).in_(ids),
            col(IntegrityRecordVersion.change).in_(_AUTHORING_CHANGES),
            col(IntegrityRecordVersion.actor_id).is_not(None),
        )
    ):
        found[record_id].add(actor_id)
    return found


def may_review(actor_id: int | None, publication: RecordPublication, authors: set[int]) -> bool:
    """Whether an account is a second pair of eyes for this request (not an author, verifier or requester)."""
    return actor_id is not None and actor_id not in authors and actor_id != publication.requested_by_id


def _audit(
    session: Session,
    *,
    actor: Actor,
    action: str,
    publication: RecordPublication,
    before: dict[str, Any] | None,
) -> None:
    audit.service.record(
        session,
        actor=actor,
        action=action,
        entity_type=ENTITY,
        entity_id=publication.id or 0,
        before=before,
        after=snapshot(publication),
    )


def _set_public(
    session: Session, record: IntegrityRecord, public: bool, *, actor: Actor, action: str
) -> None:
    """Flip the record's one public flag, audited as a change of the record."""
    if record.public_eligible is public:
        return
    before = snapshot(record)
    record.public_eligible = public
    session.add(record)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action=action,
        entity_type="integrity_record",
        entity_id=record.id or 0,
        before=before,
        after=snapshot(record),
    )


def _changed_event(session: Session, publication: RecordPublication) -> None:
    """Tell downstream readers (edge caches, the sharing feed, the operator's notice) what the public sees."""
    emit(
        session,
        "publication.changed",
        {
            "publication_id": publication.id,
            "record_id": publication.record_id,
            "operator_id": publication.operator_id,
            "status": publication.status.value,
        },
        dedupe_key=f"publication.changed:{publication.id}:{publication.status.value}",
    )


def _need_verified(record: IntegrityRecord) -> None:
    if record.state is not RecordState.VERIFIED:
        raise conflict(
            "record_not_verified",
            "只有经调查核实的记录可以公开",
            "only a verified record can be published",
            {"state": record.state.value},
        )


def request(session: Session, *, record: IntegrityRecord, actor: Actor, note: str = "") -> RecordPublication:
    """Queue a verified record for publication review; one open request per record."""
    record = _lock(session, record)
    _need_verified(record)
    existing = open_publication(session, record.id or 0)
    if existing is not None:
        raise conflict(
            "publication_open",
            "该记录已在待审核或已公开状态",
            "the record is already awaiting review or published",
            {"publication_id": existing.id, "status": existing.status.value},
        )
    publication = RecordPublication(
        record_id=record.id or 0,
        operator_id=record.operator_id,
        record_version=record.version,
        requested_by_id=actor.id,
        request_note=note.strip(),
    )
    try:
        with session.begin_nested():
            session.add(publication)
            session.flush()
    except IntegrityError:
        # A concurrent request won the race the row lock does not cover on SQLite's deferred readers.
        raise conflict(
            "publication_open",
            "该记录已在待审核或已公开状态",
            "the record is already awaiting review or published",
        ) from None
    _audit(session, actor=actor, action="publication.request", publication=publication, before=None)
    return publication


def _pending(session: Session, record: IntegrityRecord) -> RecordPublication:
    publication = open_publication(session, record.id or 0)
    if publication is None or publication.status is not PublicationStatus.pending:
        raise conflict(
            "no_pending_publication",
            "该记录没有待审核的公开申请",
            "the record has no publication request awaiting review",
            {"status": publication.status.value if publication else None},
        )
    return publication


def approve(
    session: Session, *, record: IntegrityRecord, actor: Actor, data: PublicationApprove
) -> RecordPublication:
    """Approve a pending request after the three Art. 18 checks; the record becomes public."""
    missing = [name for name in CONFIRMATIONS if not getattr(data, name)]
    if missing:
        raise AppError(
            422,
            "confirmations_required",
            "须逐项确认保密审查：" + "；".join(CONFIRMATIONS[m][0] for m in missing),
            "confirm each confidentiality check: " + "; ".join(CONFIRMATIONS[m][1] for m in missing),
            {"missing": missing},
        )
    record = _lock(session, record)
    publication = _pending(session, record)
    authors = involved(session, [record.id or 0]).get(record.id or 0, set())
    if not may_review(actor.id, publication, authors):
        role = "requester" if actor.id == publication.requested_by_id else "author_or_verifier"
        raise AppError(
            403,
            "four_eyes_required",
            "公开审核须由登记、核实、更正该记录或提出公开申请以外的另一名工作人员进行",
            "the review must be made by another staff member than whoever entered, verified, corrected or "
            "asked to publish the record",
            {"involved_as": role},
        )
    _need_verified(record)
    if record.version != publication.record_version:
        raise conflict(
            "record_changed",
            "记录在申请公开后已变更，请重新申请",
            "the record changed after publication was requested; request again",
            {"requested_version": publication.record_version, "version": record.version},
        )
    pending_correction = session.execute(
        select(col(CorrectionRequest.id)).where(
            col(CorrectionRequest.record_id) == record.id,
            col(CorrectionRequest.status) == CorrectionStatus.pending,
        )
    ).first()
    if pending_correction is not None:
        # Art. 22: information the operator disputes is not published before the dispute is decided.
        raise conflict(
            "correction_pending",
            "经营者对该记录的更正申请尚未办结，暂不能公开",
            "the operator's correction request about this record is still pending",
            {"correction_id": pending_correction[0]},
        )
    before = snapshot(publication)
    now = utcnow()
    publication.status = PublicationStatus.published
    publication.reviewed_by_id = actor.id
    publication.reviewed_at = now
    publication.review_note = data.note.strip()
    publication.no_state_or_trade_secret = True
    publication.no_personal_data = True
    publication.no_undisclosed_information_of_other_organs = True
    publication.published_at = now
    session.add(publication)
    session.flush()
    _audit(session, actor=actor, action="publication.approve", publication=publication, before=before)
    _set_public(session, record, True, actor=actor, action="record.publish")
    _changed_event(session, publication)
    return publication


def refuse(session: Session, *, record: IntegrityRecord, actor: Actor, reason: str) -> RecordPublication:
    """Refuse a pending request with reasons; nothing is published."""
    reason = _need_reason(reason)
    record = _lock(session, record)
    publication = _pending(session, record)
    before = snapshot(publication)
    publication.status = PublicationStatus.refused
    publication.reviewed_by_id = actor.id
    publication.reviewed_at = utcnow()
    publication.review_note = reason
    session.add(publication)
    session.flush()
    _audit(session, actor=actor, action="publication.refuse", publication=publication, before=before)
    return publication


def _end(
    session: Session,
    publication: RecordPublication,
    status: PublicationStatus,
    *,
    actor: Actor,
    reason: str,
) -> None:
    was_published = publication.status is PublicationStatus.published
    before = snapshot(publication)
    publication.status = status
    publication.ended_by_id = actor.id
    publication.ended_at = utcnow()
    publication.end_reason = reason
    session.add(publication)
    session.flush()
    _audit(session, actor=actor, action=f"publication.{status.value}", publication=publication, before=before)
    if was_published:
        _changed_event(session, publication)


def unpublish(session: Session, *, record: IntegrityRecord, actor: Actor, reason: str) -> RecordPublication:
    """Take a published record down, with reasons."""
    reason = _need_reason(reason)
    record = _lock(session, record)
    publication = open_publication(session, record.id or 0)
    if publication is None or publication.status is not PublicationStatus.published:
        raise conflict(
            "not_published",
            "该记录未公开",
            "the record is not published",
            {"status": publication.status.value if publication else None},
        )
    _end(session, publication, PublicationStatus.unpublished, actor=actor, reason=reason)
    _set_public(session, record, False, actor=actor, action="record.unpublish")
    return publication


def withdraw_for_change(
    session: Session, record: IntegrityRecord, *, change: RecordChange, actor: Actor, reason: str
) -> None:
    """End the open publication of a record being corrected, revoked or dismissed; called inside that change.

    What was reviewed is no longer what the record says (Art. 18): the record leaves the public at once and a
    new request is needed. The caller audits the record's own change, flag included.
    """
    record.public_eligible = False
    publication = open_publication(session, record.id or 0)
    if publication is None:
        return
    zh, en = _CHANGE_TEXT.get(change, (change.value, change.value))
    why = f"记录{zh}：{reason} / record {en}: {reason}"
    _end(session, publication, PublicationStatus.withdrawn, actor=actor, reason=why)


# --- the review queue -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    """A request with its record and operator name, and whether the caller may review it."""

    publication: RecordPublication
    record: IntegrityRecord
    operator_name: str
    can_review: bool


def queue(
    session: Session,
    scope: Scope,
    *,
    status: PublicationStatus | None,
    operator_id: int | None,
    limit: int,
    offset: int,
) -> tuple[list[QueueRow], int]:
    """Publication requests about operators in the scope, the oldest request first."""
    stmt = (
        select(RecordPublication, IntegrityRecord, col(Operator.name))
        .join(IntegrityRecord, col(IntegrityRecord.id) == col(RecordPublication.record_id))
        .join(Operator, col(Operator.id) == col(RecordPublication.operator_id))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        .where(col(Jurisdiction.path).startswith(scope.path, autoescape=True))
    )
    if status is not None:
        stmt = stmt.where(col(RecordPublication.status) == status)
    if operator_id is not None:
        stmt = stmt.where(col(RecordPublication.operator_id) == operator_id)
    total = int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
    rows = session.execute(
        stmt.order_by(col(RecordPublication.requested_at), col(RecordPublication.id))
        .limit(limit)
        .offset(offset)
    ).all()
    authors = involved(session, [r[1].id or 0 for r in rows])
    caller = scope.user.id
    items = [
        QueueRow(
            publication=pub,
            record=rec,
            operator_name=name,
            can_review=pub.status is PublicationStatus.pending
            and may_review(caller, pub, authors.get(rec.id or 0, set())),
        )
        for pub, rec, name in rows
    ]
    return items, total
