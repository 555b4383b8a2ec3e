"""The workbench's routes (``/workbench``): sign-in, the case queue, the case page and its actions.

Every action parses its form into the API's own body schema and calls ``backend.cases.service`` exactly as
``backend.cases.router`` does; a domain error is shown next to the form it came from, in the page's language.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from typing import Annotated, Any, BinaryIO, Final, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel
from sqlmodel import Session, col, select

from backend import audit
from backend.auth import service as auth_service
from backend.auth.scope import Scope
from backend.cases import repository, service
from backend.cases.deadlines import MEDIATION_TERMINATION_NOTICE
from backend.cases.models import Case, CaseAction, CaseState
from backend.cases.schemas import (
    CaseClose,
    CaseFindings,
    CaseMediate,
    CaseNote,
    CaseOperatorNotified,
    CaseReject,
    CaseReopen,
    CaseSubstantiate,
    CaseTransfer,
)
from backend.cases.service import CASE, FINDING_KINDS
from backend.common.scoped import load_scoped
from backend.complaints.models import ComplaintCategory, ComplaintPhoto, PhotoStatus
from backend.db import SessionDep, utcnow
from backend.errors import AppError, not_found
from backend.i18n import Locale, normalise_locale
from backend.jurisdictions.models import Jurisdiction
from backend.media.factory import media_storage
from backend.media.processing import ImageFormat
from backend.media.storage import MediaNotFound
from backend.public.labels import CLASS_NAMES, pick
from backend.publication import service as publication
from backend.ratelimit import client_address, limit
from backend.records.models import IntegrityRecord
from backend.workbench import auth, dashboard, mapdata, operators, queue, render
from backend.workbench.common import (
    action_target,
    form_outcome,
    message,
    request_id,
    take_step,
    to_login,
    viewed,
)

router = APIRouter(prefix="/workbench", include_in_schema=False)
router.include_router(operators.router)

HOME: Final = "/workbench/"


def _safe_next(raw: str | None) -> str:
    """Only a path inside the workbench (never another host) may follow a sign-in."""
    if raw and raw.startswith("/workbench/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return HOME


# ---- static files and language -----------------------------------------------------------------------------


@router.get("/static/{name}")
def static_file(name: str, v: str | None = None) -> Response:
    """A workbench asset; immutable when asked for by its content hash."""
    found = render.STATIC_FILES.get(name)
    if found is None:
        raise not_found("文件", "file")
    cache = "public, max-age=31536000, immutable" if v == found.digest else "public, max-age=300"
    return Response(found.body, media_type=found.media_type, headers={"Cache-Control": cache})


@router.get("/lang")
def switch_language(to: str = "zh-CN", next: str = HOME) -> RedirectResponse:
    """Remember the chosen language in a cookie and go back to the page."""
    response = RedirectResponse(_safe_next(next), status_code=303)
    locale = normalise_locale(to)
    response.set_cookie(render.LANG_COOKIE, locale, max_age=365 * 86400, samesite="strict", path="/workbench")
    return response


# ---- sign-in ----------------------------------------------------------------------------------------------


def _login_page(
    request: Request, locale: Locale, token: str, next_url: str, error: str | None, status_code: int = 200
) -> Response:
    response = render.page(
        request,
        "login.html",
        {"me": None, "login_token": token, "next": next_url, "error": error},
        locale=locale,
        status_code=status_code,
    )
    auth.set_login_cookie(response, token)
    return response


@router.get("/login")
def login_form(request: Request, session: SessionDep, next: str = HOME) -> Response:
    """The sign-in form (straight on to the page when already signed in)."""
    if auth.current(session, request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    locale = render.locale_of(request)
    return _login_page(request, locale, auth.login_token(request), _safe_next(next), None)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    login_token: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    """Check the password as the API does (same throttling), then open a server-side session."""
    locale = render.locale_of(request)
    next_url = _safe_next(next)
    if not auth.csrf_ok(request.cookies.get(auth.LOGIN_COOKIE, ""), login_token):
        fresh = auth.login_token(request)
        return _login_page(request, locale, fresh, next_url, pick(render.TEXT["csrf_failed"], locale), 400)
    try:
        limit(request, "login", "30/minute")
        account = auth_service.authenticate(session, username, password, client_address(request))
    except AppError as exc:
        # A failed attempt was counted (flushed); returning, not raising, commits the count like the API does.
        return _login_page(request, locale, login_token, next_url, exc.message(locale), exc.status)
    if account.role not in auth.WORKBENCH_ROLES or auth.scope_of(session, account) is None:
        return message(request, locale, "forbidden", 403)
    response = RedirectResponse(next_url, status_code=303)
    auth.start(session, response, account)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Sign out (the form carries the session's CSRF token)."""
    me = auth.current(session, request)
    if me is not None and not auth.csrf_ok(me.csrf_token, csrf):
        return message(request, render.locale_of(request), "csrf_failed", 400)
    response = RedirectResponse("/workbench/login", status_code=303)
    auth.end(session, request, response)
    return response


