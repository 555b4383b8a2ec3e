"""The public read path: operator search, the public profile, and the QR landing page (Art. 19)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend.common.masking import public_operator_name, search_form
from backend.config import get_settings
from backend.dates import bureau_date
from backend.errors import AppError, not_found
from backend.i18n import Locale
from backend.instruments.models import VerificationState
from backend.jurisdictions.models import DivisionLevel, Jurisdiction
from backend.operators.models import Operator, Sector
from backend.operators.uscc import InvalidUSCC, normalise_uscc
from backend.public import page
from backend.public.integrity import PublicClass, operator_with_facts, public_classes
from backend.public.labels import sector_name
from backend.public.schemas import OperatorSearchPublic, OperatorSummaryPublic
from backend.public.store import next_state_change
from backend.publication.listing import public_name_sql
from backend.qr import service as qr_service
from backend.qr.schemas import QRProfilePublic
from backend.qr.tokens import QRSubject, SubjectKind

#: Deepest offset the public search serves: beyond it a client is crawling, not searching.
MAX_SEARCH_OFFSET = 10_000


def _uscc_or_none(term: str) -> str | None:
    try:
        return normalise_uscc(term)
    except InvalidUSCC:
        return None


def _jurisdiction(session: Session, code: str) -> Jurisdiction:
    jurisdiction = session.get(Jurisdiction, code)
    if jurisdiction is None:
        raise AppError(
            422,
            "invalid_jurisdiction_code",
            "行政区划代码不存在",
            "unknown jurisdiction code",
            {"jurisdiction_code": code},
        )
    return jurisdiction


def search(
    session: Session,
    *,
    q: str | None,
    jurisdiction_code: str | None,
    sector: Sector | None,
    limit: int,
    offset: int,
    locale: Locale,
) -> OperatorSearchPublic:
    """Active operators by name (substring) or exact code, within a jurisdiction and its subdivisions."""
    term = (q or "").strip()
    uscc = _uscc_or_none(term) if term else None
    if jurisdiction_code is None and uscc is None:
        # A name search across the whole country is a scan of millions of rows: a place narrows it.
        raise AppError(
            422,
            "jurisdiction_required",
            "请选择辖区，或输入完整的统一社会信用代码",
            "give a jurisdiction_code, or a complete unified social credit code as q",
        )
    stmt = (
        select(Operator, col(Jurisdiction.name))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        .where(col(Operator.is_active).is_(True))
    )
    if jurisdiction_code is not None:
        place = _jurisdiction(session, jurisdiction_code)
        if place.level == DivisionLevel.county:
            stmt = stmt.where(col(Operator.jurisdiction_code) == place.code)
        else:
            stmt = stmt.where(col(Jurisdiction.path).startswith(place.path, autoescape=True))
    if sector is not None:
        stmt = stmt.where(col(Operator.sector) == sector)
    if uscc is not None:
        stmt = stmt.where(col(Operator.uscc) == uscc)
    elif term:
        # autoescape: % and _ typed by the public are literal characters, not wildcards.
        # The name as the public sees it: a person's name finds no individual business (Art. 18).
        stmt = stmt.where(public_name_sql().contains(search_form(term), autoescape=True))
    total = int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
    rows = session.execute(stmt.order_by(col(Operator.id)).limit(limit).offset(offset)).all()
    classes = public_classes(session, [r[0] for r in rows])
    items = [
        _summary(operator, place_name, classes.get(operator.id or 0, PublicClass(None, None)), locale)
        for operator, place_name in rows
    ]
    return OperatorSearchPublic(items=items, total=total, limit=limit, offset=offset)


def _summary(
    operator: Operator, place_name: str, rating: PublicClass, locale: Locale
) -> OperatorSummaryPublic:
    return OperatorSummaryPublic(
        id=operator.id or 0,
        uscc=operator.uscc,
        name=public_operator_name(operator.name, operator.legal_representative),
        sector=operator.sector,
        sector_name=sector_name(operator.sector, locale),
        address=operator.address,
        jurisdiction_code=operator.jurisdiction_code,
        jurisdiction_name=place_name,
        is_demonstration_unit=operator.is_demonstration_unit,
        integrity_class=rating.cls,
        integrity_class_name=rating.name(locale),
    )


def active_operator(session: Session, operator_id: int) -> Operator:
    """An active operator, or 404 (a closed business has no public profile).

    Read with its public class and commitment, which ``operator_profile`` needs next (one round trip).
    """
    operator = operator_with_facts(session, operator_id)
    if operator is None or not operator.is_active:
        raise not_found("经营者", "operator")
    return operator


def operator_profile(session: Session, operator: Operator, locale: Locale) -> QRProfilePublic:
    """An operator's public profile: the same shape a scan of its unit code shows."""
    target = qr_service.QRTarget(
        subject=QRSubject(
            kind=SubjectKind.OPERATOR,
            subject_id=operator.id or 0,
            serial=operator.qr_serial,
            kid=qr_service.key_ring().active_kid or 0,
        ),
        operator=operator,
        stall=None,
        instrument=None,
    )
    return qr_service.public_profile(session, target, locale)


#: Bureau names by division code, with when to re-read them: reference data, changed by a migration.
_BUREAUS: dict[str, tuple[str | None, float]] = {}
_BUREAU_SECONDS = 3600.0


def bureau_name(session: Session, jurisdiction_code: str) -> str | None:
    """The name of the bureau supervising a division (Art. 6), cached per process for an hour."""
    now = time.monotonic()
    cached = _BUREAUS.get(jurisdiction_code)
    if cached is not None and cached[1] > now:
        return cached[0]
    name = session.execute(
        select(col(Jurisdiction.bureau_name)).where(col(Jurisdiction.code) == jurisdiction_code)
    ).scalar_one_or_none()
    # Bounded by the division table (a few thousand codes): operators only carry existing codes.
    _BUREAUS[jurisdiction_code] = (name, now + _BUREAU_SECONDS)
    return name


@dataclass(frozen=True)
class RenderedPage:
    """An HTML page and its status, with what the shared store needs to keep it (see ``public.store``)."""

    status: int
    html: str
    operator_ids: tuple[int, ...] = ()
    fresh_until: date | None = None


def fresh_until(profile: QRProfilePublic, today: date | None = None) -> date | None:
    """The first day on which this profile would read differently with no change to the data: an instrument
    listed on it turns due soon or overdue (the state is derived from the date).
    """
    settled = (VerificationState.failed, VerificationState.never_verified)
    return next_state_change(
        ((i.verification_state not in settled, i.valid_until) for i in profile.instruments),
        today=today or bureau_date(),
        due_days=get_settings().verification_due_days,
    )


def qr_page(session: Session, token: str, locale: Locale) -> RenderedPage:
    """The landing page behind a scanned code, or the warning page (404 forged, 410 revoked)."""
    try:
        target = qr_service.resolve(session, token, forged_status=404, revoked_status=410)
    except AppError as exc:
        if exc.code not in ("forged_qr", "revoked_qr"):
            raise
        revoked = exc.code == "revoked_qr"
        return RenderedPage(exc.status, page.render_warning(token=token, locale=locale, revoked=revoked))
    profile = qr_service.public_profile(session, target, locale)
    bureau = bureau_name(session, target.operator.jurisdiction_code)
    html = page.render_profile(
        profile, token=token, locale=locale, bureau=bureau, class_basis=PublicClass.basis(locale)
    )
    return RenderedPage(200, html, (target.operator.id or 0,), fresh_until(profile))
