"""The workbench's review queues (``/workbench/reviews``): reported records to verify or dismiss, correction
requests to decide, publication requests (four eyes) and the intake jobs of the institutions and associations
in scope with their live progress and error reports.

Every list is the staff API's own scoped query, audited as the API audits it; every action parses its form into
the API's body schema and calls the same domain service (``records.service``, ``records.corrections``,
``publication.service``), showing a refusal next to the form it came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeVar

from fastapi import APIRouter, Form, Request, Response
from pydantic import BaseModel
from sqlmodel import Session, SQLModel, col, select

from backend import audit
from backend.common.scoped import load_scoped
from backend.db import SessionDep
from backend.i18n import Locale
from backend.intake import jobs
from backend.intake.models import IntakeJob, JobKind, JobState
from backend.operators.models import Operator
from backend.public.labels import pick
from backend.publication import service as publication
from backend.publication.models import PublicationStatus
from backend.publication.schemas import PublicationApprove, PublicationReason, PublicationRequest
from backend.records import corrections
from backend.records import service as records
from backend.records.models import CorrectionRequest, CorrectionStatus, CorrectionSubject, IntegrityRecord
from backend.records.models import RecordSource as Source
from backend.records.rules import INSTRUMENT_KINDS, RecordKind, RecordState
from backend.records.schemas import CorrectionDecide, RecordReason, RecordVerify
from backend.records.service import RECORD
from backend.workbench import auth, render
from backend.workbench.common import (
    Again,
    action_target,
    request_id,
    shown_done,
    signed_in,
    take_step,
    viewed,
)
from backend.workbench.router import _case_page, _load_case

router = APIRouter(prefix="/workbench", include_in_schema=False)
M = TypeVar("M", bound=SQLModel)

#: Records others report (Art. 15-17) that count only once staff have verified them (Art. 13).
REPORTED_SOURCES: Final = (Source.institution, Source.association, Source.supervisor)
#: How many rows a review page shows (the oldest first where they have a deadline).
PAGE_SIZE: Final = 50
#: How often the progress script asks again while a job runs (milliseconds; shown in the page's data).
POLL_MS: Final = 2000


@dataclass(frozen=True)
class Queue:
    """A review queue's page: its template, the steps its forms take, and what it lists (an audited read)."""

    template: str
    steps: Collection[str]
    rows: Callable[[Request, Session, auth.SignedIn], dict[str, Any]]


def _queue_page(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    locale: Locale,
    queue: Queue,
    *,
    status_code: int = 200,
    failed: int | None = None,
    error: str | None = None,
) -> Response:
    """The queue's page, with a refused action's message next to row ``failed`` or the step just taken."""
    shown = {
        "me": me,
        **queue.rows(request, session, me),
        "failed": failed,
        "error": error,
        "done": shown_done(request, queue.steps),
    }
    return render.page(request, queue.template, shown, locale=locale, status_code=status_code)


def _show(request: Request, session: Session, queue: Queue) -> Response:
    """A review queue's page for the signed-in user (else the sign-in redirect)."""
    me = signed_in(session, request)
    if isinstance(me, Response):
        return me
    return _queue_page(request, session, me, render.locale_of(request), queue)


def _action_target(
    request: Request, session: Session, csrf: str, model: type[M], row_id: int, what: tuple[str, str]
) -> tuple[auth.SignedIn, M, Locale] | Response:
    """The row an action is about, reached through its operator's jurisdiction (``common.action_target``)."""
    return action_target(
        request, session, csrf, lambda me: load_scoped(session, me.scope, model, row_id, what, via="operator")
    )


def _one_message(show: Callable[[int, str | None], Response]) -> Again:
    """A refusal shown as one message: the form's first field error, or the domain error's own."""

    def again(
        *, status_code: int, error: str | None = None, field_errors: list[tuple[str, str]] | None = None
    ) -> Response:
        return show(status_code, field_errors[0][1] if field_errors else error)

    return again


def _in_queue(
    request: Request, session: Session, me: auth.SignedIn, locale: Locale, queue: Queue, failed: int
) -> Again:
    """The queue's page again, with the refusal next to row ``failed``."""
    return _one_message(
        lambda status_code, error: _queue_page(
            request, session, me, locale, queue, status_code=status_code, failed=failed, error=error
        )
    )


def _flag(raw: str) -> bool | None:
    return {"1": True, "0": False}.get(raw)


# ---- the landing page -------------------------------------------------------------------------------------


