"""The workbench's operator file (``/workbench/operators``): search, and one operator's profile, stalls,
instruments, integrity records with their actions, rating, self-commitment, reminders and interviews, and the
printable QR sheet of its stalls.

Reads are audited exactly as the API's routes audit the same reads; every action parses its form into the API's
own body schema and calls the service its API route calls, showing a refusal next to the form it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, Response
from pydantic import BaseModel
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.reads import staff_read
from backend.auth.scope import Scope
from backend.common.scoped import load_scoped
from backend.dates import bureau_date, bureau_zone
from backend.db import SessionDep
from backend.errors import AppError, not_found
from backend.i18n import Locale
from backend.instruments.models import Instrument
from backend.instruments.router import to_read as instrument_read
from backend.notices.sms import reach
from backend.notices.sms.router import audit_reach
from backend.operators import service as operator_service
from backend.operators.commitments import COMMITMENT_TEXTS
from backend.operators.models import Operator, Sector, Stall
from backend.public.labels import CLASS_NAMES, Bilingual, pick, sector_name
from backend.qr.sheet import SheetFormat, find_cjk_font, market_codes, render
from backend.records import rating
from backend.records import service as records
from backend.records.models import IntegrityRecord, RecordChange
from backend.records.rules import BAD_KINDS, INSTRUMENT_KINDS, RecordKind
from backend.records.schemas import RecordCorrect, RecordReason, RecordVerify
from backend.supervision import service as supervision
from backend.supervision.models import Interview, InterviewKind
from backend.supervision.schemas import InterviewCancel, InterviewCreate, InterviewOutcome
from backend.workbench import auth
from backend.workbench import render as pages
from backend.workbench.common import (
    form_outcome,
    not_found_page,
    refused,
    request_id,
    take_step,
    to_login,
    viewed,
)

R = TypeVar("R", Interview, IntegrityRecord)

#: Included by ``router.py`` under its ``/workbench`` prefix.
router = APIRouter(include_in_schema=False)

#: Operators per page of the search.
PAGE_SIZE: Final = 25
#: How many records, interviews and class changes the file lists (an operator has a handful of each).
LISTED: Final = 100
#: Required notices listed in the file's reach section per page (newest first).
REACH_LISTED: Final = 20

TEXT: Final[dict[str, Bilingual]] = {
    "operators_title": ("经营者档案", "Operator files"),
    "search": ("查找经营者", "Find an operator"),
    "search_q": ("名称或统一社会信用代码", "Name or USCC"),
    "search_stall": ("摊位号或摊主姓名", "Stall number or holder"),
    "search_sector": ("行业", "Sector"),
    "search_go": ("查找", "Search"),
    "found": ("共 {n} 个经营者", "{n} operators"),
    "no_operators": ("没有符合条件的经营者。", "No operator matches."),
    "prev_page": ("上一页", "Previous page"),
    "page_of": ("第 {p} / {n} 页", "Page {p} of {n}"),
    "col_name": ("名称", "Name"),
    "col_uscc": ("统一社会信用代码", "USCC"),
    "col_sector": ("行业", "Sector"),
    "col_division": ("辖区", "Division"),
    "operator_file": ("经营者档案：{name}", "Operator file: {name}"),
    "back_to_search": ("返回经营者查找", "Back to the operator search"),
    "profile": ("基本信息", "Profile"),
    "legal_rep": ("法定代表人", "Legal representative"),
    "phone": ("电话", "Phone"),
    "management": ("计量管理制度", "Metrology management"),
    "m_not_assessed": ("尚未评估", "Not assessed"),
    "m_sound": ("健全，主体责任落实到位", "Sound, responsibilities in place"),
    "m_not_fully_sound": ("不够完善", "Not fully sound"),
    "demonstration": ("诚信计量示范单位", "Honest-measurement demonstration unit"),
    "inactive": ("已停业", "Inactive"),
    "stalls": ("摊位", "Stalls"),
    "no_stalls": ("尚未登记摊位。", "No stall registered."),
    "stall_no": ("摊位号", "Stall"),
    "holder": ("摊主", "Holder"),
    "closed": ("已撤销", "Closed"),
    "qr_sheet_all": ("打印全部摊位二维码（PDF，A4）", "Print every stall's QR code (PDF, A4)"),
    "qr_sheet_one": ("打印二维码", "Print QR code"),
    "qr_hint": (
        "二维码贴纸按公示规则隐去姓名；补打（作废旧码）请使用接口。",
        "Stickers mask names as the public page does; reprinting (revoking the old code) is done via the API.",
    ),
    "instruments": ("计量器具", "Instruments"),
    "no_instruments": ("尚未登记计量器具。", "No instrument registered."),
    "serial": ("出厂编号", "Serial"),
    "type": ("器具", "Type"),
    "verified_on": ("最近检定", "Last verified"),
    "valid_until": ("有效期至", "Valid until"),
    "v_state": ("检定状态", "Verification"),
    "v_valid": ("有效", "Valid"),
    "v_due_soon": ("即将到期", "Due soon"),
    "v_overdue": ("超期未检", "Overdue"),
    "v_failed": ("检定不合格", "Failed"),
    "v_never_verified": ("未检定", "Never verified"),
    "retired": ("已停用", "Retired"),
    "integrity_records": ("诚信计量记录", "Integrity records"),
    "no_records": ("暂无记录。", "No record."),
    "r_reported": ("待核实", "Reported"),
    "r_verified": ("已核实", "Verified"),
    "r_dismissed": ("不予认定", "Dismissed"),
    "r_revoked": ("已撤销", "Revoked"),
    "good": ("良好", "Good"),
    "bad": ("不良", "Bad"),
    "source": ("来源", "Source"),
    "src_complaint": ("投诉举报经查实", "Complaint found true"),
    "src_inspection": ("监督检查", "Inspection"),
    "src_institution": ("计量技术机构", "Metrology institution"),
    "src_association": ("行业组织", "Industry association"),
    "src_supervisor": ("计量诚信监督员", "Integrity supervisor"),
    "src_overdue_sweep": ("检定到期核查", "Verification-date sweep"),
    "src_staff": ("工作人员登记", "Entered by staff"),
    "src_self_commitment": ("自我承诺", "Self-commitment"),
    "interview_kind": ("类型", "Type"),
    "summary": ("摘要", "Summary"),
    "evidence_refs": ("证据（每行一项）", "Evidence (one per line)"),
    "version": ("第 {n} 版", "version {n}"),
    "record_actions": ("处理此记录", "Act on this record"),
    "a_verify": ("核实", "Verify"),
    "a_dismiss": ("不予认定", "Dismiss"),
    "a_revoke": ("撤销", "Revoke"),
    "a_correct": ("更正", "Correct"),
    "kind": ("记录类型", "Kind"),
    "unchanged": ("不变", "Unchanged"),
    "not_stated": ("未认定", "Not stated"),
    "social_impact": ("造成社会影响", "Caused social impact"),
    "reason_required": ("理由（必填）", "Reason (required)"),
    "reason_optional": ("理由（可选）", "Reason (optional)"),
    "rating": ("诚信等级", "Integrity class"),
    "as_of": ("评级日期", "As of"),
    "computed_now": ("尚无评级记录，按现有记录即时计算", "Nothing stored yet: computed now from the records"),
    "reasons": ("依据", "Reasons"),
    "rules_version": ("规则版本", "Rules version"),
    "rating_history": ("等级变化", "Class changes"),
    "no_history": ("等级未曾变化。", "The class has not changed."),
    "trigger_record": ("记录变化", "a record changed"),
    "trigger_nightly": ("每日重评", "nightly re-rating"),
    "trigger_manual": ("人工重评", "re-rated by staff"),
    "commitment": ("诚信计量自我承诺", "Integrity self-commitment"),
    "commitment_none": ("尚未签署自我承诺。", "No self-commitment signed."),
    "commitment_signed": (
        "{signer} 于 {at} 签署（文本 {version}）",
        "Signed by {signer} on {at} (text {version})",
    ),
    "interviews": ("提醒与约谈", "Reminders and interviews"),
    "no_interviews": ("暂无提醒或约谈。", "No reminder or interview."),
    "k_reminder": ("提醒", "Reminder"),
    "k_interview": ("约谈", "Interview"),
    "s_scheduled": ("已安排，待经营者确认", "Scheduled, awaiting acknowledgement"),
    "s_acknowledged": ("经营者已确认收到", "Acknowledged by the operator"),
    "s_held": ("已办结", "Held"),
    "s_cancelled": ("已取消", "Cancelled"),
    "scheduled_at": ("时间", "When"),
    "place": ("地点", "Place"),
    "subject_text": ("事由", "Subject"),
    "legal_basis": ("依据（留空按等级自动填写）", "Legal basis (blank: by the class)"),
    "basis": ("依据", "Basis"),
    "class_then": ("安排时等级", "Class when scheduled"),
    "outcome": ("结果", "Outcome"),
    "cancel_reason": ("取消理由", "Reason for cancelling"),
    "a_schedule": ("安排提醒或约谈", "Schedule a reminder or interview"),
    "a_outcome": ("记录约谈结果", "Record the outcome"),
    "a_cancel": ("取消", "Cancel it"),
    "interview_time_hint": (
        "北京时间；约谈须填写时间和地点",
        "Beijing time; an interview needs a time and a place",
    ),
    "done_schedule": ("已安排，经营者将收到通知", "Scheduled: the operator is notified"),
    "done_outcome": ("已记录约谈结果", "Outcome recorded"),
    "done_cancel": ("已取消", "Cancelled"),
    "done_verify": ("记录已核实", "Record verified"),
    "done_dismiss": ("记录已不予认定", "Record dismissed"),
    "done_revoke": ("记录已撤销", "Record revoked"),
    "done_correct": ("记录已更正", "Record corrected"),
    "m_assurance": ("计量保证体系", "Metrology assurance"),
    "reach": ("通知送达", "Notice reach"),
    "reach_hint": (
        "依法须告知的通知：推送、App 内已读、短信，各渠道何时送达",
        "Notices the law requires: push, read in the app, SMS, and when each reached the operator",
    ),
    "no_reach": ("暂无须告知的通知", "No required notices yet"),
    "reach_more": ("更早的通知", "Older notices"),
    "reach_newest": ("回到最新", "Back to the newest"),
    "notice": ("通知", "Notice"),
    "written_at": ("发出时间", "Written"),
    "push": ("推送", "Push"),
    "read_inbox": ("App 内已读", "Read in the app"),
    "sms": ("短信", "SMS"),
    "push_none": ("无推送设备", "No device"),
    "push_pending": ("未确认送达（{n} 台设备）", "Not confirmed ({n} devices)"),
    "push_accepted": ("已推送（推送服务已接收）", "Pushed (accepted by the push service)"),
    "unread": ("未读", "Unread"),
    "sms_none": ("无", "None"),
    "sms_pending": ("待发送", "Pending"),
    "sms_sending": ("发送中", "Sending"),
    "sms_sent": ("已发送", "Sent"),
    "sms_delivered": ("已送达", "Delivered"),
    "sms_not_reached": ("未送达", "Not reached"),
    "sms_skipped": ("未发送", "Skipped"),
    "sms_failed": ("发送失败", "Failed"),
    "reason": ("原因", "Reason"),
    "follow_up": ("未送达，请电话或书面通知", "Not reached: phone or write"),
    "follow_up_case": ("在案件页记录已告知经营者", "Record on the case page that the operator was told"),
    "reached_by_inbox_read": ("已读", "Read"),
    "reached_by_sms_delivered": ("短信已送达", "SMS delivered"),
    "reached_by_push_delivered": ("已推送", "Pushed"),
    "case": ("案件", "Case"),
    "kind_interview_scheduled": ("约谈通知", "Interview summons"),
    "kind_interview_cancelled": ("约谈取消", "Interview cancelled"),
    "kind_verification_overdue": ("检定逾期", "Verification overdue"),
    "kind_complaint_handling_ended": ("调解结束", "Mediation ended"),
    "kind_record_published": ("诚信记录公示", "Record published"),
}

_MANAGEMENT = {"not_assessed": "m_not_assessed", "sound": "m_sound", "not_fully_sound": "m_not_fully_sound"}
_TRIGGERS = {"record": "trigger_record", "nightly": "trigger_nightly", "manual": "trigger_manual"}
#: Badge colours of verification, record, interview and class states.
_V_COLOUR = {
    "valid": "green",
    "due_soon": "amber",
    "overdue": "red",
    "failed": "red",
    "never_verified": "red",
}
_R_COLOUR = {"reported": "amber", "verified": "blue", "dismissed": "grey", "revoked": "grey"}
_S_COLOUR = {"scheduled": "amber", "acknowledged": "blue", "held": "green", "cancelled": "grey"}
_C_COLOUR = {"trustworthy": "green", "basically_trustworthy": "blue", "untrustworthy": "red"}


def _texts(locale: Locale) -> dict[str, str]:
    """The workbench's shared texts with this page's own."""
    return {key: pick(text, locale) for key, text in {**pages.TEXT, **TEXT}.items()}


def _local_time(at: datetime) -> str:
    """An instant in Beijing time (SQLite hands back naive UTC)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(bureau_zone()).strftime("%Y-%m-%d %H:%M")


