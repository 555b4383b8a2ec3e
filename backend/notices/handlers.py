"""Which notices each outbox event makes: ``HANDLERS[topic](session, event)`` → recipients, kind, context.

Handlers reload what they need by id and return nothing when the event went stale (the instrument was
re-verified, the interview cancelled or moved): the notice would be wrong, not merely late. They never put
anything identifying a complainant or supervisor into an operator-facing context (Art. 18); the templates
refuse such keys as a second line of defence.

Payload contracts, one per topic (ids are integers, dates ``YYYY-MM-DD``, instants ISO 8601 with offset).
Producers emit exactly these keys; extra keys are ignored.

============================ ======================================================= ===================
topic                        payload                                                  notice → recipients
============================ ======================================================= ===================
``instrument.due``           instrument_id, operator_id, valid_until, threshold        verification_due →
                             (``30d``/``7d``/``1d``), as_of (emitted by the reminder   operator users
                             sweep, dedupe ``instrument.due:{id}:{valid_until}:{t}``)
``instrument.overdue``       instrument_id, operator_id, valid_until                   verification_overdue →
                                                                                       operator users
``complaint.created``        complaint_id, photo_ids                                   complaint_received →
                                                                                       the consumer who filed
``record.changed``           record_id, operator_id, version, notice (optional;        finding_against_operator
                             ``false``: the decision that made it notifies through     → operator users, when
                             ``finding.decided``)                                      that version made a bad
                                                                                       record verified
``finding.decided``          operator_id, record_ids, jurisdiction_code, decided_on    findings_against_operator
                             (one decision: a substantiated case, a failed             → operator users, once
                             inspection)                                               for all its records
``rating.changed``           operator_id, change_id, from, to, as_of                   rating_changed →
                                                                                       operator users
``interview.scheduled``      interview_id, operator_id, kind                           interview_scheduled
                                                                                       (约谈) or
                                                                                       reminder_notice (提醒)
                                                                                       → operator users
``interview.cancelled``      interview_id, operator_id, kind                           interview_cancelled →
                                                                                       operator users (约谈 only)
``interview.reminder``       interview_id, operator_id, scheduled_at, reminder         interview_reminder →
                             (``24h``/``1h``; emitted by the reminder sweep)           operator users
``correction.decided``       correction_id, record_id, operator_id, decision           correction_decided →
                             (``correct``/``revoke``/``reject``)                       operator users
``correction.overdue``       correction_id, operator_id, jurisdiction_code, due_on;   correction_overdue →
                             dedupe ``correction.overdue:{correction_id}:{due_on}``   the staff bound to
                                                                                       jurisdiction_code
``publication.changed``      publication_id, record_id, operator_id, status            record_published
                             (``published``/``unpublished``/``withdrawn``; dedupe      (published) or
                             ``publication.changed:{publication_id}:{status}``)        record_unpublished →
                                                                                       operator users
``case.assigned``            case_id, case_no, jurisdiction_code, due_on,              case_assigned → the
                             assignee_id (optional)                                    assignee, else the
                                                                                       staff bound to
                                                                                       jurisdiction_code
``case.overdue``             case_id, case_no, jurisdiction_code, due_on,              case_overdue → the
                             assignee_id (optional); dedupe                            assignee, else the
                             ``case.overdue:{case_id}:{due_on}``                       staff bound to
                                                                                       jurisdiction_code
``case.outcome``             case_id, case_no, complaint_id, jurisdiction_code,        complaint_outcome → the
                             outcome (``substantiated``/``not_substantiated``/         consumer; for a
                             ``mediated``/``not_accepted``/``terminated``)             supervisor's patrol
                                                                                       report
                                                                                       supervisor_report_outcome
                                                                                       → the supervisor; an
                                                                                       accepted complaint's
                                                                                       ``mediated`` or
                                                                                       ``terminated`` also
                                                                                       complaint_handling_ended
                                                                                       → operator users;
                                                                                       ``not_accepted``:
                                                                                       filing_rejected (with
                                                                                       the reason) → the filer
``case.progress``            case_id, complaint_id, case_no, step (``accepted``/       filing_accepted /
                             ``transferred``/``escalated``), jurisdiction_code,        filing_transferred /
                             due_on (escalated only)                                   filing_escalated → the
                                                                                       filer (consumer or
                                                                                       supervisor)
============================ ======================================================= ===================

The finding against the operator after a substantiated case is not sent from ``case.outcome``: it follows
from the verified bad records the case creates, told once for all of them (``finding.decided``, as for a
failed inspection); a record verified on its own is told through its ``record.changed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from backend.auth.models import Account, Role
from backend.cases.models import Case, CaseKind, CaseState
from backend.cases.service import HANDLED_BY_LABELS, REJECTION_LABELS, bureau_label
from backend.cases.service import case_no as case_number
from backend.complaints.models import Complaint, ComplaintSource
from backend.db import aware, utcnow
from backend.instruments.catalogue import BY_CODE
from backend.instruments.models import Instrument, InstrumentStatus
from backend.jurisdictions.models import Jurisdiction
from backend.operators import service as operators
from backend.operators.models import Operator
from backend.outbox.models import OutboxEvent
from backend.publication.models import PublicationStatus, RecordPublication
from backend.records.models import (
    CorrectionAction,
    CorrectionRequest,
    IntegrityRecord,
    IntegrityRecordVersion,
    RecordChange,
)
from backend.records.rules import BAD_KINDS, RecordKind, RecordState
from backend.records.service import bureau_today, local_date
from backend.supervision.models import Interview, InterviewKind, InterviewStatus
from notifications.policy import DueThreshold, InterviewReminder

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Localized:
    """A context value with a Chinese and an English wording; the recipient's locale picks one."""

    zh: str
    en: str