@router.get("/reviews")
def reviews_home(request: Request, session: SessionDep) -> Response:
    """Each review queue with how many items wait in it (counts only: no record is shown, so nothing is read)."""
    me = signed_in(session, request)
    if isinstance(me, Response):
        return me
    flt = records.RecordFilter(state=RecordState.REPORTED, sources=REPORTED_SOURCES)
    _r, reported = records.list_in_scope(session, me.scope, flt, limit=0, offset=0)
    _c, pending = corrections.list_in_scope(
        session, me.scope, status=CorrectionStatus.pending, overdue=None, limit=0, offset=0
    )
    _l, late = corrections.list_in_scope(
        session, me.scope, status=CorrectionStatus.pending, overdue=True, limit=0, offset=0
    )
    _p, publishing = publication.queue(
        session, me.scope, status=PublicationStatus.pending, operator_id=None, limit=0, offset=0
    )
    _j, intake = jobs.list_in_scope(session, me.scope, limit=0, offset=0)
    return render.page(
        request,
        "reviews_home.html",
        {
            "me": me,
            "queues": [
                ("/workbench/reviews/records", "rq_records", "rq_records_hint", reported, 0),
                ("/workbench/reviews/corrections", "rq_corrections", "rq_corrections_hint", pending, late),
                ("/workbench/reviews/publication", "rq_publication", "rq_publication_hint", publishing, 0),
                ("/workbench/reviews/intake", "rq_intake", "rq_intake_hint", intake, 0),
            ],
        },
        locale=render.locale_of(request),
    )


# ---- reported records: verify or dismiss ------------------------------------------------------------------


def _operator_names(session: Session, ids: set[int]) -> dict[int, str]:
    rows = session.execute(
        select(col(Operator.id), col(Operator.name)).where(col(Operator.id).in_(ids or {0}))
    )
    return {i: n for i, n in rows.all()}


def _records_rows(request: Request, session: Session, me: auth.SignedIn) -> dict[str, Any]:
    """The reported records waiting for verification, read as GET /api/v1/records reads them."""
    flt = records.RecordFilter(state=RecordState.REPORTED, sources=REPORTED_SOURCES)
    rows, total = records.list_in_scope(session, me.scope, flt, limit=PAGE_SIZE, offset=0)
    # The same audited read as GET /api/v1/records: which records this reviewer was shown.
    audit.service.record_read(
        session,
        actor=me.scope.user,
        action="record.list",
        entity_type="integrity_record",
        entity_id="*",
        after={
            "filters": {"state": RecordState.REPORTED, "sources": list(REPORTED_SOURCES)},
            "record_ids": [r.id for r in rows],
        },
        request_id=request_id(request),
    )
    return {
        "rows": rows,
        "total": total,
        "names": _operator_names(session, {r.operator_id for r in rows}),
        # Only the findings a record's kind can carry are asked for (records.service.check_findings).
        "instrument_kinds": INSTRUMENT_KINDS,
        "accident_kind": RecordKind.METROLOGY_ACCIDENT,
    }


RECORD_STEPS: Final[dict[str, type[BaseModel]]] = {"verify": RecordVerify, "dismiss": RecordReason}
RECORDS: Final = Queue("review_records.html", RECORD_STEPS, _records_rows)


@router.get("/reviews/records")
def reported_records(request: Request, session: SessionDep) -> Response:
    """Records reported by institutions, associations and supervisors that wait for verification."""
    return _show(request, session, RECORDS)


@router.post("/records/{record_id}/{step}")
def record_step(
    request: Request,
    session: SessionDep,
    record_id: int,
    step: Literal["verify", "dismiss"],
    csrf: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    instrument_still_in_use: Annotated[str, Form(max_length=2)] = "",
    social_impact: Annotated[str, Form(max_length=2)] = "",
) -> Response:
    """Verify or dismiss a reported record through ``records.service``, as POST /records/{id}/verify|dismiss."""
    target = _action_target(request, session, csrf, IntegrityRecord, record_id, RECORD)
    if isinstance(target, Response):
        return target
    me, record, locale = target
    fields = {
        "reason": reason,
        "instrument_still_in_use": _flag(instrument_still_in_use),
        "social_impact": _flag(social_impact),
    }

    def take(body: Any) -> None:
        if step == "verify":
            records.verify(
                session,
                record,
                actor=me.scope.user,
                reason=body.reason,
                instrument_still_in_use=body.instrument_still_in_use,
                social_impact=body.social_impact,
            )
        else:
            records.dismiss(session, record, actor=me.scope.user, reason=body.reason)

    return take_step(
        session,
        locale,
        RECORD_STEPS[step],
        fields,
        take,
        again=_in_queue(request, session, me, locale, RECORDS, record_id),
        done_url=f"/workbench/reviews/records?done={step}",
    )


# ---- correction requests ----------------------------------------------------------------------------------