# ---- the queue --------------------------------------------------------------------------------------------


def _parse_filter(params: dict[str, str]) -> tuple[queue.QueueFilter, list[str]]:
    problems: list[str] = []

    def pick_enum(name: str, enum: Any) -> Any:
        raw = params.get(name, "")
        if not raw:
            return None
        try:
            return enum(raw)
        except ValueError:
            problems.append(name)
            return None

    def pick_flag(name: str) -> bool | None:
        raw = params.get(name, "")
        if raw in ("", "any"):
            return None
        if raw in ("1", "0"):
            return raw == "1"
        problems.append(name)
        return None

    due_within: int | None = None
    raw_due = params.get("due_within", "")
    if raw_due:
        if raw_due.isdigit() and int(raw_due) <= 60:
            due_within = int(raw_due)
        else:
            problems.append("due_within")
    county = params.get("county", "") or None
    if county is not None and not (len(county) == 6 and county.isdigit()):
        problems.append("county")
        county = None
    return (
        queue.QueueFilter(
            state=pick_enum("status", CaseState),
            overdue=pick_flag("overdue"),
            escalated=pick_flag("escalated"),
            due_within=due_within,
            category=pick_enum("category", ComplaintCategory),
            county=county,
        ),
        problems,
    )


@router.get("/")
def case_queue(request: Request, session: SessionDep) -> Response:
    """The cases in the user's scope, soonest deadline first, with filters, status counts and keyset paging."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    locale = render.locale_of(request)
    params = dict(request.query_params)
    flt, problems = _parse_filter(params)
    after = queue.parse_cursor(params.get("after"))
    try:
        page = queue.load(session, me.scope, flt, after=after, today=service.local_date(utcnow()))
    except AppError:  # an unknown division code
        problems.append("county")
        page = queue.QueuePage([], {}, 0, None)
    kept = {k: v for k, v in params.items() if k != "after" and k != "lang" and v}
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in kept.items())
    return render.page(
        request,
        "queue.html",
        {
            "me": me,
            "flt": flt,
            "params": kept,
            "problems": problems,
            "page": page,
            "next_url": (f"?{query}&" if query else "?") + f"after={page.next_after}"
            if page.next_after
            else None,
            "first_url": f"?{query}" if query else HOME,
            "paged": after is not None,
            "count_cap": queue.COUNT_CAP,
        },
        locale=locale,
        status_code=422 if problems else 200,
    )


# ---- the case page and its actions ------------------------------------------------------------------------


def _load_case(session: Session, scope: Scope, case_id: int) -> Case:
    return load_scoped(session, scope, Case, case_id, CASE, via="jurisdiction")


def _actions(session: Session, case: Case) -> list[str]:
    """The steps the case's state allows (the service's own transition table), in handling order."""
    steps = [STEP_OF[a] for a, states in service.TRANSITIONS.items() if case.state in states and a in STEP_OF]
    if any(d.key == MEDIATION_TERMINATION_NOTICE.key for d in service.open_deadlines(session, case.id or 0)):
        steps.append("operator-notified")
    return steps


def _case_page(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    case: Case,
    locale: Locale,
    *,
    status_code: int = 200,
    failed: str | None = None,
    error: str | None = None,
    field_errors: list[tuple[str, str]] | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    # The same audited read as GET /api/v1/cases/{id}: the page shows the filer and the evidence.
    audit.service.record_read(
        session,
        actor=me.scope.user,
        action="case.read",
        entity_type="case",
        entity_id=case.id or 0,
        request_id=request_id(request),
    )
    detail = repository.to_detail(session, case, locale)
    records = (
        list(
            session.exec(
                select(IntegrityRecord)
                .where(col(IntegrityRecord.id).in_(case.record_ids))
                .order_by(col(IntegrityRecord.id))
            )
        )
        if case.record_ids
        else []  # most cases have no record: no round trip for none
    )
    return render.page(
        request,
        "case.html",
        {
            "me": me,
            "c": detail,
            # A read-only auditor is shown no action's form.
            "actions": _actions(session, case) if me.can_act else [],
            "finding_kinds": sorted(k.value for k in FINDING_KINDS),
            **form_outcome(
                request,
                {*STEPS, "publish"},
                failed=failed,
                error=error,
                field_errors=field_errors,
                form=form,
            ),
            "records": [(r, publication.open_publication(session, r.id or 0)) for r in records],
        },
        locale=locale,
        status_code=status_code,
    )


@router.get("/cases/{case_id}")
def case_page(request: Request, session: SessionDep, case_id: int) -> Response:
    """A case: the complaint, photos, routing, deadlines, history and a form for every step its state allows."""
    found = viewed(request, session, lambda me: _load_case(session, me.scope, case_id))
    if isinstance(found, Response):
        return found
    me, case, locale = found
    return _case_page(request, session, me, case, locale)


Step = Callable[[Session, Case, Scope, Any, str | None], Case]


def _substantiate(session: Session, case: Case, scope: Scope, body: Any, rid: str | None) -> Case:
    data = service.Substantiation(
        findings=body.findings,
        fact_date=body.fact_date,
        operator_id=body.operator_id,
        record_kinds=tuple(body.record_kinds),
        instrument_id=body.instrument_id,
        instrument_still_in_use=body.instrument_still_in_use,
        evidence_refs=tuple(body.evidence_refs),
    )
    return service.substantiate(session, case, actor=scope.user, scope=scope, data=data, request_id=rid)


#: Each step: the API's body schema and the service call its route makes.
STEPS: Final[dict[str, tuple[type[BaseModel], Step]]] = {
    "accept": (
        CaseNote,
        lambda s, c, sc, b, rid: service.accept(s, c, actor=sc.user, note=b.note, request_id=rid),
    ),
    "reject": (
        CaseReject,
        lambda s, c, sc, b, rid: service.reject(
            s,
            c,
            actor=sc.user,
            scope=sc,
            reason=b.reason,
            handled_by=b.handled_by,
            duplicate_of_case_id=b.duplicate_of_case_id,
            note=b.note,
            request_id=rid,
        ),
    ),
    "investigate": (
        CaseNote,
        lambda s, c, sc, b, rid: service.investigate(s, c, actor=sc.user, note=b.note, request_id=rid),
    ),
    "substantiate": (CaseSubstantiate, _substantiate),
    "unsubstantiate": (
        CaseFindings,
        lambda s, c, sc, b, rid: service.unsubstantiate(
            s, c, actor=sc.user, findings=b.findings, request_id=rid
        ),
    ),
    "mediate": (
        CaseMediate,
        lambda s, c, sc, b, rid: service.mediate(s, c, actor=sc.user, agreement=b.agreement, request_id=rid),
    ),
    "close": (
        CaseClose,
        lambda s, c, sc, b, rid: service.close(s, c, actor=sc.user, reason=b.reason, request_id=rid),
    ),
    "reopen": (
        CaseReopen,
        lambda s, c, sc, b, rid: service.reopen(s, c, actor=sc.user, reason=b.reason, request_id=rid),
    ),
    "transfer": (
        CaseTransfer,
        lambda s, c, sc, b, rid: service.transfer(
            s, c, actor=sc.user, jurisdiction_code=b.jurisdiction_code, reason=b.reason, request_id=rid
        ),
    ),
    "operator-notified": (
        CaseOperatorNotified,
        lambda s, c, sc, b, rid: service.operator_notified(
            s, c, actor=sc.user, method=b.method, note=b.note, request_id=rid
        ),
    ),
}
#: The form of each transition the service knows.
STEP_OF: Final[dict[CaseAction, str]] = {
    CaseAction.accepted: "accept",
    CaseAction.rejected: "reject",
    CaseAction.investigating: "investigate",
    CaseAction.substantiated: "substantiate",
    CaseAction.unsubstantiated: "unsubstantiate",
    CaseAction.mediated: "mediate",
    CaseAction.closed: "close",
    CaseAction.reopened: "reopen",
    CaseAction.transferred: "transfer",
}
StepName = Literal[
    "accept",
    "reject",
    "investigate",
    "substantiate",
    "unsubstantiate",
    "mediate",
    "close",
    "reopen",
    "transfer",
    "operator-notified",
]


@router.post("/cases/{case_id}/{step}")
def case_step(
    request: Request,
    session: SessionDep,
    case_id: int,
    step: StepName,
    csrf: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    handled_by: Annotated[str, Form(max_length=40)] = "",
    duplicate_of_case_id: Annotated[str, Form(max_length=20)] = "",
    findings: Annotated[str, Form(max_length=8000)] = "",
    fact_date: Annotated[str, Form(max_length=20)] = "",
    operator_id: Annotated[str, Form(max_length=20)] = "",
    record_kinds: Annotated[list[str] | None, Form()] = None,
    instrument_id: Annotated[str, Form(max_length=20)] = "",
    instrument_still_in_use: Annotated[str, Form(max_length=8)] = "",
    agreement: Annotated[str, Form(max_length=8000)] = "",
    method: Annotated[str, Form(max_length=20)] = "",
    jurisdiction_code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Take one step of the case through the domain service; on an error, the case page with it in place."""
    target = action_target(request, session, csrf, lambda me: _load_case(session, me.scope, case_id))
    if isinstance(target, Response):
        return target
    me, case, locale = target
    fields: dict[str, Any] = {
        "note": note,
        "reason": reason,
        "handled_by": handled_by,
        "duplicate_of_case_id": duplicate_of_case_id,
        "findings": findings,
        "fact_date": fact_date,
        "operator_id": operator_id,
        "record_kinds": record_kinds or [],
        "instrument_id": instrument_id,
        "instrument_still_in_use": "true" if instrument_still_in_use else "",
        "agreement": agreement,
        "method": method,
        "jurisdiction_code": jurisdiction_code,
    }
    schema, take = STEPS[step]

    def again(**shown: Any) -> Response:
        return _case_page(request, session, me, case, locale, failed=step, form=fields, **shown)

    return take_step(
        session,
        locale,
        schema,
        fields,
        lambda body: take(session, case, me.scope, body, request_id(request)),
        again=again,
        done_url=f"/workbench/cases/{case_id}?done={step}",
        # The case as it stands after the undo (the same object: the session's identity map holds it).
        after_refusal=lambda: _load_case(session, me.scope, case_id),
    )


