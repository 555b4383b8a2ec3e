"""Server-rendered pages for phone browsers: Jinja2 with autoescape, inline CSS pinned by hash, one static script."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from markupsafe import Markup

from backend.common.templates import environment
from backend.complaints.models import ComplaintCategory, ComplaintStatus
from backend.config import get_settings
from backend.i18n import Locale
from backend.instruments.models import VerificationState
from backend.public.explain import class_legend
from backend.public.labels import CLASS_NAMES, Bilingual, category_name, pick, state_name, status_name
from backend.qr.schemas import QRProfilePublic

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"

#: Instruments listed on the page; a large market shows these and the total (the page stays small).
PAGE_INSTRUMENT_LIMIT = 20

# Every value is escaped unless it is our own Markup (the stylesheet): hostile names render as text.
_ENV = environment(HERE / "templates")


@dataclass(frozen=True)
class StaticFile:
    """A file served under /static with a content hash for cache busting."""

    body: bytes
    media_type: str
    digest: str


def _static(name: str, media_type: str) -> StaticFile:
    body = (STATIC / name).read_bytes()
    return StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:16])


STATIC_FILES: Final[dict[str, StaticFile]] = {"qr.js": _static("qr.js", "text/javascript; charset=utf-8")}
_CSS: Final[str] = (STATIC / "page.css").read_text(encoding="utf-8")
_CSS_HASH: Final[str] = base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode("ascii")

#: No inline script anywhere, the one stylesheet allowed by its hash, requests only to ourselves.
CONTENT_SECURITY_POLICY: Final[str] = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        f"style-src 'sha256-{_CSS_HASH}'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

_TEXT: Final[dict[str, Bilingual]] = {
    "brand": ("公平 · 诚信计量", "Gongping · Honest Measures"),
    "switch": ("English", "中文"),
    "footer": (
        "市场监管部门公示信息，依据《服务业诚信计量监督管理制度建设指南》",
        "Published by the market regulation bureau under the integrity metrology guideline",
    ),
    "stall": ("摊位", "Stall"),
    "holder": ("经营者", "Holder"),
    "in_market": ("所在市场：", "In the market:"),
    "demo_unit": ("诚信计量示范单位", "Integrity demonstration unit"),
    "uscc": ("统一社会信用代码", "Unified social credit code"),
    "integrity_class": ("诚信计量等级", "Integrity class"),
    "as_of": ("评定日期", "rated on"),
    "classes_explained": ("三类等级分别是什么意思？", "What do the three classes mean?"),
    "commitment": ("诚信计量自我承诺", "Integrity self-commitment"),
    "committed_on": ("已作出承诺，签署日期", "Signed on"),
    "no_commitment": ("尚未作出诚信计量自我承诺。", "No integrity self-commitment signed yet."),
    "instruments": ("计量器具", "Measuring instruments"),
    "serial": ("出厂编号", "serial"),
    "valid_until": ("有效期至", "valid until"),
    "no_instruments": ("暂无登记的计量器具。", "No registered instruments."),
    "more_instruments": (
        "共 {total} 台，此处显示前 {shown} 台。",
        "{total} in all; the first {shown} are shown.",
    ),
    "how_to_complain": ("如何投诉", "How to complain"),
    "complain_intro": (
        "遇到缺斤短两、计量作弊或计量器具未检定、超期使用，可在下方直接投诉，投诉将转交属地市场监管部门处理。",
        "Short weight, a rigged or unverified instrument? Complain below: the local market regulation bureau "
        "handles it.",
    ),
    "hotline": (
        "也可拨打 12315 热线或登录全国12315平台（www.12315.cn）投诉举报。",
        "You can also call the 12315 hotline or use the national 12315 platform (www.12315.cn).",
    ),
    "bureau": ("主管部门：", "Responsible bureau:"),
    "open_app": ("在“公平”App 中打开", "Open in the Gongping app"),
    "open_app_hint": (
        "已安装 App 可查看投诉进度、接收处理结果通知。",
        "With the app you can follow your complaint and get notified of the outcome.",
    ),
    "open_app_button": ("打开 App", "Open the app"),
    "open_app_link": ("App 链接", "App link"),
    "f_category": ("问题类型", "What happened"),
    "f_description": ("情况描述", "Description"),
    "f_description_hint": (
        "例如：买了 1 斤苹果，复称只有 8 两；请勿填写身份证号等个人信息。",
        "E.g. paid for 500 g of apples, re-weighed 400 g. Please leave out personal details.",
    ),
    "f_location": ("位置", "Location"),
    "f_location_hint": (
        "点击下方按钮后，浏览器会询问是否允许获取您的位置；位置仅供市场监管部门办案使用，不会公开。",
        "Tap the button and your browser asks for permission; only the bureau handling the case sees it.",
    ),
    "f_locate": ("附上我的位置", "Add my location"),
    "f_address": ("地点（没有定位时填写）", "Place (if you do not share your location)"),
    "f_photos": ("照片（小票、秤的显示屏等，最多 6 张）", "Photos (receipt, scale display…, up to 6)"),
    "f_phone": ("联系电话（选填）", "Phone (optional)"),
    "f_privacy": (
        "您的身份、联系方式、位置和照片原件只有处理投诉的市场监管部门可见，不会告知经营者，也不会公开。",
        "Your identity, contact, location and original photos are seen only by the bureau handling the "
        "complaint: never by the operator or the public.",
    ),
    "f_submit": ("提交投诉", "Submit complaint"),
    "noscript": (
        "提交投诉需要启用 JavaScript；也可拨打 12315 投诉。",
        "Submitting needs JavaScript; you can also call 12315.",
    ),
    "w_code": ("二维码内容：", "Code content:"),
    "w_report": ("举报此二维码", "Report this code"),
}

_MESSAGES: Final[dict[str, Bilingual]] = {
    "sending": ("正在提交…", "Submitting…"),
    "success": (
        # The case number the notices carry and the bureau knows (TS…), not the row id.
        "投诉已提交。投诉编号：{case_no}（查询进度时请提供）；状态：{status}。",
        "Complaint submitted. Case number: {case_no} (quote it when you ask about it); status: {status}.",
    ),
    "network": (
        "网络异常，未能确认是否提交成功。请稍后再点“提交投诉”，不会重复提交。",
        "Network problem: we could not confirm the submission. Tap Submit again later; it will not be filed twice.",
    ),
    "failed": ("提交失败：{message}", "Not submitted: {message}"),
    "too_many": ("最多上传 {n} 张照片。", "At most {n} photos."),
    "too_big": ("单张照片不能超过 25 MB。", "Each photo must be under 25 MB."),
    "need_location": (
        "请附上位置或填写地点，以便转交属地市场监管部门。",
        "Add your location or the place, so the complaint reaches the local bureau.",
    ),
    "locating": ("正在获取位置…", "Getting your location…"),
    "located": ("已附上位置（精度约 {m} 米）。", "Location added (accurate to about {m} m)."),
    "geo_denied": (
        "未获得定位授权，可在下方填写地点代替。",
        "Location permission was not given; you can describe the place instead.",
    ),
    "geo_failed": ("暂时无法获取位置，请稍后重试。", "Could not get your location; try again."),
    "geo_unavailable": ("此浏览器不支持定位。", "This browser cannot share a location."),
}

_FORGED: Final[dict[str, Any]] = {
    "heading": ("警告：此二维码可能是伪造的", "Warning: this QR code may be counterfeit"),
    "body": (
        "此二维码不是市场监管部门签发的，贴纸可能被伪造或覆盖。页面上的任何“诚信等级”或“检定合格”信息都不可信。",
        "This code was not issued by the market regulation bureau: the sticker may be forged or pasted over. "
        "Do not trust any integrity class or verification shown for it.",
    ),
    "note": ("【举报二维码：疑似伪造】", "[Reported QR code: suspected counterfeit]"),
}
_REVOKED: Final[dict[str, Any]] = {
    "heading": ("此二维码已作废", "This QR code has been revoked"),
    "body": (
        "此二维码已停止使用（已换发新码，或经营已停止）。请以现场张贴的最新二维码为准；如现场只有此码，可能是旧码或被冒用。",
        "This code is no longer in use (a new one was issued, or the business closed). Look for the current "
        "sticker; if this is the only one, it may be outdated or misused.",
    ),
    "note": ("【举报二维码：已作废】", "[Reported QR code: revoked]"),
}
_ADVICE: Final[tuple[Bilingual, ...]] = (
    (
        "请勿通过此码付款或提供个人信息。",
        "Do not pay through this code or give personal details.",
    ),
    (
        "可拍下贴纸和摊位照片，在下方举报，或拨打 12315。",
        "Photograph the sticker and the stall and report it below, or call 12315.",
    ),
)


@lru_cache(maxsize=2)
def _common(locale: Locale) -> dict[str, Any]:
    """What every page in a locale shares, built once."""
    other: Locale = "en" if locale == "zh-CN" else "zh-CN"
    js = STATIC_FILES["qr.js"]
    return {
        "lang": locale,
        "other_lang": other,
        "t": {key: pick(text, locale) for key, text in _TEXT.items()},
        # Our own static file, pinned by the CSP hash: inserted verbatim, never user data.
        "css": Markup(_CSS),  # noqa: S704
        "js_url": f"/static/qr.js?v={js.digest}",
        "msgs_json": json.dumps(
            {key: pick(text, locale) for key, text in _MESSAGES.items()}, ensure_ascii=False
        ),
        "statuses_json": json.dumps(
            {s.value: status_name(s, locale) for s in ComplaintStatus}, ensure_ascii=False
        ),
        "categories": [(c.value, category_name(c, locale)) for c in ComplaintCategory],
        "state_names": {s: state_name(s, locale) for s in VerificationState},
        # All three classes, each with every ground the rule set gives it, so a reader can place the one shown.
        "class_legend": [
            (pick(CLASS_NAMES[cls], locale), pick(meaning, locale)) for cls, meaning in class_legend()
        ],
    }


def _app_links(token: str) -> tuple[str, str]:
    """The app's custom-scheme link and the https link the app claims (universal / app links)."""
    settings = get_settings()
    base = settings.app_link_base_url or f"{settings.public_base_url.rstrip('/')}/app"
    return f"gongping://q/{token}", f"{base.rstrip('/')}/q/{token}"