#: What a context may hold: instants are formatted in each recipient's own time zone, Localized by locale.
ContextValue = str | int | date | datetime | Localized


@dataclass(frozen=True, slots=True)
class Notice:
    """One message kind for some recipients (account ids) with the context its template needs."""

    recipients: tuple[int, ...]
    kind: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


Handler = Callable[[Session, OutboxEvent], list[Notice]]
HANDLERS: dict[str, Handler] = {}
#: Topics the sweeps emit by the thousand also have a handler for many events at once (one query for all
#: their instruments and operator users); ``HANDLERS`` has the one-event form of the same code.
BatchHandler = Callable[[Session, Sequence[OutboxEvent]], list[list[Notice]]]
BATCH_HANDLERS: dict[str, BatchHandler] = {}
#: Ids per ``IN (...)`` list.
_IN_CHUNK = 5000

_OPEN_INTERVIEW = frozenset({InterviewStatus.scheduled, InterviewStatus.acknowledged})
_COMPLAINT_OUTCOMES = frozenset(
    {"substantiated", "not_substantiated", "mediated", "not_accepted", "terminated"}
)
#: Outcomes that end a bureau's mediation of an accepted consumer complaint: Order No. 20 Art. 21 has the
#: decision told to both parties (within 7 working days; the notice goes out when it is taken).
_MEDIATION_ENDS = frozenset({"mediated", "terminated"})
_DECIDED = frozenset({CaseState.mediated, CaseState.closed})
_DUE_STEPS = frozenset({DueThreshold.DAYS_30, DueThreshold.DAYS_7, DueThreshold.DAYS_1})
#: The publication statuses whose change the public sees (what ``publication.changed`` is emitted for).
_PUBLIC_CHANGES = frozenset(
    s.value for s in (PublicationStatus.published, PublicationStatus.unpublished, PublicationStatus.withdrawn)
)
#: Why a withdrawn publication ended, by the record change that withdrew it (codes of ``publication_end``).
_WITHDRAWN_BY: Mapping[RecordChange, str] = {
    RecordChange.correct: "corrected",
    RecordChange.revoke: "revoked",
    RecordChange.dismiss: "dismissed",
}


