"""Rendering for the workbench: Jinja2 with autoescape, texts in zh-CN and en, hashed static files, the CSP."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse

from backend.cases.models import CaseState, HandledBy, NoticeMethod, RejectionReason
from backend.cases.service import COMPLAINT_STATUS, HANDLED_BY_LABELS, REJECTION_LABELS
from backend.common.templates import environment
from backend.complaints.models import ComplaintCategory
from backend.i18n import Locale, normalise_locale, request_locale
from backend.public.labels import Bilingual, category_name, pick, status_name
from backend.records.rules import KIND_INFO, RecordKind

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
LANG_COOKIE: Final = "gp_wb_lang"

# Complaint texts, names and findings are the public's and staff's words: always escaped.
_ENV = environment(HERE / "templates")


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
    "nav_operators": ("经营者", "Operators"),
    "sign_out": ("退出登录", "Sign out"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "login_title": ("工作人员登录", "Staff sign-in"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "sign_in": ("登录", "Sign in"),
    "login_hint": (
        "仅限市场监管部门工作人员、审计员和系统管理员使用；30 分钟无操作将自动退出。",
        "For market regulation bureau staff, auditors and administrators; you are signed out after 30 minutes "
        "idle.",
    ),
    "login_expired": ("登录已失效，请重新登录。", "Your session has ended; please sign in again."),
    "csrf_failed": (
        "表单已过期，请刷新页面后重试。",
        "The form has expired; reload the page and try again.",
    ),
    "forbidden_title": ("无权使用工作台", "No access to the workbench"),
    "forbidden_body": (
        "工作台仅供市场监管部门工作人员、审计员和系统管理员使用。经营者、消费者、监督员及合作单位请使用各自的 App 或接口。",
        "The workbench is for market regulation bureau staff, auditors and administrators only. Operators, consumers, "
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
    "case_map_label": (
        "投诉地点在所属区县地图上的位置",
        "Where the report was made, on its county's outline",
    ),
    "map_as_list": ("以列表查看同样的案件", "See the same cases as a list"),
    "map_points": ("地图上共 {n} 件案件（点击进入案件）。", "{n} cases on the map (click one to open it)."),
    "map_hint": (
        "位置精确到约 100 米；案件页显示完整位置。区县边界为简化轮廓。",
        "Positions are rounded to about 100 m; the case page has the exact spot. County outlines are simplified.",
    ),
    "invalid_input": ("填写有误，请检查以下各项", "Please correct the fields below"),
    # ---- review queues (backend/workbench/reviews.py)
    "nav_review_queues": ("审核", "Reviews"),
    "reviews_home_title": ("待审核事项", "Review queues"),
    "waiting": ("{n} 项待办", "{n} waiting"),
    "late": ("其中 {n} 项已超期", "{n} of them overdue"),
    "rq_records": ("待核实的报送记录", "Reported records to verify"),
    "rq_records_hint": (
        "技术机构、行业组织和监督员报送的记录，经调查核实后才计入诚信等级。",
        "Records reported by institutions, associations and supervisors count toward a class only once verified.",
    ),
    "rq_corrections": ("更正申请", "Correction requests"),
    "rq_corrections_hint": (
        "经营者对诚信信息提出的变更、撤销申请，须在期限内作出决定。",
        "Operators' requests to correct or revoke integrity information, to be decided before the deadline.",
    ),
    "rq_publication": ("公示审核", "Publication review"),
    "rq_publication_hint": (
        "记录公示前须由录入人以外的另一名工作人员审核。",
        "A record is published only after a second staff member, not its author, has reviewed it.",
    ),
    "rq_intake": ("导入任务", "Intake jobs"),
    "rq_intake_hint": (
        "辖区内技术机构、行业组织上传的 CSV 文件的导入进度和错误报告。",
        "Progress and error reports of the CSV files uploaded by institutions and associations in scope.",
    ),
    "source": ("报送方", "Reported by"),
    "src_institution": ("计量技术机构", "Technical institution"),
    "src_association": ("行业组织", "Industry association"),
    "src_supervisor": ("计量诚信监督员", "Integrity supervisor"),
    "fact_date_short": ("事实日期", "Date of facts"),
    "reported_at": ("报送时间", "Reported"),
    "no_reported": ("没有待核实的记录。", "No record waits for verification."),
    "a_verify": ("核实属实", "Verify"),
    "a_dismiss": ("核实不属实（驳回）", "Dismiss as unfounded"),
    "verify_reason": ("核实说明（可选）", "Findings (optional)"),
    "finding_unset": ("不作认定", "No finding"),
    "social_impact": ("造成社会影响", "Caused social impact"),
    "done_verify": ("已核实，记录计入诚信等级", "Verified: the record now counts"),
    "done_dismiss": ("已驳回", "Dismissed"),
    "no_corrections": ("没有待决定的更正申请。", "No correction request waits for a decision."),
    "subject_record": ("诚信记录", "Integrity record"),
    "subject_operator": ("经营者基本信息", "Operator's basic information"),
    "subject_instrument": ("计量器具信息", "Instrument data"),
    "asks_correct": ("申请变更", "Asks for a correction"),
    "asks_revoke": ("申请撤销", "Asks for revocation"),
    "requested_change": ("申请变更的内容", "Change asked for"),
    "operator_reasons": ("申请理由", "The operator's reasons"),
    "documents": ("证明材料", "Documents"),
    "version_changed": (
        "记录在申请后已变更（申请时为第 {v} 版）",
        "The record changed since (the request saw version {v})",
    ),
    "decision": ("决定", "Decision"),
    "d_correct": ("予以变更（按申请内容）", "Correct as requested"),
    "d_revoke": ("予以撤销", "Revoke"),
    "d_reject": ("不予更正", "Refuse"),
    "decision_reasons": ("决定理由（将告知经营者）", "Reasons (the operator is told)"),
    "a_decide": ("作出决定", "Decide"),
    "done_decide": ("已作出决定，经营者将收到通知", "Decided: the operator is told"),
    "no_jobs": ("辖区内没有导入任务。", "No intake job in scope."),
    "job_title": ("导入任务 {id}", "Intake job {id}"),
    "job_verifications": ("检定结果", "Verification results"),
    "job_association_reports": ("行业组织报送", "Association reports"),
    "job_violation_reports": ("违法行为报送", "Violation reports"),
    "job_kind": ("类型", "Kind"),
    "job_file": ("文件", "File"),
    "job_by": ("上传单位", "Uploaded by"),
    "job_state": ("状态", "State"),
    "job_progress": ("进度", "Progress"),
    "rows_of": ("{done} / {total} 行", "{done} of {total} rows"),
    "st_queued": ("排队中", "Queued"),
    "st_running": ("导入中", "Running"),
    "st_succeeded": ("已完成", "Finished"),
    "st_failed": ("失败", "Failed"),
    "c_imported": ("已导入", "Imported"),
    "c_duplicates": ("重复", "Duplicates"),
    "c_rejected": ("有错误的行", "Rows with errors"),
    "c_records": ("生成的记录", "Records made"),
    "failure": ("失败原因", "Why it failed"),
    "refresh": ("刷新进度", "Refresh progress"),
    "live_hint": ("页面会自动更新进度。", "This page updates the progress by itself."),
    "row_errors": ("行错误（前 {n} 条）", "Row errors (first {n})"),
    "no_row_errors": ("没有行错误。", "No row errors."),
    "download_errors": (
        "下载完整错误报告（CSV，共 {n} 条）",
        "Download the whole error report (CSV, {n} rows)",
    ),
    "col_row": ("行号", "Row"),
    "col_column": ("列", "Column"),
    "col_code": ("错误代码", "Code"),
    "col_message": ("说明", "Message"),
    "open_job": ("查看任务 {id}", "Open job {id}"),
    "read_only_title": ("只读账号", "Read-only account"),
    "read_only_body": (
        "审计员账号只能查看，不能办理任何操作。",
        "An auditor's account reads only; it cannot take any action.",
    ),
    "read_only_badge": ("只读", "Read-only"),
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