def render_profile(
    profile: QRProfilePublic, *, token: str, locale: Locale, bureau: str | None, class_basis: str
) -> str:
    """The landing page of a genuine code."""
    shown = profile.instruments[:PAGE_INSTRUMENT_LIMIT]
    more = (
        pick(_TEXT["more_instruments"], locale).format(total=profile.instruments_total, shown=len(shown))
        if profile.instruments_total > len(shown)
        else ""
    )
    app_url, app_link = _app_links(token)
    title = profile.operator.name
    if profile.stall is not None and profile.stall.name:
        title = profile.stall.name
    context: Mapping[str, Any] = {
        **_common(locale),
        "p": profile,
        "title": title,
        "instruments": shown,
        "more_instruments": more,
        "bureau": bureau,
        "class_basis": class_basis,
        "app_url": app_url,
        "app_link": app_link,
        "form_token": token,
        "form_note": "",
        "default_category": ComplaintCategory.short_weight.value,
    }
    return _ENV.get_template("qr.html").render(context)


def render_warning(*, token: str, locale: Locale, revoked: bool) -> str:
    """The warning page of a forged or revoked code, with a form to report the sticker."""
    texts = _REVOKED if revoked else _FORGED
    # The token is shown (escaped, shortened) so staff can tell which sticker was reported.
    shown = token if len(token) <= 120 else f"{token[:117]}…"
    context: Mapping[str, Any] = {
        **_common(locale),
        "heading": pick(texts["heading"], locale),
        "body": pick(texts["body"], locale),
        "advice": [pick(line, locale) for line in _ADVICE],
        "shown_token": shown,
        "form_token": "",
        "form_note": f"{pick(texts['note'], locale)} /q/{shown}",
        "default_category": ComplaintCategory.other.value,
    }
    return _ENV.get_template("warning.html").render(context)