# ---- photos -----------------------------------------------------------------------------------------------


def _photo(session: Session, scope: Scope, case_id: int, photo_id: int) -> ComplaintPhoto:
    case = _load_case(session, scope, case_id)
    photo = session.get(ComplaintPhoto, photo_id)
    if photo is None or photo.complaint_id != case.complaint_id:
        raise not_found("照片", "photo")
    return photo


def _chunks(stream: BinaryIO, size: int = 1024 * 1024) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(size):
            yield chunk


@router.get("/cases/{case_id}/photos/{photo_id}/original")
def photo_original(request: Request, session: SessionDep, case_id: int, photo_id: int) -> Response:
    """The original as uploaded (EXIF included): an audited read, exactly as the API's original route."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    photo = _photo(session, me.scope, case_id, photo_id)
    audit.service.record_read(
        session,
        actor=me.scope.user,
        action="complaint_photo.read",
        entity_type="complaint_photo",
        entity_id=photo_id,
        after={"rendition": "original", "sha256": photo.original_sha256},
        request_id=request_id(request),
    )
    try:
        stream = media_storage().open_stream(photo.original_key)
    except MediaNotFound:
        raise not_found("照片原件", "original photo") from None
    fmt = ImageFormat(photo.original_format)
    return StreamingResponse(
        _chunks(stream),
        media_type=fmt.mime_type,
        headers={
            "Content-Disposition": f'inline; filename="case-{case_id}-photo-{photo_id}.{fmt.value}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/cases/{case_id}/photos/{photo_id}/{rendition}")
def photo_rendition(
    request: Request,
    session: SessionDep,
    case_id: int,
    photo_id: int,
    rendition: Literal["display", "thumbnail"],
) -> Response:
    """A photo's metadata-free display copy or thumbnail (not audited, as in the API)."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    photo = _photo(session, me.scope, case_id, photo_id)
    key = photo.display_key if rendition == "display" else photo.thumbnail_key
    if photo.status != PhotoStatus.processed or key is None:
        raise AppError(409, "photo_not_ready", "照片尚不可用", "the photo is not available")
    try:
        data = media_storage().get(key)
    except MediaNotFound:
        raise not_found("照片", "photo") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


