"""What a member of the public reads: names of sectors, classes, states and complaint categories, zh-CN and en."""

from __future__ import annotations

from typing import Final

from backend.complaints.models import ComplaintCategory, ComplaintStatus
from backend.i18n import Locale
from backend.instruments.models import VerificationState
from backend.operators.models import SECTOR_NAMES_ZH, Sector
from backend.records.rules import IntegrityClass

Bilingual = tuple[str, str]

SECTOR_NAMES_EN: Final[dict[Sector, str]] = {
    Sector.market: "Farmers' market",
    Sector.fuel_station: "Petrol / gas station",
    Sector.catering: "Restaurant / catering",
    Sector.retail: "Shop / supermarket",
    Sector.medical: "Medical institution",
    Sector.optical: "Optician",
    Sector.road_transport: "Road transport (taxi)",
    Sector.utility: "Public utility",
}

#: The names of Art. 10's classes; what a class means for an operator is said from the rule that decided it
#: (``backend.public.explain``), since one class can have several grounds.
CLASS_NAMES: Final[dict[IntegrityClass, Bilingual]] = {
    IntegrityClass.TRUSTWORTHY: ("守信", "Trustworthy"),
    IntegrityClass.BASICALLY_TRUSTWORTHY: ("基本守信", "Basically trustworthy"),
    IntegrityClass.UNTRUSTWORTHY: ("失信", "Untrustworthy"),
}
NOT_RATED: Final[tuple[Bilingual, Bilingual]] = (
    ("暂无评级", "Not yet rated"),
    ("该经营者暂无已公开的诚信计量评级。", "No integrity class has been published for this operator yet."),
)
CLASS_BASIS: Final[Bilingual] = (
    "依据《服务业诚信计量监督管理制度建设指南》第十条、第十三条",
    "Under Arts. 10 and 13 of the guideline on integrity metrology supervision in the service industry",
)

VERIFICATION_STATE_NAMES: Final[dict[VerificationState, Bilingual]] = {
    VerificationState.valid: ("检定合格，在有效期内", "Verified, valid"),
    VerificationState.due_soon: ("检定即将到期", "Verification due soon"),
    VerificationState.overdue: ("超过检定周期", "Verification overdue"),
    VerificationState.failed: ("检定不合格", "Failed verification"),
    VerificationState.never_verified: ("未经检定", "Never verified"),
}

CATEGORY_NAMES: Final[dict[ComplaintCategory, Bilingual]] = {
    ComplaintCategory.short_weight: ("缺斤短两", "Short weight"),
    ComplaintCategory.instrument_cheating: (
        "计量作弊（秤、加油机等被做手脚）",
        "Rigged instrument (cheating)",
    ),
    ComplaintCategory.unverified_instrument: ("计量器具未经检定", "Unverified instrument"),
    ComplaintCategory.overdue_instrument: ("计量器具超过检定周期", "Instrument past its verification date"),
    ComplaintCategory.net_content: ("定量包装商品净含量不足", "Prepackaged goods short of net content"),
    ComplaintCategory.other: ("其他计量问题", "Other metrology problem"),
}
CATEGORY_DESCRIPTIONS: Final[dict[ComplaintCategory, Bilingual]] = {
    ComplaintCategory.short_weight: (
        "称重商品实际重量少于结算重量。",
        "Goods sold by weight weigh less than what was charged.",
    ),
    ComplaintCategory.instrument_cheating: (
        "秤、加油机、出租车计价器等计量器具被改装或作弊。",
        "A scale, fuel dispenser, taximeter or other instrument has been tampered with.",
    ),
    ComplaintCategory.unverified_instrument: (
        "用于贸易结算的计量器具没有检定合格标识。",
        "An instrument used in trade carries no valid verification mark.",
    ),
    ComplaintCategory.overdue_instrument: (
        "计量器具的检定有效期已过仍在使用。",
        "An instrument is still in use after its verification expired.",
    ),
    ComplaintCategory.net_content: (
        "定量包装商品的实际净含量少于标注量。",
        "A prepackaged product holds less than its label states.",
    ),
    ComplaintCategory.other: ("其他与计量有关的问题。", "Any other problem with weights and measures."),
}

STATUS_NAMES: Final[dict[ComplaintStatus, Bilingual]] = {
    ComplaintStatus.received: (
        "已登记，正在转交属地市场监管部门",
        "Received; being sent to the local bureau",
    ),
    ComplaintStatus.routed: ("已转交属地市场监管部门", "Sent to the local bureau"),
    ComplaintStatus.accepted: ("已受理", "Accepted"),
    ComplaintStatus.rejected: ("不予受理", "Not accepted"),
    ComplaintStatus.investigating: ("调查处理中", "Under investigation"),
    ComplaintStatus.substantiated: ("经查属实", "Substantiated"),
    ComplaintStatus.unsubstantiated: ("经查不属实", "Not substantiated"),
    ComplaintStatus.mediated: ("调解达成协议", "Settled by mediation"),
    ComplaintStatus.closed: ("已办结", "Closed"),
}


def pick(text: Bilingual, locale: Locale) -> str:
    """One side of a zh/en pair."""
    return text[0] if locale == "zh-CN" else text[1]


def sector_name(sector: Sector, locale: Locale) -> str:
    """A sector's name (Art. 3)."""
    return SECTOR_NAMES_ZH[sector] if locale == "zh-CN" else SECTOR_NAMES_EN[sector]


def category_name(category: ComplaintCategory, locale: Locale) -> str:
    """A complaint category's name."""
    return pick(CATEGORY_NAMES.get(category, (category.value, category.value)), locale)


def status_name(status: ComplaintStatus | str, locale: Locale) -> str:
    """A complaint status's name; a status added later shows as its code rather than failing."""
    try:
        return pick(STATUS_NAMES[ComplaintStatus(status)], locale)
    except (KeyError, ValueError):
        return str(status)


def state_name(state: VerificationState, locale: Locale) -> str:
    """An instrument's verification state."""
    return pick(VERIFICATION_STATE_NAMES[state], locale)