def handles(topic: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``topic``."""

    def register(handler: Handler) -> Handler:
        HANDLERS[topic] = handler
        return handler

    return register


def handles_many(topic: str) -> Callable[[BatchHandler], BatchHandler]:
    """Register ``handler`` for batches of ``topic`` events, and its one-event form in ``HANDLERS``."""

    def register(handler: BatchHandler) -> BatchHandler:
        BATCH_HANDLERS[topic] = handler
        HANDLERS[topic] = lambda session, event: handler(session, [event])[0]
        return handler

    return register


def notices_for(session: Session, event: OutboxEvent) -> list[Notice]:
    """The notices an event makes (none for a topic nobody is notified about)."""
    handler = HANDLERS.get(event.topic)
    return handler(session, event) if handler is not None else []


# --- recipients --------------------------------------------------------------------------------------------


def operator_users(session: Session, operator_id: int) -> tuple[int, ...]:
    """The active user accounts of an operator."""
    return operators.active_user_ids(session, operator_id)


def staff_of(session: Session, jurisdiction_code: str) -> tuple[int, ...]:
    """The active staff accounts bound to exactly this jurisdiction."""
    return tuple(
        session.execute(
            select(col(Account.id))
            .where(
                col(Account.jurisdiction_code) == jurisdiction_code,
                col(Account.role) == Role.staff,
                col(Account.is_active),
            )
            .order_by(col(Account.id))
        ).scalars()
    )


def _assignee_or_staff(session: Session, payload: Mapping[str, Any]) -> tuple[int, ...]:
    assignee = payload.get("assignee_id")
    if assignee is not None:
        account = session.get(Account, int(assignee))
        if account is not None and account.is_active:
            return (account.id or 0,)
    return staff_of(session, str(payload["jurisdiction_code"]))


# --- helpers -----------------------------------------------------------------------------------------------


def _instrument_name(instrument: Instrument) -> Localized:
    spec = BY_CODE.get(instrument.type_code)
    zh, en = (spec.name_zh, spec.name_en) if spec else (instrument.type_code, instrument.type_code)
    return Localized(f"{zh}（出厂编号 {instrument.serial}）", f"{en} (serial {instrument.serial})")


def _bureau_of_operator(session: Session, operator_id: int) -> str:
    row = session.execute(
        select(col(Jurisdiction.bureau_name))
        .join(Operator, col(Operator.jurisdiction_code) == col(Jurisdiction.code))
        .where(col(Operator.id) == operator_id)
    ).first()
    return str(row[0]) if row is not None else "市场监督管理局"


def _case_bureau(session: Session, jurisdiction_code: str | None, operator_id: int) -> str:
    """The bureau where the case is (it may have been transferred away from the operator's county)."""
    where = session.get(Jurisdiction, jurisdiction_code) if jurisdiction_code else None
    return where.bureau_name if where is not None else _bureau_of_operator(session, operator_id)


# --- handlers ----------------------------------------------------------------------------------------------


def _instruments(session: Session, events: Sequence[OutboxEvent]) -> dict[int, Instrument]:
    """The instruments the events name, in one query per 5,000."""
    ids = sorted({int(e.payload["instrument_id"]) for e in events})
    found: dict[int, Instrument] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(Instrument).where(col(Instrument.id).in_(ids[start : start + _IN_CHUNK]))
        ).scalars()
        found.update({instrument.id or 0: instrument for instrument in rows})
    return found


def operator_users_of(session: Session, operator_ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
    """:func:`operator_users` for many operators, in one query per 5,000."""
    ids = sorted(set(operator_ids))
    found: dict[int, list[int]] = {i: [] for i in ids}
    for start in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(col(Account.operator_id), col(Account.id))
            .where(
                col(Account.operator_id).in_(ids[start : start + _IN_CHUNK]),
                col(Account.role) == Role.operator,
                col(Account.is_active),
            )
            .order_by(col(Account.id))
        ).all()
        for operator_id, account_id in rows:
            found[int(operator_id)].append(int(account_id))
    return {i: tuple(accounts) for i, accounts in found.items()}


def _still_current(instrument: Instrument | None, payload: Mapping[str, Any]) -> Instrument | None:
    """The instrument if it is still in use with the validity the event is about (else the event is stale)."""
    if instrument is None or instrument.status != InstrumentStatus.in_use:
        return None
    if instrument.valid_until is None or instrument.valid_until.isoformat() != str(payload["valid_until"]):
        return None
    return instrument


@handles_many("instrument.due")
def instrument_due_many(session: Session, events: Sequence[OutboxEvent]) -> list[list[Notice]]:
    """A verification falls due in 30, 7 or 1 days: remind the operator (a courtesy; mutable)."""
    steps = {t.value for t in _DUE_STEPS}
    valid = []
    for event in events:
        if event.payload.get("threshold") in steps:
            valid.append(event)
        else:
            log.error("instrument.due %s: unknown threshold %r", event.id, event.payload.get("threshold"))
    instruments = _instruments(session, valid)
    today = bureau_today()
    planned: list[tuple[Instrument, dict[str, ContextValue]] | None] = []
    for event in events:
        instrument = (
            _still_current(instruments.get(int(event.payload["instrument_id"])), event.payload)
            if event.payload.get("threshold") in steps
            else None
        )
        if instrument is None or instrument.valid_until is None:
            planned.append(None)
            continue
        days_left = (instrument.valid_until - today).days
        if days_left < 0:
            # Delivered after the validity ended: the overdue notice is the right one now, with its own event.
            planned.append(None)
            continue
        context: dict[str, ContextValue] = {
            "instrument_id": str(instrument.id),
            "instrument_name": _instrument_name(instrument),
            "valid_until": instrument.valid_until,
            "days_left": days_left,
        }
        planned.append((instrument, context))
    users = operator_users_of(session, (i.operator_id for i, _c in filter(None, planned)))
    return [
        [] if plan is None else [Notice(users[plan[0].operator_id], "verification_due", plan[1])]
        for plan in planned
    ]


@handles_many("instrument.overdue")
def instrument_overdue_many(session: Session, events: Sequence[OutboxEvent]) -> list[list[Notice]]:
    """An in-use instrument's verification ran out: tell the operator it must not be used (required)."""
    instruments = _instruments(session, events)
    planned: list[tuple[Instrument, dict[str, ContextValue]] | None] = []
    for event in events:
        instrument = _still_current(instruments.get(int(event.payload["instrument_id"])), event.payload)
        if instrument is None or instrument.valid_until is None:
            planned.append(None)
            continue
        context: dict[str, ContextValue] = {
            "instrument_id": str(instrument.id),
            "instrument_name": _instrument_name(instrument),
            "valid_until": instrument.valid_until,
        }
        planned.append((instrument, context))
    users = operator_users_of(session, (i.operator_id for i, _c in filter(None, planned)))
    return [
        [] if plan is None else [Notice(users[plan[0].operator_id], "verification_overdue", plan[1])]
        for plan in planned
    ]


@handles("complaint.created")
def complaint_created(session: Session, event: OutboxEvent) -> list[Notice]:
    """Acknowledge a consumer's complaint to the consumer who filed it."""
    complaint = session.get(Complaint, int(event.payload["complaint_id"]))
    # A supervisor's patrol report is not a complaint to acknowledge; its outcome is notified instead.
    if complaint is None or complaint.source != ComplaintSource.consumer:
        return []
    context: dict[str, ContextValue] = {
        "complaint_ref": str(complaint.id),
        # The number its case will carry (it is made from the receipt), not the internal id.
        "case_no": case_number(CaseKind.complaint, complaint.created_at, complaint.id or 0),
        "received_on": local_date(complaint.created_at),
    }
    return [Notice((complaint.account_id,), "complaint_received", context)]


@handles("record.changed")
def record_changed(session: Session, event: OutboxEvent) -> list[Notice]:
    """A bad record became verified (created verified, or confirmed): notify the operator of the finding."""
    payload = event.payload
    version = session.execute(
        select(IntegrityRecordVersion).where(
            col(IntegrityRecordVersion.record_id) == int(payload["record_id"]),
            col(IntegrityRecordVersion.version) == int(payload["version"]),
        )
    ).scalar_one_or_none()
    if payload.get("notice") is False:
        return []  # one of a decision's findings: finding.decided tells the operator of them all at once
    if version is None or version.change not in (RecordChange.create, RecordChange.verify):
        # Corrections and revocations of a finding are answered by correction_decided, not a new finding.
        return []
    snap = version.snapshot
    if snap.get("state") != RecordState.VERIFIED.value or snap.get("kind") not in {
        k.value for k in BAD_KINDS
    }:
        return []
    operator_id = int(payload["operator_id"])
    context: dict[str, ContextValue] = {
        "finding_id": str(version.record_id),
        "bureau_name": _bureau_of_operator(session, operator_id),
        "record_kind": RecordKind(snap["kind"]).value,
        "decided_on": local_date(version.at),
    }
    return [Notice(operator_users(session, operator_id), "finding_against_operator", context)]


@handles("rating.changed")
def rating_changed(session: Session, event: OutboxEvent) -> list[Notice]:
    """An operator's integrity class changed (Art. 10/11): tell the operator, with the new class."""
    payload = event.payload
    operator_id = int(payload["operator_id"])
    context: dict[str, ContextValue] = {
        "operator_id": str(operator_id),
        "old_class": str(payload["from"]),
        "new_class": str(payload["to"]),
        "effective_on": date.fromisoformat(str(payload["as_of"])),
    }
    return [Notice(operator_users(session, operator_id), "rating_changed", context)]


def _open_interview(session: Session, interview_id: int) -> Interview | None:
    interview = session.get(Interview, interview_id)
    if (
        interview is None
        or interview.kind != InterviewKind.interview
        or interview.status not in _OPEN_INTERVIEW
        or interview.scheduled_at is None
    ):
        return None
    return interview


def _interviewing_bureau(session: Session, interview: Interview) -> str:
    """The bureau of the staff member who scheduled it, else the operator's county bureau."""
    if interview.created_by_id is not None:
        row = session.execute(
            select(col(Jurisdiction.bureau_name))
            .join(Account, col(Account.jurisdiction_code) == col(Jurisdiction.code))
            .where(col(Account.id) == interview.created_by_id)
        ).first()
        if row is not None:
            return str(row[0])
    return _bureau_of_operator(session, interview.operator_id)


@handles("interview.scheduled")
def interview_scheduled(session: Session, event: OutboxEvent) -> list[Notice]:
    """Summon the operator to an interview (约谈), or deliver a written reminder (提醒); Art. 12(2)."""
    interview_id = int(event.payload["interview_id"])
    reminder = session.get(Interview, interview_id)
    if (
        reminder is not None
        and reminder.kind == InterviewKind.reminder
        and reminder.status in _OPEN_INTERVIEW
    ):
        # A reminder has no time or place: the operator reads it in the app and acknowledges it.
        notice: dict[str, ContextValue] = {
            "interview_id": str(reminder.id),
            "bureau_name": _interviewing_bureau(session, reminder),
        }
        return [Notice(operator_users(session, reminder.operator_id), "reminder_notice", notice)]
    interview = _open_interview(session, interview_id)
    if interview is None or interview.scheduled_at is None:
        return []
    context: dict[str, ContextValue] = {
        "interview_id": str(interview.id),
        "bureau_name": _interviewing_bureau(session, interview),
        "scheduled_at": aware(interview.scheduled_at),
        "place": interview.place,
    }
    return [Notice(operator_users(session, interview.operator_id), "interview_scheduled", context)]


@handles("interview.reminder")
def interview_reminder(session: Session, event: OutboxEvent) -> list[Notice]:
    """Remind the operator 24 h and 1 h before an interview that is still on at the time the event names."""
    payload = event.payload
    interview = _open_interview(session, int(payload["interview_id"]))
    if interview is None or interview.scheduled_at is None:
        return []
    scheduled_at = aware(interview.scheduled_at)
    if scheduled_at != datetime.fromisoformat(str(payload["scheduled_at"])) or scheduled_at <= utcnow():
        # Moved since the reminder was planned (the new time has its own reminders), or already begun.
        return []
    context: dict[str, ContextValue] = {
        "interview_id": str(interview.id),
        "scheduled_at": scheduled_at,
        "place": interview.place,
        "lead": InterviewReminder(str(payload["reminder"])).value,
    }
    return [Notice(operator_users(session, interview.operator_id), "interview_reminder", context)]


@handles("interview.cancelled")
def interview_cancelled(session: Session, event: OutboxEvent) -> list[Notice]:
    """Tell the operator a summons no longer stands (a cancelled written reminder needs no notice)."""
    interview = session.get(Interview, int(event.payload["interview_id"]))
    if (
        interview is None
        or interview.kind != InterviewKind.interview
        or interview.status != InterviewStatus.cancelled
        or interview.scheduled_at is None
    ):
        return []
    # The staff's reason stays in the app: free text has no place in a lock-screen notification.
    context: dict[str, ContextValue] = {
        "interview_id": str(interview.id),
        "bureau_name": _interviewing_bureau(session, interview),
        "scheduled_at": aware(interview.scheduled_at),
    }
    return [Notice(operator_users(session, interview.operator_id), "interview_cancelled", context)]


@handles("correction.requested")
def correction_requested(session: Session, event: OutboxEvent) -> list[Notice]:
    """Tell the operator's bureau that an Art. 22 correction request waits for its decision."""
    row = session.get(CorrectionRequest, int(event.payload["correction_id"]))
    if row is None or row.decided_at is not None:
        return []
    operator = session.get(Operator, row.operator_id)
    if operator is None:
        return []
    context: dict[str, ContextValue] = {
        "correction_id": str(row.id),
        "operator_name": operator.name,
        "due_on": row.due_on,
    }
    return [Notice(staff_of(session, operator.jurisdiction_code), "correction_requested", context)]


@handles("correction.decided")
def correction_decided(session: Session, event: OutboxEvent) -> list[Notice]:
    """Answer an operator's correction request (Art. 22): granted, partly granted or refused."""
    row = session.get(CorrectionRequest, int(event.payload["correction_id"]))
    if row is None or row.decided_at is None:
        return []
    decision = str(event.payload["decision"])
    if decision == "reject":
        outcome = "rejected"
    else:
        # Granted as asked, or granted the other way (asked to revoke, corrected instead): partly granted.
        asked = "revoke" if row.action == CorrectionAction.revoke else "correct"
        outcome = "approved" if decision == asked else "partially_approved"
    context: dict[str, ContextValue] = {
        "correction_id": str(row.id),
        "decision": outcome,
        "decided_on": local_date(row.decided_at),
    }
    return [Notice(operator_users(session, row.operator_id), "correction_decided", context)]


def _version(session: Session, record_id: int, version: int) -> IntegrityRecordVersion | None:
    return session.execute(
        select(IntegrityRecordVersion).where(
            col(IntegrityRecordVersion.record_id) == record_id,
            col(IntegrityRecordVersion.version) == version,
        )
    ).scalar_one_or_none()


@handles("publication.changed")
def publication_changed(session: Session, event: OutboxEvent) -> list[Notice]:
    """A record about the operator became public, or stopped being public (Art. 19); Art. 22 stays open."""
    status = str(event.payload["status"])
    if status not in _PUBLIC_CHANGES:
        log.error("publication.changed %s: unexpected status %r", event.id, status)
        return []
    publication = session.get(RecordPublication, int(event.payload["publication_id"]))
    # Published, then taken down before this was handled: "it is public" would be wrong now, and the
    # take-down has its own event. An ended publication never changes again, so its notice always stands.
    if publication is None or publication.status.value != status:
        return []
    recipients = operator_users(session, publication.operator_id)
    if not recipients:
        return []
    # Name the record as the public saw it: the reviewed version, not what a correction made of it since.
    reviewed = _version(session, publication.record_id, publication.record_version)
    if reviewed is not None:
        kind = RecordKind(reviewed.snapshot["kind"])
        fact_date = date.fromisoformat(str(reviewed.snapshot["fact_date"]))
    else:
        record = session.get(IntegrityRecord, publication.record_id)
        if record is None:
            return []
        kind, fact_date = record.kind, record.fact_date
    # Only the record's kind and date, which the public saw: no summary, evidence, source reference, staff
    # reason or reviewer, and nothing about the complaint behind it (Art. 18).
    context: dict[str, ContextValue] = {
        "record_id": str(publication.record_id),
        "record_kind": kind.value,
        "fact_date": fact_date,
        "bureau_name": _bureau_of_operator(session, publication.operator_id),
    }
    if publication.status is PublicationStatus.published:
        return [Notice(recipients, "record_published", context)]
    if publication.status is PublicationStatus.unpublished:
        context["cause"] = "unpublished"
    else:
        # Any change after the reviewed version withdraws the publication, so the next version says which.
        change = _version(session, publication.record_id, publication.record_version + 1)
        context["cause"] = _WITHDRAWN_BY.get(change.change, "changed") if change else "changed"
    return [Notice(recipients, "record_unpublished", context)]


def _case_context(payload: Mapping[str, Any]) -> dict[str, ContextValue]:
    return {
        "case_id": str(int(payload["case_id"])),
        "case_no": str(payload["case_no"]),
        "due_on": date.fromisoformat(str(payload["due_on"])),
    }


@handles("case.assigned")
def case_assigned(session: Session, event: OutboxEvent) -> list[Notice]:
    """A case reached a bureau: tell the assignee, or every staff member bound to that jurisdiction."""
    payload = event.payload
    return [Notice(_assignee_or_staff(session, payload), "case_assigned", _case_context(payload))]


@handles("case.overdue")
def case_overdue(session: Session, event: OutboxEvent) -> list[Notice]:
    """A case passed its statutory deadline: tell the assignee, or the staff of the jurisdiction named."""
    payload = event.payload
    return [Notice(_assignee_or_staff(session, payload), "case_overdue", _case_context(payload))]


@handles("correction.overdue")
def correction_overdue(session: Session, event: OutboxEvent) -> list[Notice]:
    """A correction request (Art. 22) was not decided in time: tell the staff of the jurisdiction named."""
    payload = event.payload
    row = session.get(CorrectionRequest, int(payload["correction_id"]))
    if row is None or row.decided_at is not None:
        return []  # decided since: the notice would be wrong, not merely late
    context: dict[str, ContextValue] = {
        "correction_id": str(row.id),
        "due_on": date.fromisoformat(str(payload["due_on"])),
    }
    return [Notice(staff_of(session, str(payload["jurisdiction_code"])), "correction_overdue", context)]


@handles("case.outcome")
def case_outcome(session: Session, event: OutboxEvent) -> list[Notice]:
    """A case about a complaint concluded: tell the consumer, or the supervisor whose report it was."""
    payload = event.payload
    outcome = str(payload["outcome"])
    if outcome not in _COMPLAINT_OUTCOMES:
        log.error("case.outcome %s: unknown outcome %r", event.id, outcome)
        return []
    complaint = session.get(Complaint, int(payload["complaint_id"]))
    if complaint is None:
        return []
    if outcome == "not_accepted":
        return _rejected(session, complaint, session.get(Case, int(payload["case_id"])))
    case_no = str(payload["case_no"])
    if complaint.source == ComplaintSource.supervisor:
        # A patrol report is adopted when the case found what it reported.
        report: dict[str, ContextValue] = {
            "report_id": str(complaint.id),
            "case_no": case_no,
            "outcome": "adopted" if outcome == "substantiated" else "not_adopted",
        }
        return [Notice((complaint.account_id,), "supervisor_report_outcome", report)]
    context: dict[str, ContextValue] = {
        "complaint_ref": str(complaint.id),
        "case_no": case_no,
        "outcome": outcome,
    }
    told = [Notice((complaint.account_id,), "complaint_outcome", context)]
    if outcome in _MEDIATION_ENDS:
        told.extend(_mediation_ended(session, int(payload["case_id"]), outcome))
    return told


def _mediation_ended(session: Session, case_id: int, outcome: str) -> list[Notice]:
    """The operator's side of the end of mediation: the bureau's case number, the outcome and the date."""
    case = session.get(Case, case_id)
    # Mediation runs between acceptance and a decision; a case reopened since has no outcome to tell.
    if (
        case is None
        or case.state not in _DECIDED
        or case.kind is not CaseKind.complaint
        or case.accepted_at is None
        or case.operator_id is None
        or case.outcome is None
        or case.outcome.value != outcome
        or case.decided_at is None
    ):
        return []
    recipients = operator_users(session, case.operator_id)
    if not recipients:
        return []
    # Nothing from the complaint itself (who filed it, what they wrote, the mediation agreement): Art. 18.
    context: dict[str, ContextValue] = {
        "case_no": case.case_no,
        "outcome": outcome,
        "bureau_name": _case_bureau(session, case.jurisdiction_code, case.operator_id),
        "decided_on": local_date(case.decided_at),
    }
    return [Notice(recipients, "complaint_handling_ended", context)]


def _filing(complaint: Complaint, case_no: str) -> dict[str, ContextValue]:
    """What every notice to a filer starts from: the case number they read, and what they filed."""
    return {
        "complaint_ref": str(complaint.id),
        "case_no": case_no,
        "filing": "report" if complaint.source == ComplaintSource.supervisor else "complaint",
    }


def _bureau(session: Session, jurisdiction_code: str | None) -> Localized:
    return Localized(*bureau_label(session, jurisdiction_code))


def _rejected(session: Session, complaint: Complaint, case: Case | None) -> list[Notice]:
    """The decision not to accept, with the listed reason (Order No. 20), to whoever filed."""
    # Reopened for acceptance before this was handled: the refusal no longer stands, the new decision is told.
    if case is None or case.state is not CaseState.not_accepted or case.rejection_reason is None:
        return []
    zh, en = REJECTION_LABELS[case.rejection_reason]
    if case.handled_by is not None:
        by_zh, by_en = HANDLED_BY_LABELS[case.handled_by]
        zh, en = f"已由{by_zh}受理或处理", f"already accepted or handled by {by_en}"
    context = _filing(complaint, case.case_no)
    context["bureau_name"] = _bureau(session, case.jurisdiction_code)
    context["reason"] = Localized(zh, en)
    return [Notice((complaint.account_id,), "filing_rejected", context)]


_PROGRESS_KINDS: Mapping[str, str] = {
    "accepted": "filing_accepted",
    "transferred": "filing_transferred",
    "escalated": "filing_escalated",
}


@handles("case.progress")
def case_progress(session: Session, event: OutboxEvent) -> list[Notice]:
    """A step the filer was promised (accepted, transferred, escalated): tell the consumer or supervisor."""
    payload = event.payload
    kind = _PROGRESS_KINDS.get(str(payload["step"]))
    if kind is None:
        log.error("case.progress %s: unknown step %r", event.id, payload["step"])
        return []
    complaint = session.get(Complaint, int(payload["complaint_id"]))
    if complaint is None:
        return []
    code = payload.get("jurisdiction_code")
    context = _filing(complaint, str(payload["case_no"]))
    context["bureau_name"] = _bureau(session, str(code) if code else None)
    if kind == "filing_escalated":
        context["due_on"] = date.fromisoformat(str(payload["due_on"]))
    return [Notice((complaint.account_id,), kind, context)]


@handles("finding.decided")
def finding_decided(session: Session, event: OutboxEvent) -> list[Notice]:
    """One decision's findings (a substantiated case, a failed inspection): one notice, every kind named."""
    payload = event.payload
    ids = [int(i) for i in payload["record_ids"]]
    rows = session.execute(
        select(IntegrityRecord).where(col(IntegrityRecord.id).in_(ids)).order_by(col(IntegrityRecord.id))
    ).scalars()
    bad = {k.value for k in BAD_KINDS}
    # Only what still stands: a finding revoked before this was handled is not announced.
    standing = [r for r in rows if r.state is RecordState.VERIFIED and r.kind.value in bad]
    if not standing:
        return []
    operator_id = int(payload["operator_id"])
    kinds = list(dict.fromkeys(r.kind.value for r in standing))
    code = payload.get("jurisdiction_code")
    context: dict[str, ContextValue] = {
        "finding_id": str(standing[0].id),
        "bureau_name": _case_bureau(session, str(code) if code else None, operator_id),
        "record_kinds": ",".join(kinds),
        "decided_on": date.fromisoformat(str(payload["decided_on"])),
    }
    return [Notice(operator_users(session, operator_id), "findings_against_operator", context)]
