"""Rendering for the workbench: Jinja2 with autoescape, texts in zh-CN and en, hashed static files, the CSP."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from backend.cases.models import CaseState, HandledBy, NoticeMethod, RejectionReason
from backend.cases.service import COMPLAINT_STATUS, HANDLED_BY_LABELS, REJECTION_LABELS
from backend.complaints.models import ComplaintCategory
from backend.i18n import Locale, normalise_locale, request_locale
from backend.public.labels import Bilingual, category_name, pick, status_name
from backend.records.rules import KIND_INFO, RecordKind

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
LANG_COOKIE: Final = "gp_wb_lang"

_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    # Complaint texts, names and findings are the public's and staff's words: always escaped.
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)


@dataclass(frozen=True)
class StaticFile:
    """A file served under /workbench/static with a content hash for cache busting."""

    body: bytes
    media_type: str
    digest: str


_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _load_static() -> dict[str, StaticFile]:
    files = {}
    for path in sorted(STATIC.iterdir()):
        if path.suffix in _TYPES:
            body = path.read_bytes()
            files[path.name] = StaticFile(body, _TYPES[path.suffix], hashlib.sha256(body).hexdigest()[:16])
    return files


STATIC_FILES: Final[dict[str, StaticFile]] = _load_static()

#: No inline script or style anywhere: every script and stylesheet is one of ours, from this origin.
CONTENT_SECURITY_POLICY: Final[str] = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

TEXT: Final[dict[str, Bilingual]] = {
    "brand": ("公平 · 监管工作台", "Gongping · Bureau workbench"),
    "skip": ("跳到正文", "Skip to content"),
    "switch": ("English", "中文"),
    "nav_queue": ("案件", "Cases"),
    "nav_dashboard": ("统计", "Dashboard"),
    "sign_out": ("退出登录", "Sign out"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "login_title": ("工作人员登录", "Staff sign-in"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "sign_in": ("登录", "Sign in"),
    "login_hint": (
        "仅限市场监管部门工作人员和系统管理员使用；30 分钟无操作将自动退出。",
        "For market regulation bureau staff and administrators; you are signed out after 30 minutes idle.",
    ),
    "login_expired": ("登录已失效，请重新登录。", "Your session has ended; please sign in again."),
    "csrf_failed": (
        "表单已过期，请刷新页面后重试。",
        "The form has expired; reload the page and try again.",
    ),
    "forbidden_title": ("无权使用工作台", "No access to the workbench"),
    "forbidden_body": (
        "工作台仅供市场监管部门工作人员和系统管理员使用。经营者、消费者、监督员及合作单位请使用各自的 App 或接口。",
        "The workbench is for market regulation bureau staff and administrators only. Operators, consumers, "
        "supervisors and partner bodies use their own app or interface.",
    ),
    "not_found_title": ("未找到", "Not found"),
    "back_to_queue": ("返回案件列表", "Back to the case list"),
    "queue_title": ("案件列表", "Cases"),
    "filters": ("筛选", "Filters"),
    "f_status": ("状态", "Status"),
    "f_any": ("全部", "Any"),
    "f_overdue": ("已超期", "Overdue"),
    "f_due_within": ("剩余工作日不超过", "Due within (working days)"),
    "f_escalated": ("已上报上级", "Escalated"),
    "f_category": ("问题类型", "Category"),
    "f_county": ("辖区代码", "Division code"),
    "f_apply": ("筛选", "Apply"),
    "f_clear": ("清除筛选", "Clear"),
    "yes": ("是", "Yes"),
    "no": ("否", "No"),
    "counts": ("各状态案件数", "Cases by status"),
    "total": ("合计", "Total"),
    "col_case_no": ("案件编号", "Case no."),
    "col_operator": ("经营者", "Operator"),
    "col_category": ("问题类型", "Category"),
    "col_status": ("状态", "Status"),
    "col_due": ("期限", "Deadline"),
    "col_received": ("收到时间", "Received"),
    "no_cases": ("没有符合条件的案件。", "No cases match."),
    "next_page": ("下一页", "Next page"),
    "first_page": ("第一页", "First page"),
    "days_left": ("剩 {n} 个工作日", "{n} working days left"),
    "due_today": ("今日到期", "Due today"),
    "days_over": ("超期 {n} 个工作日", "{n} working days overdue"),
    "no_deadline": ("无期限", "No deadline"),
    "photos_processing": ("照片处理中", "Photos processing"),
    "escalated_badge": ("已上报", "Escalated"),
    "triage_badge": ("待分派", "Triage"),
    "unknown_operator": ("未确定经营者", "Operator not identified"),
    "case_title": ("案件 {no}", "Case {no}"),
    "complaint": ("投诉内容", "Complaint"),
    "description": ("情况描述", "Description"),
    "category": ("问题类型", "Category"),
    "filer": ("投诉人", "Filer"),
    "contact": ("联系方式", "Contact"),
    "subject": ("被投诉对象", "About"),
    "stall": ("摊位", "Stall"),
    "instrument": ("计量器具", "Instrument"),
    "address": ("地点", "Place"),
    "location": ("位置", "Location"),
    "accuracy": ("精度约 {m} 米", "accurate to about {m} m"),
    "weighing": ("复称核查", "Weighing check"),
    "declared": ("标称", "Declared"),
    "measured": ("实测", "Measured"),
    "shortfall": ("短缺", "Short by"),
    "permitted": ("允许误差", "Permitted"),
    "within": ("在允许误差内", "Within tolerance"),
    "beyond": ("超出允许误差", "Beyond tolerance"),
    "photos": ("照片", "Photos"),
    "no_photos": ("无照片。", "No photos."),
    "photo_open": ("查看照片 {n}", "View photo {n}"),
    "photo_pending": ("处理中", "Processing"),
    "photo_rejected": ("未通过处理", "Rejected"),
    "photo_title": ("照片 {id}", "Photo {id}"),
    "original": ("查看原件（含 EXIF，查看将记入审计日志）", "Open the original (with EXIF; this is audited)"),
    "evidence": ("取证信息", "Evidence"),
    "sha256": ("原件 SHA-256", "Original SHA-256"),
    "size": ("原件大小", "Original size"),
    "dimensions": ("尺寸", "Dimensions"),
    "duplicates": ("与以下照片重复", "Duplicate of photos"),
    "back_to_case": ("返回案件", "Back to the case"),
    "routing": ("分派依据", "Routing"),
    "rule": ("规则 {n}", "Rule {n}"),
    "candidates": ("候选辖区", "Candidates"),
    "low_confidence": ("分派置信度低，请核对", "Low confidence: please check"),
    "location_mismatch": ("定位与经营者登记地址不符", "Geotag far from the operator's registered place"),
    "bureau": ("承办单位", "Bureau"),
    "deadlines": ("法定期限", "Statutory deadlines"),
    "due_on": ("截止日期", "Due on"),
    "working_days": ("{n} 个工作日", "{n} working days"),
    "ended": ("已完成", "Met"),
    "open": ("进行中", "Open"),
    "overdue": ("已超期", "Overdue"),
    "calendar_inexact": (
        "节假日安排未公布，按工作日估算",
        "holiday schedule not published; weekdays assumed",
    ),
    "timeline": ("办理记录", "History"),
    "findings": ("调查结论", "Findings"),
    "records": ("产生的诚信记录", "Integrity records made"),
    "actions": ("办理", "Actions"),
    "no_actions": ("当前状态下没有可办理的操作。", "No action is possible in this state."),
    "note": ("备注", "Note"),
    "a_accepted": ("受理", "Accept"),
    "a_rejected": ("不予受理", "Do not accept"),
    "a_investigating": ("开始调查", "Start investigating"),
    "a_substantiated": ("经查属实", "Substantiate"),
    "a_unsubstantiated": ("经查不属实", "Not substantiated"),
    "a_mediated": ("调解达成协议", "Record mediation agreement"),
    "a_closed": ("办结", "Close"),
    "a_reopened": ("重新办理", "Reopen"),
    "a_transferred": ("移送", "Transfer"),
    "a_operator_notified": ("记录告知经营者方式", "Record how the operator was told"),
    "reason": ("理由", "Reason"),
    "reject_reason": ("不予受理理由", "Reason for not accepting"),
    "handled_by": ("已受理的机构", "Handled by"),
    "duplicate_of": ("重复的案件 ID", "Duplicate of case ID"),
    "fact_date": ("事实发生日期", "Date of the facts"),
    "record_kinds": ("另行认定的记录类型", "Further record kinds"),
    "instrument_id": ("计量器具 ID（可选）", "Instrument ID (optional)"),
    "operator_id": ("经营者 ID（投诉未指明时）", "Operator ID (if the complaint named none)"),
    "still_in_use": ("该器具仍在使用", "The instrument is still in use"),
    "agreement": ("协议要点", "Agreement"),
    "close_reason": ("理由（尚未作出结论时必填）", "Reason (required before a finding)"),
    "jurisdiction_code": ("移送至（行政区划代码）", "Transfer to (division code)"),
    "method": ("告知方式", "Method"),
    "choose": ("请选择", "Choose"),
    "error": ("未能办理：{message}", "Not done: {message}"),
    "done": ("已办理：{action}", "Done: {action}"),
    "nav_reviews": ("公示审核", "Publication review"),
    "reviews_title": ("待审核的公示申请", "Publication requests awaiting review"),
    "no_reviews": ("没有待审核的公示申请。", "No publication request is waiting."),
    "record": ("记录", "Record"),
    "record_state": ("记录状态", "Record state"),
    "requested_at": ("申请时间", "Requested"),
    "publication": ("公示", "Publication"),
    "pub_none": ("未公示", "Not published"),
    "pub_pending": ("待审核", "Awaiting review"),
    "pub_published": ("已公示", "Published"),
    "a_publish_request": ("申请公示", "Request publication"),
    "a_publish_approve": ("审核通过并公示", "Approve and publish"),
    "a_publish_refuse": ("不予公示", "Refuse"),
    "check_secret": ("不含国家秘密、商业秘密", "Contains no state or trade secret"),
    "check_personal": ("不含个人隐私", "Contains no personal data"),
    "check_other_organs": ("不含其他机关尚未公开的信息", "Contains nothing another organ has not disclosed"),
    "four_eyes": (
        "您录入、核实或申请了此记录，须由另一名工作人员审核。",
        "You entered, verified or requested this record: another staff member must review it.",
    ),
    "done_publish": ("已提交公示申请", "Publication requested"),
    "done_approve": ("已审核通过，记录已公示", "Approved: the record is public"),
    "done_refuse": ("已不予公示", "Refused"),
    "dashboard_title": ("统计", "Dashboard"),
    "weekdays": ("周一,周二,周三,周四,周五,周六,周日", "Mon,Tue,Wed,Thu,Fri,Sat,Sun"),
    "week_complaints": ("本周收到的投诉举报", "Complaints and reports received this week"),
    "on_time": ("近 {n} 天法定期限内完成的比例", "Deadlines met on time, last {n} days"),
    "acceptance_on_time": ("受理决定按期", "Acceptance decided in time"),
    "closure_on_time": ("处理按期", "Handled in time"),
    "no_data": ("暂无数据", "no data yet"),
    "overdue_by_county": ("各区县超期案件", "Overdue cases by county"),
    "ratings": ("经营者诚信等级分布", "Operators by integrity class"),
    "top_operators": ("查实投诉最多的经营者", "Operators with the most substantiated complaints"),
    "none_overdue": ("没有超期案件。", "No overdue case."),
    "none_substantiated": ("暂无查实的投诉。", "No substantiated complaint yet."),
    "nav_map": ("地图", "Map"),
    "map_title": ("案件地图", "Case map"),
    "map_noscript": ("地图需要启用 JavaScript。", "The map needs JavaScript."),
    "map_as_list": ("以列表查看同样的案件", "See the same cases as a list"),
    "map_points": ("地图上共 {n} 件案件（点击进入案件）。", "{n} cases on the map (click one to open it)."),
    "map_hint": (
        "位置精确到约 100 米；案件页显示完整位置。区县边界为简化轮廓。",
        "Positions are rounded to about 100 m; the case page has the exact spot. County outlines are simplified.",
    ),
    "invalid_input": ("填写有误，请检查以下各项", "Please correct the fields below"),
}

_NOTICE_METHODS: Final[dict[NoticeMethod, Bilingual]] = {
    NoticeMethod.phone: ("电话", "Phone"),
    NoticeMethod.sms: ("短信", "SMS"),
    NoticeMethod.letter: ("书面（邮寄、送达）", "Letter"),
    NoticeMethod.in_person: ("当面告知", "In person"),
}


def asset_url(name: str) -> str:
    """The URL of a workbench static file, with its content hash."""
    return f"/workbench/static/{name}?v={STATIC_FILES[name].digest}"


def locale_of(request: Request) -> Locale:
    """``?lang=`` wins, then the workbench's language cookie, then Accept-Language."""
    if request.query_params.get("lang"):
        return request_locale(request)
    cookie = request.cookies.get(LANG_COOKIE)
    return normalise_locale(cookie) if cookie else request_locale(request)


