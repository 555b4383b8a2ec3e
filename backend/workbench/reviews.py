"""The workbench's review queues (``/workbench/reviews``): reported records to verify or dismiss, correction
requests to decide, publication requests (four eyes) and the intake jobs of the institutions and associations
in scope with their live progress and error reports.

Every list is the staff API's own scoped query, audited as the API audits it; every action parses its form into
the API's body schema and calls the same domain service (``records.service``, ``records.corrections``,
``publication.service``), showing a refusal next to the form it came from.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal, TypeVar

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError
from sqlmodel import Session, SQLModel, col, select

from backend import audit
from backend.common.scoped import load_scoped
from backend.db import SessionDep
from backend.errors import AppError
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
from backend.workbench.router import _body, _case_page, _load_case, _message, _request_id, _to_login

router = APIRouter(prefix="/workbench", include_in_schema=False)
M = TypeVar("M", bound=SQLModel)

#: Records others report (Art. 15-17) that count only once staff have verified them (Art. 13).
REPORTED_SOURCES: Final = (Source.institution, Source.association, Source.supervisor)
#: How many rows a review page shows (the oldest first where they have a deadline).
PAGE_SIZE: Final = 50
#: How often the progress script asks again while a job runs (milliseconds; shown in the page's data).
POLL_MS: Final = 2000


def _signed_in(session: Session, request: Request) -> auth.SignedIn | Response:
    me = auth.current(session, request)
    return me if me is not None else _to_login(request)


def _refused(request: Request, me: auth.SignedIn, locale: Locale, csrf: str) -> Response | None:
    """The page for a form that may not be taken: a read-only account (403) or a stale CSRF token (400)."""
    if not me.can_act:
        return _message(request, locale, "read_only", 403)
    if not auth.csrf_ok(me.csrf_token, csrf):
        return _message(request, locale, "csrf_failed", 400)
    return None


def _action_target(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    csrf: str,
    model: type[M],
    row_id: int,
    what: tuple[str, str],
) -> M | Response:
    """The row an action is about, in scope (else the 404 page), once the account may act and the form's
    CSRF token matches (else the refusal's page)."""
    locale = render.locale_of(request)
    try:
        row = load_scoped(session, me.scope, model, row_id, what, via="operator")
    except AppError as exc:
        return _message(request, locale, "not_found", exc.status, detail=exc.message(locale))
    refused = _refused(request, me, locale, csrf)
    return row if refused is None else refused


def _undo(savepoint: Any, exc: AppError | ValidationError, locale: Locale) -> tuple[int, str]:
    """Roll a refused step back (unless the error keeps its changes); its status and message."""
    keep = isinstance(exc, AppError) and exc.keep_changes
    savepoint.commit() if keep else savepoint.rollback()
    if isinstance(exc, AppError):
        return exc.status, exc.message(locale)
    return 422, str(exc.errors()[0]["msg"])


def _flag(raw: str) -> bool | None:
    return {"1": True, "0": False}.get(raw)


# ---- the landing page -------------------------------------------------------------------------------------


@router.get("/reviews")
def reviews_home(request: Request, session: SessionDep) -> Response:
    """Each review queue with how many items wait in it (counts only: no record is shown, so nothing is read)."""
    me = _signed_in(session, request)
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


def _records_page(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    locale: Locale,
    *,
    status_code: int = 200,
    failed: int | None = None,
    error: str | None = None,
) -> Response:
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
        request_id=_request_id(request),
    )
    done = request.query_params.get("done")
    return render.page(
        request,
        "review_records.html",
        {
            "me": me,
            "rows": rows,
            "total": total,
            "names": _operator_names(session, {r.operator_id for r in rows}),
            # Only the findings a record's kind can carry are asked for (records.service.check_findings).
            "instrument_kinds": INSTRUMENT_KINDS,
            "accident_kind": RecordKind.METROLOGY_ACCIDENT,
            "failed": failed,
            "error": error,
            "done": done if done in RECORD_STEPS else None,
        },
        locale=locale,
        status_code=status_code,
    )