def _base(request: Request, locale: Locale) -> dict[str, Any]:
    return {
        "t": _texts(locale),
        "local_time": _local_time,
        "v_colour": _V_COLOUR,
        "r_colour": _R_COLOUR,
        "s_colour": _S_COLOUR,
        "c_colour": _C_COLOUR,
        "sector_label": lambda s: sector_name(Sector(s), locale),
        "sectors": [(s.value, sector_name(s, locale)) for s in Sector],
        "class_label": lambda c: pick(CLASS_NAMES[c], locale),
    }


# ---- search -------------------------------------------------------------------------------------------------


@router.get("/operators")
def operator_search(request: Request, session: SessionDep) -> Response:
    """Operators in the user's scope by name, code or stall, paged; audited as ``GET /api/v1/operators``."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    locale = pages.locale_of(request)
    params = request.query_params
    q = params.get("q", "").strip()[:100] or None
    stall = params.get("stall", "").strip()[:64] or None
    sector: Sector | None = None
    problems: list[str] = []
    if params.get("sector"):
        try:
            sector = Sector(params["sector"])
        except ValueError:
            problems.append("sector")
    raw_page = params.get("page", "1")
    page_no = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) <= 100_000 else 1
    if raw_page != str(page_no):
        problems.append("page")
    rows, total = operator_service.list_in_scope(
        session,
        me.scope,
        q=q,
        sector=sector,
        jurisdiction_code=None,
        stall=stall,
        limit=PAGE_SIZE,
        offset=(page_no - 1) * PAGE_SIZE,
    )
    filters: dict[str, Any] = {"q": q, "sector": sector, "jurisdiction_code": None}
    if stall is not None:
        filters["stall"] = stall
    staff_read(
        session,
        request,
        me.scope.user,
        action="operator.list",
        entity_type="operator",
        entity_id="*",
        after={"filters": filters, "operator_ids": [r.id for r in rows]},
    )
    kept = {k: v for k, v in (("q", q), ("stall", stall), ("sector", sector)) if v}
    pages_total = max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        return "/workbench/operators?" + urlencode({**kept, "page": n})

    return pages.page(
        request,
        "operators.html",
        {
            **_base(request, locale),
            "me": me,
            "rows": rows,
            "total": total,
            "params": kept,
            "problems": problems,
            "page_no": page_no,
            "pages_total": pages_total,
            "prev_url": page_url(page_no - 1) if page_no > 1 else None,
            "next_url": page_url(page_no + 1) if page_no < pages_total else None,
        },
        locale=locale,
        status_code=422 if problems else 200,
    )


# ---- one operator's file ------------------------------------------------------------------------------------


def _record_steps(record: IntegrityRecord) -> list[str]:
    """The changes the record's state allows (the service's own table), in the order staff weigh them."""
    return [
        c.value for c in RecordChange if c in records.ALLOWED_FROM and record.state in records.ALLOWED_FROM[c]
    ]


def _file_page(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    operator: Operator,
    locale: Locale,
    *,
    status_code: int = 200,
    failed: str | None = None,
    error: str | None = None,
    field_errors: list[tuple[str, str]] | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    operator_id = operator.id or 0
    rid = request_id(request)
    user = me.scope.user
    # The reads the API audits when a client shows the same things (Art. 20): the operator, its stalls, its
    # records, its rating and its interviews, each as its own route logs it.
    staff_read(session, request, user, action="operator.read", entity_type="operator", entity_id=operator_id)
    stalls: list[Stall] = []
    if operator.sector == Sector.market:
        stalls = list(
            session.execute(
                select(Stall).where(col(Stall.market_id) == operator_id).order_by(col(Stall.number))
            ).scalars()
        )
        staff_read(
            session,
            request,
            user,
            action="stall.list",
            entity_type="operator",
            entity_id=operator_id,
            after={"stall_ids": [s.id for s in stalls]},
        )
    today = bureau_date()
    instruments = [
        instrument_read(i, today, locale)
        for i in session.execute(
            select(Instrument).where(col(Instrument.operator_id) == operator_id).order_by(col(Instrument.id))
        ).scalars()
    ]
    flt = records.RecordFilter(operator_id=operator_id)
    record_rows, record_total = records.list_in_scope(session, me.scope, flt, limit=LISTED, offset=0)
    audit.service.record_read(
        session,
        actor=user,
        action="record.list",
        entity_type="integrity_record",
        entity_id=str(operator_id),
        after={
            "filters": {"operator_id": operator_id, "state": None, "kind": None, "source": None},
            "record_ids": [r.id for r in record_rows],
        },
        request_id=rid,
    )
    audit.service.record_read(
        session,
        actor=user,
        action="rating.read",
        entity_type="operator",
        entity_id=operator_id,
        request_id=rid,
    )
    current = rating.current(session, operator)
    history = rating.history(session, operator_id, limit=LISTED, offset=0)
    interviews, interview_total = supervision.list_interviews(
        session, me.scope, operator_id=operator_id, status=None, limit=LISTED, offset=0
    )
    staff_read(
        session,
        request,
        user,
        action="interview.list",
        entity_type="interview",
        entity_id=str(operator_id),
        after={
            "filters": {"operator_id": operator_id, "status": None},
            "interview_ids": [i.id for i in interviews],
        },
    )
    # The same page and audit entry as ``GET /api/v1/notice-reach?operator_id=…``.
    raw_before = request.query_params.get("reach_before", "")
    reach_before = int(raw_before) if raw_before.isdigit() and 0 < int(raw_before) < 2**62 else None
    reach_rows, reach_next = reach.reach_page(
        session, me.scope, operator_id=operator_id, before_id=reach_before, limit=REACH_LISTED
    )
    audit_reach(request, session, user, reach_rows, operator_id=operator_id, follow_up=False)
    commitment = operator_service.current_commitment(session, operator_id)
    stall_numbers = {s.id: s.number for s in stalls}
    return pages.page(
        request,
        "operator.html",
        {
            **_base(request, locale),
            "me": me,
            "o": operator,
            "management_key": _MANAGEMENT[operator.management_assessment.value],
            "stalls": stalls,
            "stall_numbers": stall_numbers,
            "instruments": instruments,
            "records": [(r, _record_steps(r) if me.can_act else []) for r in record_rows],
            "record_total": record_total,
            "instrument_kinds": {k.value for k in INSTRUMENT_KINDS},
            "bad_kinds": {k.value for k in BAD_KINDS},
            "accident_kind": RecordKind.METROLOGY_ACCIDENT.value,
            "kinds": [k.value for k in RecordKind],
            "rating": current,
            "reason_text": (lambda r: r["explanation_zh"] if locale == "zh-CN" else r["explanation_en"]),
            "history": history,
            "trigger_label": lambda tr: pick(TEXT[_TRIGGERS[tr]], locale),
            "commitment": commitment,
            "commitment_text": COMMITMENT_TEXTS.get(commitment.text_version) if commitment else None,
            "interviews": interviews,
            "interview_total": interview_total,
            "open_interview": {"scheduled", "acknowledged"},
            "interview_kinds": [k.value for k in InterviewKind],
            **form_outcome(request, _DONE, failed=failed, error=error, field_errors=field_errors, form=form),
            "reach": reach_rows,
            "reach_more_url": (
                f"/workbench/operators/{operator_id}?reach_before={reach_next}#h-reach"
                if reach_next
                else None
            ),
            "reach_paged": reach_before is not None,
            "reach_title": lambda r: r.titles.get(locale) or next(iter(r.titles.values()), ""),
            "reach_kind": lambda k: pick(TEXT[f"kind_{k}"], locale) if f"kind_{k}" in TEXT else k,
        },
        locale=locale,
        status_code=status_code,
    )


_DONE: Final = frozenset({"schedule", "outcome", "cancel", "verify", "dismiss", "revoke", "correct"})


def _load_operator(session: Session, me: auth.SignedIn, operator_id: int) -> Operator:
    return operator_service.get_in_scope(session, me.scope, operator_id)


@router.get("/operators/{operator_id}")
def operator_file(request: Request, session: SessionDep, operator_id: int) -> Response:
    """One operator's file: profile, stalls, instruments, records, rating, commitment, reminders and interviews."""
    found = viewed(request, session, lambda me: _load_operator(session, me, operator_id))
    if isinstance(found, Response):
        return found
    me, operator, locale = found
    return _file_page(request, session, me, operator, locale)