# ---- dashboard --------------------------------------------------------------------------------------------


@router.get("/dashboard")
def dashboard_page(request: Request, session: SessionDep) -> Response:
    """This week's complaints, deadlines met, overdue by county, ratings and the most substantiated operators."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    locale = render.locale_of(request)
    figures = dashboard.figures(session, me.scope, service.local_date(utcnow()))
    weekday = render.TEXT["weekdays"]
    names = (weekday[0] if locale == "zh-CN" else weekday[1]).split(",")
    return render.page(
        request,
        "dashboard.html",
        {
            "me": me,
            "f": figures,
            "week": dashboard.chart(
                [(f"{names[d.weekday()]} {d.strftime('%m-%d')}", float(n)) for d, n in figures.week]
            ),
            "deadlines": dashboard.chart(
                [
                    (pick(render.TEXT["acceptance_on_time"], locale), figures.acceptance_pct or 0.0),
                    (pick(render.TEXT["closure_on_time"], locale), figures.closure_pct or 0.0),
                ],
                maximum=100.0,
                percent=True,
            ),
            "overdue": dashboard.chart([(name, float(n)) for name, n in figures.overdue_by_county]),
            "ratings": dashboard.chart(
                [(pick(CLASS_NAMES[c], locale), float(n)) for c, n in figures.ratings]
            ),
            "top": dashboard.chart([(name, float(n)) for name, n in figures.top_operators]),
            "window_days": dashboard.WINDOW_DAYS,
        },
        locale=locale,
    )


# ---- map --------------------------------------------------------------------------------------------------


def _json(request: Request, body: bytes, cache: str, zipped: bytes | None = None) -> Response:
    """JSON, gzipped for browsers that take it (the map's data for 10,000 cases stays small).

    A body made per request is compressed at level 1: four times faster than level 6 for a fifth more bytes,
    still a tenth of a megabyte for 10,000 points; a cached body comes with its own ``zipped`` copy.
    """
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = zipped if zipped is not None else gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)


@router.get("/map")
def map_page(request: Request, session: SessionDep) -> Response:
    """Cases in scope as clustered points over the county outlines (a list link without JavaScript)."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    params = dict(request.query_params)
    _flt, problems = _parse_filter(params)
    kept = {k: v for k, v in params.items() if k in ("status", "category", "overdue", "county") and v}
    return render.page(
        request,
        "map.html",
        {
            "me": me,
            "params": kept,
            "problems": problems,
            "query": "&".join(f"{quote(k)}={quote(v)}" for k, v in kept.items()),
        },
        locale=render.locale_of(request),
        status_code=422 if problems else 200,
    )


@router.get("/map/points.json")
def map_points(request: Request, session: SessionDep) -> Response:
    """The located cases of the map's filters: [{i: id, x: lon, y: lat, s: state, o: overdue}], rounded."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    flt, problems = _parse_filter(dict(request.query_params))
    if problems:
        raise AppError(422, "invalid_filter", "筛选条件有误", "invalid filter", {"fields": problems})
    where = queue.where_clauses(session, me.scope, flt, service.local_date(utcnow()))
    found, cut = mapdata.points_json(session, where)
    body = b'{"points":' + found + b',"cut":' + (b"true" if cut else b"false") + b"}"
    return _json(request, body, "private, no-store")


@router.get("/map/boundaries.json")
def map_boundaries(
    request: Request,
    session: SessionDep,
    county: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
) -> Response:
    """The scope's county outlines, simplified (GeoJSON); with ``county``, that one county's only."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    codes = tuple(mapdata.county_codes(session, me.scope))
    if county is not None:
        # One county's outline (the case page's small map): only one the scope covers.
        division = session.get(Jurisdiction, county)
        if division is None or not me.scope.covers(division.path):
            raise not_found("区县", "county")
        codes = (county,)
    return _json(
        request,
        mapdata.boundaries_geojson(codes),
        "private, max-age=3600",
        zipped=mapdata.boundaries_gzip(codes),
    )