def _corrections_rows(request: Request, session: Session, me: auth.SignedIn) -> dict[str, Any]:
    """The pending correction requests with the records they dispute, read as GET /api/v1/corrections reads them."""
    rows, total = corrections.list_in_scope(
        session, me.scope, status=CorrectionStatus.pending, overdue=None, limit=PAGE_SIZE, offset=0
    )
    # The same audited read as GET /api/v1/corrections.
    audit.service.record_read(
        session,
        actor=me.scope.user,
        action="correction.list",
        entity_type="correction_request",
        entity_id="*",
        after={
            "filters": {"status": CorrectionStatus.pending, "overdue": None},
            "correction_ids": [r.id for r in rows],
        },
        request_id=request_id(request),
    )
    record_ids = [r.record_id for r in rows if r.record_id is not None]
    disputed = {
        r.id: r
        for r in session.exec(select(IntegrityRecord).where(col(IntegrityRecord.id).in_(record_ids or [0])))
    }
    return {
        "rows": [(r, disputed.get(r.record_id or 0), corrections.is_overdue(r)) for r in rows],
        "total": total,
        "names": _operator_names(session, {r.operator_id for r in rows}),
        "record_subject": CorrectionSubject.record,
    }


CORRECTIONS: Final = Queue("review_corrections.html", {"decide"}, _corrections_rows)


@router.get("/reviews/corrections")
def correction_requests(request: Request, session: SessionDep) -> Response:
    """Operators' pending correction requests (Art. 22), the earliest due first."""
    return _show(request, session, CORRECTIONS)


