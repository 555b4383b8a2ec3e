"""The catalogue of outbox topics and their payloads: what a producer may emit and a consumer may expect.

Every topic here has a consumer (a task in ``relay.TOPIC_TASKS`` or a notice handler), which a test checks.
Payloads hold ids and plain values only (ids integers, dates ``YYYY-MM-DD``, instants ISO 8601 with offset);
a task reloads what it needs by id. Producers emit exactly these keys.
"""

from typing import Literal, NotRequired, TypedDict, get_args

#: Every topic a producer may emit (``emit``'s and ``emit_many``'s ``topic``; mypy refuses any other).
Topic = Literal[
    "instrument.due",
    "instrument.overdue",
    "complaint.created",
    "record.changed",
    "operator.rating_inputs_changed",
    "rating.changed",
    "interview.scheduled",
    "interview.reminder",
    "interview.cancelled",
    "correction.requested",
    "correction.decided",
    "correction.overdue",
    "publication.changed",
    "case.assigned",
    "case.overdue",
    "case.outcome",
    "case.progress",
    "finding.decided",
    "intake.job_submitted",
]


class InstrumentDue(TypedDict):
    """A verification falls due in 30, 7 or 1 days (the reminder sweep)."""

    instrument_id: int
    operator_id: int
    valid_until: str
    threshold: str
    as_of: str


class InstrumentOverdue(TypedDict):
    """An instrument in use is past its verification (Art. 13(3))."""

    instrument_id: int
    operator_id: int
    valid_until: str


class ComplaintCreated(TypedDict):
    """A complaint was filed: its photos are processed and it is routed."""

    complaint_id: int
    photo_ids: list[int]


class RecordChanged(TypedDict):
    """An integrity record got a new version: the operator is re-rated (and told of a verified finding)."""

    record_id: int
    operator_id: int
    version: int


class RatingInputsChanged(TypedDict):
    """Something the rating reads other than a record changed (the management assessment)."""

    operator_id: int
    trigger: str
    management_assessment: str


#: An operator's integrity class changed (functional form: ``from`` is a Python keyword).
RatingChanged = TypedDict(
    "RatingChanged", {"operator_id": int, "change_id": int, "from": str, "to": str, "as_of": str}
)


class InterviewChanged(TypedDict):
    """An interview (约谈) or written reminder (提醒) was scheduled or cancelled."""

    interview_id: int
    operator_id: int
    kind: str


class InterviewReminder(TypedDict):
    """An interview starts in 24 hours or 1 hour (the reminder sweep)."""

    interview_id: int
    operator_id: int
    scheduled_at: str
    reminder: str


class CorrectionRequested(TypedDict):
    """An operator asked for a correction (Art. 22): its bureau decides within the deadline. ``record_id`` is
    None for a correction of basic information or instrument data."""

    correction_id: int
    record_id: int | None
    operator_id: int


class CorrectionDecided(TypedDict):
    """A correction request was decided (``correct``/``revoke``/``reject``)."""

    correction_id: int
    record_id: int | None
    operator_id: int
    decision: str


class CorrectionOverdue(TypedDict):
    """A correction request ran past its decision deadline: the escalation bureau's staff are told."""

    correction_id: int
    operator_id: int
    jurisdiction_code: str
    due_on: str


class PublicationChanged(TypedDict):
    """A record's publication was published, unpublished or withdrawn."""

    publication_id: int
    record_id: int
    operator_id: int
    status: str


class CaseDue(TypedDict):
    """A case was assigned, or ran past its statutory deadline."""

    case_id: int
    case_no: str
    jurisdiction_code: str
    due_on: str
    assignee_id: NotRequired[int]


class CaseOutcome(TypedDict):
    """A case step decided the complaint's outcome."""

    case_id: int
    case_no: str
    complaint_id: int | None
    jurisdiction_code: str
    outcome: str


class CaseProgress(TypedDict):
    """A step the filer was promised: ``accepted``, ``transferred`` or ``escalated`` (with the missed ``due_on``)."""

    case_id: int
    complaint_id: int | None
    case_no: str
    step: str
    jurisdiction_code: str | None
    due_on: NotRequired[str]


class FindingDecided(TypedDict):
    """One decision's verified findings about an operator: one notice to it, however many record kinds."""

    operator_id: int
    record_ids: list[int]
    jurisdiction_code: str | None
    decided_on: str


class IntakeJobSubmitted(TypedDict):
    """An institution's CSV upload waits to be run."""

    job_id: int


#: Each topic's payload.
PAYLOADS: dict[Topic, type] = {
    "instrument.due": InstrumentDue,
    "instrument.overdue": InstrumentOverdue,
    "complaint.created": ComplaintCreated,
    "record.changed": RecordChanged,
    "operator.rating_inputs_changed": RatingInputsChanged,
    "rating.changed": RatingChanged,
    "interview.scheduled": InterviewChanged,
    "interview.reminder": InterviewReminder,
    "interview.cancelled": InterviewChanged,
    "correction.requested": CorrectionRequested,
    "correction.decided": CorrectionDecided,
    "correction.overdue": CorrectionOverdue,
    "publication.changed": PublicationChanged,
    "case.assigned": CaseDue,
    "case.overdue": CaseDue,
    "case.outcome": CaseOutcome,
    "case.progress": CaseProgress,
    "finding.decided": FindingDecided,
    "intake.job_submitted": IntakeJobSubmitted,
}

#: The topic names, for checks at run time.
TOPICS: frozenset[str] = frozenset(get_args(Topic))