@router.get("/reviews/records")
def reported_records(request: Request, session: SessionDep) -> Response:
    """Records reported by institutions, associations and supervisors that wait for verification."""
    me = _signed_in(session, request)
    if isinstance(me, Response):
        return me
    return _records_page(request, session, me, render.locale_of(request))


RECORD_STEPS: Final[dict[str, type[BaseModel]]] = {"verify": RecordVerify, "dismiss": RecordReason}


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
    me = _signed_in(session, request)
    if isinstance(me, Response):
        return me
    locale = render.locale_of(request)
    record = _action_target(request, session, me, csrf, IntegrityRecord, record_id, RECORD)
    if isinstance(record, Response):
        return record
    fields = {
        "reason": reason,
        "instrument_still_in_use": _flag(instrument_still_in_use),
        "social_impact": _flag(social_impact),
    }
    savepoint = session.begin_nested()
    try:
        body: Any = _body(RECORD_STEPS[step], fields)
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
    except (AppError, ValidationError) as exc:
        return _refusal(request, session, me, locale, savepoint, exc, _records_page, record_id)
    savepoint.commit()
    return RedirectResponse(f"/workbench/reviews/records?done={step}", status_code=303)


def _refusal(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    locale: Locale,
    savepoint: Any,
    exc: AppError | ValidationError,
    page: Any,
    failed: int,
) -> Response:
    """Undo a refused step and show the page with the message in place."""
    status_code, message = _undo(savepoint, exc, locale)
    response: Response = page(
        request, session, me, locale, status_code=status_code, failed=failed, error=message
    )
    return response


# ---- correction requests ----------------------------------------------------------------------------------


def _corrections_page(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    locale: Locale,
    *,
    status_code: int = 200,
    failed: int | None = None,
    error: str | None = None,
) -> Response:
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
        request_id=_request_id(request),
    )
    record_ids = [r.record_id for r in rows if r.record_id is not None]
    disputed = {
        r.id: r
        for r in session.exec(select(IntegrityRecord).where(col(IntegrityRecord.id).in_(record_ids or [0])))
    }
    done = request.query_params.get("done")
    return render.page(
        request,
        "review_corrections.html",
        {
            "me": me,
            "rows": [(r, disputed.get(r.record_id or 0), corrections.is_overdue(r)) for r in rows],
            "total": total,
            "names": _operator_names(session, {r.operator_id for r in rows}),
            "record_subject": CorrectionSubject.record,
            "failed": failed,
            "error": error,
            "done": done == "decide",
        },
        locale=locale,
        status_code=status_code,
    )


@router.get("/reviews/corrections")
def correction_requests(request: Request, session: SessionDep) -> Response:
    """Operators' pending correction requests (Art. 22), the earliest due first."""
    me = _signed_in(session, request)
    if isinstance(me, Response):
        return me
    return _corrections_page(request, session, me, render.locale_of(request))


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
    me = _signed_in(session, request)
    if isinstance(me, Response):
        return me
    locale = render.locale_of(request)
    row = _action_target(request, session, me, csrf, CorrectionRequest, correction_id, corrections.CORRECTION)
    if isinstance(row, Response):
        return row
    savepoint = session.begin_nested()
    try:
        body: Any = _body(CorrectionDecide, {"decision": decision, "reasons": reasons})
        corrections.decide(session, row=row, data=body, actor=me.scope.user)
    except (AppError, ValidationError) as exc:
        return _refusal(request, session, me, locale, savepoint, exc, _corrections_page, correction_id)
    savepoint.commit()
    return RedirectResponse("/workbench/reviews/corrections?done=decide", status_code=303)


# ---- publication review (four eyes) -----------------------------------------------------------------------


def _publication_page(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    locale: Locale,
    *,
    status_code: int = 200,
    failed: int | None = None,
    error: str | None = None,
) -> Response:
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
        request_id=_request_id(request),
    )
    done = request.query_params.get("done")
    return render.page(
        request,
        "reviews.html",
        {
            "me": me,
            "rows": rows,
            "total": total,
            "failed": failed,
            "error": error,
            "done": done if done in PUBLICATION_STEPS else None,
        },
        locale=locale,
        status_code=status_code,
    )