def _act(
    request: Request,
    session: Session,
    me: auth.SignedIn,
    operator: Operator,
    locale: Locale,
    *,
    name: str,
    anchor: str,
    done: str,
    schema: type[BaseModel],
    fields: dict[str, Any],
    take: Callable[[Any], object],
) -> Response:
    """Validate the form as the API's body, take the step in a savepoint, and show the result or the error."""

    def again(**shown: Any) -> Response:
        return _file_page(request, session, me, operator, locale, failed=name, form=fields, **shown)

    return take_step(
        session,
        locale,
        schema,
        fields,
        take,
        again=again,
        done_url=f"/workbench/operators/{operator.id}?done={done}#{anchor}",
        after_refusal=lambda: session.refresh(operator),
        # A rule over the whole form (an interview needs a time and a place) names no field.
        bare_messages=True,
    )


def _guard(
    request: Request, session: Session, operator_id: int, csrf: str
) -> tuple[auth.SignedIn, Operator, Locale] | Response:
    """The signed-in user, the operator in their scope and the page's language; or the page that says why not."""
    found = viewed(request, session, lambda me: _load_operator(session, me, operator_id))
    if isinstance(found, Response):
        return found
    me, _operator, locale = found
    # Only staff and admins change anything (a read-only auditor is told so first, as on every workbench page).
    refusal = refused(request, me, locale, csrf)
    return refusal if refusal is not None else found