@router.post("/corrections/{correction_id}/decide")
def correction_decide(
    request: Request,
    session: SessionDep,
    correction_id: int,
    csrf: Annotated[str, Form(max_length=64)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
    reasons: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Correct, revoke or reject through ``records.corrections.decide``, as POST /corrections/{id}/decide (the
    changes are those the operator asked for)."""
    target = _action_target(request, session, csrf, CorrectionRequest, correction_id, corrections.CORRECTION)
    if isinstance(target, Response):
        return target
    me, row, locale = target
    return take_step(
        session,
        locale,
        CorrectionDecide,
        {"decision": decision, "reasons": reasons},
        lambda body: corrections.decide(session, row=row, data=body, actor=me.scope.user),
        again=_in_queue(request, session, me, locale, CORRECTIONS, correction_id),
        done_url="/workbench/reviews/corrections?done=decide",
    )


# ---- publication review (four eyes) -----------------------------------------------------------------------


def _publication_rows(request: Request, session: Session, me: auth.SignedIn) -> dict[str, Any]:
    """The pending publication requests, read as GET /api/v1/publishing/queue reads them."""
    rows, total = publication.queue(
        session, me.scope, status=PublicationStatus.pending, operator_id=None, limit=100, offset=0
    )
    # The same audit entry as GET /api/v1/publishing/queue: which requests this reviewer was shown.
    audit.service.record(
        session,
        actor=me.scope.user,
        action="publication.list",
        entity_type=publication.ENTITY,
        entity_id="*",
        after={
            "filters": {"status": PublicationStatus.pending, "operator_id": None},
            "publication_ids": [r.publication.id for r in rows],
        },
        request_id=request_id(request),
    )
    return {"rows": rows, "total": total}


PUBLICATION_STEPS: Final[dict[str, type[BaseModel]]] = {
    "request": PublicationRequest,
    "approve": PublicationApprove,
    "refuse": PublicationReason,
}
PUBLICATIONS: Final = Queue("reviews.html", PUBLICATION_STEPS, _publication_rows)


@router.get("/reviews/publication")
def publication_reviews(request: Request, session: SessionDep) -> Response:
    """Pending publication requests in scope; approval is offered only to a second pair of eyes."""
    return _show(request, session, PUBLICATIONS)


@router.post("/records/{record_id}/publication/{step}")
def publication_step(
    request: Request,
    session: SessionDep,
    record_id: int,
    step: Literal["request", "approve", "refuse"],
    csrf: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    no_state_or_trade_secret: Annotated[str, Form(max_length=8)] = "",
    no_personal_data: Annotated[str, Form(max_length=8)] = "",
    no_undisclosed_information_of_other_organs: Annotated[str, Form(max_length=8)] = "",
    case_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Request, approve or refuse a record's publication through ``backend.publication.service``."""
    target = _action_target(request, session, csrf, IntegrityRecord, record_id, RECORD)
    if isinstance(target, Response):
        return target
    me, record, locale = target
    fields = {
        "note": note,
        "reason": reason,
        "no_state_or_trade_secret": "true" if no_state_or_trade_secret else "",
        "no_personal_data": "true" if no_personal_data else "",
        "no_undisclosed_information_of_other_organs": "true"
        if no_undisclosed_information_of_other_organs
        else "",
    }
    from_case = int(case_id) if case_id.isdigit() else None

    def take(body: Any) -> None:
        if step == "request":
            publication.request(session, record=record, actor=me.scope.user, note=body.note)
        elif step == "approve":
            publication.approve(session, record=record, actor=me.scope.user, data=body)
        else:
            publication.refuse(session, record=record, actor=me.scope.user, reason=body.reason)

    def on_case(status_code: int, error: str | None) -> Response:
        # Asked from a case page: the refusal is shown there, next to the record's publication form.
        case = _load_case(session, me.scope, from_case or 0)
        return _case_page(
            request,
            session,
            me,
            case,
            locale,
            status_code=status_code,
            failed=f"publish-{record_id}",
            error=error,
        )

    return take_step(
        session,
        locale,
        PUBLICATION_STEPS[step],
        fields,
        take,
        again=(
            _in_queue(request, session, me, locale, PUBLICATIONS, record_id)
            if from_case is None
            else _one_message(on_case)
        ),
        done_url=(
            f"/workbench/reviews/publication?done={step}"
            if from_case is None
            else f"/workbench/cases/{from_case}?done=publish"
        ),
    )


# ---- intake jobs ------------------------------------------------------------------------------------------

#: A job still moving: its page refreshes (a link without JavaScript, polling with it).
LIVE: Final = frozenset({JobState.queued, JobState.running})


def progress(job: IntakeJob) -> dict[str, Any]:
    """What the progress bar shows, as the page renders it and as the polling script reads it."""
    return {
        "state": job.state.value,
        "done": job.rows_done,
        "total": job.total_rows,
        "percent": jobs.progress_percent(job),
        "imported": job.imported,
        "duplicates": job.duplicates,
        "rejected": job.rejected,
        "records_created": job.records_created,
        "live": job.state in LIVE,
    }


def _polling(locale: Locale) -> dict[str, Any]:
    """What the progress script reads from a page: how often to ask, and the words it writes (each state's name
    and the rows line's pattern)."""
    labels = {state.value: pick(render.TEXT[f"st_{state.value}"], locale) for state in JobState}
    return {"poll_ms": POLL_MS, "job_labels": {**labels, "rows": pick(render.TEXT["rows_of"], locale)}}


def _kind_label(kind: JobKind, locale: Locale) -> str:
    return pick(render.TEXT[f"job_{kind.value}"], locale)


@router.get("/reviews/intake")
def intake_jobs(request: Request, session: SessionDep) -> Response:
    """The CSV jobs of the institutions and associations bound in scope, newest first, with their progress."""
    me = signed_in(session, request)
    if isinstance(me, Response):
        return me
    locale = render.locale_of(request)
    rows, total = jobs.list_in_scope(session, me.scope, limit=PAGE_SIZE, offset=0)
    return render.page(
        request,
        "review_intake.html",
        {
            "me": me,
            "rows": [(job, account, progress(job), _kind_label(job.kind, locale)) for job, account in rows],
            "total": total,
            **_polling(locale),
        },
        locale=locale,
    )


@router.get("/intake/{job_id}")
def intake_job(request: Request, session: SessionDep, job_id: int) -> Response:
    """One job: its progress (refreshed by a link, or polled by script), its counts and its first row errors."""
    found = viewed(request, session, lambda me: jobs.get_in_scope(session, me.scope, job_id))
    if isinstance(found, Response):
        return found
    me, (job, account), locale = found
    errors, error_total = jobs.row_errors(session, job.id or 0, limit=PAGE_SIZE)
    return render.page(
        request,
        "intake_job.html",
        {
            "me": me,
            "job": job,
            "account": account,
            "p": progress(job),
            "kind": _kind_label(job.kind, locale),
            "errors": errors,
            "error_total": error_total,
            **_polling(locale),
        },
        locale=locale,
    )


@router.get("/intake/{job_id}/progress.json")
def intake_progress(request: Request, session: SessionDep, job_id: int) -> Response:
    """A job's progress for the polling script (404 in our error shape outside the scope)."""
    me = signed_in(session, request)
    if isinstance(me, Response):
        return me
    job, _account = jobs.get_in_scope(session, me.scope, job_id)
    body = json.dumps(progress(job), separators=(",", ":"))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/intake/{job_id}/errors.csv")
def intake_errors(request: Request, session: SessionDep, job_id: int) -> Response:
    """A job's whole row-error report as CSV, as GET /api/v1/intake/jobs/{id}/errors?format=csv gives its
    uploader."""
    me = signed_in(session, request)
    if isinstance(me, Response):
        return me
    job, _account = jobs.get_in_scope(session, me.scope, job_id)
    return Response(
        content=jobs.errors_csv(session, job),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="intake-job-{job.id}-errors.csv"',
            "Cache-Control": "no-store",
        },
    )