def state_label(state: CaseState | str, locale: Locale) -> str:
    """A case state as the filer's status reads (the same words on both sides)."""
    try:
        return status_name(COMPLAINT_STATUS[CaseState(state)], locale)
    except (KeyError, ValueError):
        return str(state)


def common(request: Request, locale: Locale) -> dict[str, Any]:
    """What every page shares: texts, labels, assets and the language switch."""
    other: Locale = "en" if locale == "zh-CN" else "zh-CN"
    return {
        "lang": locale,
        "other_lang": other,
        "t": {key: pick(text, locale) for key, text in TEXT.items()},
        "css_url": f"/workbench/static/workbench.css?v={STATIC_FILES['workbench.css'].digest}",
        "js_url": f"/workbench/static/workbench.js?v={STATIC_FILES['workbench.js'].digest}",
        "asset": asset_url,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "states": [(s.value, state_label(s, locale)) for s in CaseState],
        "state_label": lambda s: state_label(s, locale),
        "categories": [(c.value, category_name(c, locale)) for c in ComplaintCategory],
        "category_label": lambda c: category_name(ComplaintCategory(c), locale),
        "reasons": [(r.value, pick(REJECTION_LABELS[r], locale)) for r in RejectionReason],
        "handled_by": [(h.value, pick(HANDLED_BY_LABELS[h], locale)) for h in HandledBy],
        "methods": [(m.value, pick(label, locale)) for m, label in _NOTICE_METHODS.items()],
        "kind_label": lambda k: (
            KIND_INFO[RecordKind(k)].label_zh if locale == "zh-CN" else KIND_INFO[RecordKind(k)].label_en
        ),
    }


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    locale: Locale,
    status_code: int = 200,
) -> HTMLResponse:
    """A rendered page with the CSP, never cached (it shows personal data)."""
    body = _ENV.get_template(template).render({**common(request, locale), **context})
    return HTMLResponse(
        body,
        status_code=status_code,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"},
    )