def _guard_row(
    request: Request,
    session: Session,
    operator_id: int,
    csrf: str,
    model: type[R],
    row_id: int,
    what: tuple[str, str],
) -> tuple[auth.SignedIn, Operator, R, Locale] | Response:
    """As ``_guard``, with a row of the operator's file (an interview, a record): 404 for another's."""
    guarded = _guard(request, session, operator_id, csrf)
    if isinstance(guarded, Response):
        return guarded
    me, operator, locale = guarded
    try:
        row = load_scoped(session, me.scope, model, row_id, what, via="operator")
        if row.operator_id != operator_id:
            raise not_found(*what)
    except AppError as exc:
        return not_found_page(request, locale, exc)
    return me, operator, row, locale


def _aware(raw: str) -> Any:
    """A ``datetime-local`` value (no offset) read as Beijing time; anything else is left for the schema."""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return raw
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=bureau_zone())


@router.post("/operators/{operator_id}/interviews")
def schedule_interview(
    request: Request,
    session: SessionDep,
    operator_id: int,
    csrf: Annotated[str, Form(max_length=64)] = "",
    kind: Annotated[str, Form(max_length=20)] = "",
    scheduled_at: Annotated[str, Form(max_length=40)] = "",
    place: Annotated[str, Form(max_length=400)] = "",
    subject: Annotated[str, Form(max_length=4000)] = "",
    legal_basis: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Schedule a reminder or interview through ``supervision.service.schedule_interview`` (``POST /interviews``)."""
    guarded = _guard(request, session, operator_id, csrf)
    if isinstance(guarded, Response):
        return guarded
    me, operator, locale = guarded
    fields: dict[str, Any] = {
        "operator_id": operator_id,
        "kind": kind,
        "scheduled_at": _aware(scheduled_at) if scheduled_at else "",
        "scheduled_at_raw": scheduled_at,
        "place": place,
        "subject": subject,
        "legal_basis": legal_basis,
    }
    return _act(
        request,
        session,
        me,
        operator,
        locale,
        name="schedule",
        anchor="h-interviews",
        done="schedule",
        schema=InterviewCreate,
        fields=fields,
        take=lambda body: supervision.schedule_interview(session, scope=me.scope, data=body),
    )


#: Each interview step: the API's body schema and the service call its route makes.
INTERVIEW_STEPS: Final[
    dict[str, tuple[type[BaseModel], Callable[[Session, Interview, Scope, Any], object]]]
] = {
    "outcome": (
        InterviewOutcome,
        lambda s, iv, scope, b: supervision.record_outcome(s, iv, scope=scope, outcome=b.outcome),
    ),
    "cancel": (
        InterviewCancel,
        lambda s, iv, scope, b: supervision.cancel_interview(s, iv, scope=scope, reason=b.reason),
    ),
}


@router.post("/operators/{operator_id}/interviews/{interview_id}/{step}")
def interview_step(
    request: Request,
    session: SessionDep,
    operator_id: int,
    interview_id: int,
    step: Literal["outcome", "cancel"],
    csrf: Annotated[str, Form(max_length=64)] = "",
    outcome: Annotated[str, Form(max_length=8000)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Record an interview's outcome or cancel it, as ``POST /interviews/{id}/outcome|cancel`` do."""
    guarded = _guard_row(request, session, operator_id, csrf, Interview, interview_id, supervision.INTERVIEW)
    if isinstance(guarded, Response):
        return guarded
    me, operator, interview, locale = guarded
    schema, take = INTERVIEW_STEPS[step]
    return _act(
        request,
        session,
        me,
        operator,
        locale,
        name=f"interview-{interview_id}-{step}",
        anchor=f"interview-{interview_id}",
        done=step,
        schema=schema,
        fields={"outcome": {"outcome": outcome}, "cancel": {"reason": reason}}[step],
        take=lambda body: take(session, interview, me.scope, body),
    )


def _tristate(raw: str) -> bool | str:
    """A yes / no / unchanged select: "" is left out, anything unknown is left for the schema to refuse."""
    choices: dict[str, bool | str] = {"true": True, "false": False}
    return choices.get(raw, raw)


#: Each record action: the API's body schema and the service call its route makes.
RECORD_STEPS: Final[
    dict[str, tuple[type[BaseModel], Callable[[Session, IntegrityRecord, Any, Any], object]]]
] = {
    "verify": (
        RecordVerify,
        lambda s, rec, actor, b: records.verify(
            s,
            rec,
            actor=actor,
            reason=b.reason,
            instrument_still_in_use=b.instrument_still_in_use,
            social_impact=b.social_impact,
        ),
    ),
    "dismiss": (RecordReason, lambda s, rec, actor, b: records.dismiss(s, rec, actor=actor, reason=b.reason)),
    "revoke": (RecordReason, lambda s, rec, actor, b: records.revoke(s, rec, actor=actor, reason=b.reason)),
    "correct": (
        RecordCorrect,
        lambda s, rec, actor, b: records.correct(s, rec, actor=actor, reason=b.reason, changes=b.given()),
    ),
}


@router.post("/operators/{operator_id}/records/{record_id}/{action}")
def record_step(
    request: Request,
    session: SessionDep,
    operator_id: int,
    record_id: int,
    action: Literal["verify", "dismiss", "revoke", "correct"],
    csrf: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    instrument_still_in_use: Annotated[str, Form(max_length=8)] = "",
    social_impact: Annotated[str, Form(max_length=8)] = "",
    kind: Annotated[str, Form(max_length=40)] = "",
    fact_date: Annotated[str, Form(max_length=20)] = "",
    summary: Annotated[str, Form(max_length=4000)] = "",
    evidence_refs: Annotated[str, Form(max_length=8000)] = "",
    instrument_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Verify, dismiss, revoke or correct a record, as ``POST /records/{id}/<action>`` do."""
    guarded = _guard_row(request, session, operator_id, csrf, IntegrityRecord, record_id, records.RECORD)
    if isinstance(guarded, Response):
        return guarded
    me, operator, record, locale = guarded
    fields: dict[str, Any] = {
        "reason": reason,
        "instrument_still_in_use": _tristate(instrument_still_in_use),
        "social_impact": _tristate(social_impact),
    }
    if action == "correct":
        # The form shows the record's values: only what staff changed is a change (the service skips the rest).
        fields |= {
            "kind": kind,
            "fact_date": fact_date,
            "summary": summary,
            "evidence_refs": [line.strip() for line in evidence_refs.splitlines() if line.strip()],
            "instrument_id": instrument_id,
        }
    schema, take = RECORD_STEPS[action]
    return _act(
        request,
        session,
        me,
        operator,
        locale,
        name=f"record-{record_id}-{action}",
        anchor=f"record-{record_id}",
        done=action,
        schema=schema,
        fields=fields,
        take=lambda body: take(session, record, me.scope.user, body),
    )


# ---- the QR sheet -------------------------------------------------------------------------------------------


@router.get("/operators/{operator_id}/qr-sheet.pdf")
def qr_sheet(request: Request, session: SessionDep, operator_id: int, stall: int | None = None) -> Response:
    """A market's stall stickers (or one stall's) as A4 PDF, from the same code as ``gongping qr sheet``."""
    me = auth.current(session, request)
    if me is None:
        return to_login(request)
    locale = pages.locale_of(request)
    try:
        operator = _load_operator(session, me, operator_id)
        if operator.sector != Sector.market:
            raise not_found("市场", "market")
        font = find_cjk_font()
        _market, codes = market_codes(session, operator_id, cjk=font is not None)
        if stall is not None:
            codes = [c for c in codes if c.stall_id == stall]
            if not codes:
                raise not_found("摊位", "stall")
    except AppError as exc:
        return not_found_page(request, locale, exc)
    sheet = render(codes, SheetFormat.pdf, font_path=font)
    name = f"market-{operator_id}" + (f"-stall-{stall}" if stall is not None else "") + "-qr.pdf"
    return Response(
        sheet.data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
    )