@router.get("/reviews/publication")
def publication_reviews(request: Request, session: SessionDep) -> Response:
    """Pending publication requests in scope; approval is offered only to a second pair of eyes."""
    me = _signed_in(session, request)
    if isinstance(me, Response):
        return me
    return _publication_page(request, session, me, render.locale_of(request))


PUBLICATION_STEPS: Final[dict[str, type[BaseModel]]] = {
    "request": PublicationRequest,
    "approve": PublicationApprove,
    "refuse": PublicationReason,
}


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
    me = _signed_in(session, request)
    if isinstance(me, Response):
        return me
    locale = render.locale_of(request)
    record = _action_target(request, session, me, csrf, IntegrityRecord, record_id, RECORD)
    if isinstance(record, Response):
        return record
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
    savepoint = session.begin_nested()
    try:
        body: Any = _body(PUBLICATION_STEPS[step], fields)
        if step == "request":
            publication.request(session, record=record, actor=me.scope.user, note=body.note)
        elif step == "approve":
            publication.approve(session, record=record, actor=me.scope.user, data=body)
        else:
            publication.refuse(session, record=record, actor=me.scope.user, reason=body.reason)
    except (AppError, ValidationError) as exc:
        if from_case is None:
            return _refusal(request, session, me, locale, savepoint, exc, _publication_page, record_id)
        status_code, message = _undo(savepoint, exc, locale)
        case = _load_case(session, me.scope, from_case)
        return _case_page(
            request,
            session,
            me,
            case,
            locale,
            status_code=status_code,
            failed=f"publish-{record_id}",
            error=message,
        )
    savepoint.commit()
    if from_case is not None:
        return RedirectResponse(f"/workbench/cases/{from_case}?done=publish", status_code=303)
    return RedirectResponse(f"/workbench/reviews/publication?done={step}", status_code=303)


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


def _job_labels(locale: Locale) -> dict[str, str]:
    """The words the polling script writes: each state's name and the rows line's pattern."""
    labels = {state.value: pick(render.TEXT[f"st_{state.value}"], locale) for state in JobState}
    return {**labels, "rows": pick(render.TEXT["rows_of"], locale)}


def _kind_label(kind: JobKind, locale: Locale) -> str:
    return pick(render.TEXT[f"job_{kind.value}"], locale)


@router.get("/reviews/intake")
def intake_jobs(request: Request, session: SessionDep) -> Response:
    """The CSV jobs of the institutions and associations bound in scope, newest first, with their progress."""
    me = _signed_in(session, request)
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
            "poll_ms": POLL_MS,
            "job_labels": _job_labels(locale),
        },
        locale=locale,
    )


@router.get("/intake/{job_id}")
def intake_job(request: Request, session: SessionDep, job_id: int) -> Response:
    """One job: its progress (refreshed by a link, or polled by script), its counts and its first row errors."""
    me = _signed_in(session, request)
    if isinstance(me, Response):
        return me
    locale = render.locale_of(request)
    try:
        job, account = jobs.get_in_scope(session, me.scope, job_id)
    except AppError as exc:
        return _message(request, locale, "not_found", exc.status, detail=exc.message(locale))
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
            "poll_ms": POLL_MS,
            "job_labels": _job_labels(locale),
        },
        locale=locale,
    )


@router.get("/intake/{job_id}/progress.json")
def intake_progress(request: Request, session: SessionDep, job_id: int) -> Response:
    """A job's progress for the polling script (404 in our error shape outside the scope)."""
    me = _signed_in(session, request)
    if isinstance(me, Response):
        return me
    job, _account = jobs.get_in_scope(session, me.scope, job_id)
    body = json.dumps(progress(job), separators=(",", ":"))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/intake/{job_id}/errors.csv")
def intake_errors(request: Request, session: SessionDep, job_id: int) -> Response:
    """A job's whole row-error report as CSV, as GET /api/v1/intake/jobs/{id}/errors?format=csv gives its
    uploader."""
    me = _signed_in(session, request)
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
