"""The app's QR key ring, codes for operators, stalls and instruments, revocation by serial, public profiles."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from sqlalchemy import func
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import Actor, snapshot
from backend.auth.scope import Scope
from backend.common.masking import mask_name, public_operator_name, public_stall_name
from backend.config import get_settings
from backend.dates import bureau_date
from backend.errors import AppError, not_found
from backend.i18n import Locale
from backend.instruments import service as instrument_service
from backend.instruments.catalogue import BY_CODE
from backend.instruments.models import Instrument, InstrumentStatus
from backend.operators import service as operator_service
from backend.operators.commitments import COMMITMENT_TEXTS
from backend.operators.models import Operator, Stall
from backend.public.integrity import public_facts
from backend.public.labels import sector_name
from backend.qr.schemas import (
    InstrumentPublic,
    OperatorPublic,
    QRCodeRead,
    QRKind,
    QRProfilePublic,
    SelfCommitmentPublic,
    StallPublic,
)
from backend.qr.tokens import ForgedQR, QRKeyRing, QRSubject, SubjectKind

log = logging.getLogger(__name__)

#: Instruments listed on one public profile; a market with more shows the first ones and the total.
PUBLIC_INSTRUMENT_LIMIT = 100

Subject = Operator | Stall | Instrument


@lru_cache(maxsize=4)
def _ring(secret: str, active_kid: int, retired_kids: tuple[int, ...]) -> QRKeyRing:
    # Key derivation is HKDF plus Ed25519 key setup: cheap, but not per scan at thousands a second.
    return QRKeyRing.from_secret(secret, active_kid=active_kid, retired_kids=retired_kids)


def key_ring() -> QRKeyRing:
    """The key ring from the settings: sign with the active kid, accept the retired ones too."""
    s = get_settings()
    retired = tuple(sorted(k for k in set(s.qr_retired_kids) if k != s.qr_active_kid))
    return _ring(s.secret_key, s.qr_active_kid, retired)


def code_url(token: str) -> str:
    """The URL printed in the code: ``{PUBLIC_BASE_URL}/q/{token}``."""
    return f"{get_settings().public_base_url.rstrip('/')}/q/{token}"


def code_for(kind: QRKind, subject_id: int, serial: int) -> QRCodeRead:
    """A freshly signed code for a subject at its current serial."""
    ring = key_ring()
    token = ring.issue(kind.subject_kind, subject_id, serial)
    return QRCodeRead(
        kind=kind,
        subject_id=subject_id,
        serial=serial,
        kid=ring.active_kid or 0,
        token=token,
        url=code_url(token),
    )


def code_of(subject: Subject) -> QRCodeRead:
    """The current code of an operator, stall or instrument."""
    return code_for(kind_of(subject), subject.id or 0, subject.qr_serial)


def kind_of(subject: Subject) -> QRKind:
    """Which kind of code a row carries."""
    if isinstance(subject, Operator):
        return QRKind.operator
    if isinstance(subject, Stall):
        return QRKind.stall
    return QRKind.instrument


def forged_error(status: int) -> AppError:
    """The error for a code we did not sign (the app shows it as a counterfeit warning)."""
    return AppError(
        status,
        "forged_qr",
        "二维码无效或系伪造，请勿据此交易，可向市场监管部门举报",
        "this QR code is not genuine; do not rely on it, and report it to the bureau",
    )


def revoked_error(status: int, reason: str) -> AppError:
    """The error for a genuine code that no longer stands for anything (reprinted, closed, retired)."""
    return AppError(
        status,
        "revoked_qr",
        "该二维码已作废（已换发新码或经营已停止），请以现场最新二维码为准",
        "this QR code has been revoked (replaced by a new one, or the business has closed)",
        {"reason": reason},
    )


@dataclass(frozen=True)
class QRTarget:
    """What a genuine, current code stands for, with the operator it belongs to."""

    subject: QRSubject
    operator: Operator
    stall: Stall | None
    instrument: Instrument | None

    @property
    def kind(self) -> QRKind:
        """The code's kind."""
        return QRKind.of(self.subject.kind)


def resolve(session: Session, token: str, *, forged_status: int, revoked_status: int) -> QRTarget:
    """Verify a token's signature, then that its subject exists, is active and still has its serial."""
    try:
        subject = key_ring().verify(token)
    except ForgedQR as exc:
        # The reason goes to the log only: telling a forger why would help them.
        log.info("forged QR token refused: %s", exc.reason)
        raise forged_error(forged_status) from None
    stall: Stall | None = None
    instrument: Instrument | None = None
    operator: Operator | None = None
    row: Subject | None = None
    # One query per scan whatever the kind: the public page is the hottest read path there is.
    if subject.kind is SubjectKind.OPERATOR:
        row = operator = session.get(Operator, subject.subject_id)
    elif subject.kind is SubjectKind.STALL:
        found = session.execute(
            select(Stall, Operator)
            .join(Operator, col(Operator.id) == col(Stall.market_id))
            .where(col(Stall.id) == subject.subject_id)
        ).first()
        if found is not None:
            row = stall = found[0]
            operator = found[1]
    else:
        found_instrument = session.execute(
            select(Instrument, Operator, Stall)
            .join(Operator, col(Operator.id) == col(Instrument.operator_id))
            .outerjoin(Stall, col(Stall.id) == col(Instrument.stall_id))
            .where(col(Instrument.id) == subject.subject_id)
        ).first()
        if found_instrument is not None:
            row = instrument = found_instrument[0]
            operator, stall = found_instrument[1], found_instrument[2]
    if row is None or operator is None:
        raise revoked_error(revoked_status, "unknown_subject")
    if row.qr_serial != subject.serial:
        raise revoked_error(revoked_status, "reprinted")
    inactive = (
        not operator.is_active
        or (stall is not None and not stall.is_active)
        or (instrument is not None and instrument.status != InstrumentStatus.in_use)
    )
    if inactive:
        raise revoked_error(revoked_status, "inactive")
    return QRTarget(subject=subject, operator=operator, stall=stall, instrument=instrument)


def _instrument_public(instrument: Instrument, today: date, locale: Locale) -> InstrumentPublic:
    spec = BY_CODE.get(instrument.type_code)
    type_name = (spec.name_zh if locale == "zh-CN" else spec.name_en) if spec else instrument.type_code
    state = instrument_service.state_of(instrument, today, get_settings().verification_due_days)
    return InstrumentPublic(
        id=instrument.id or 0,
        type_code=instrument.type_code,
        type_name=type_name,
        maker=instrument.maker,
        model=instrument.model,
        serial=instrument.serial,
        verification_state=state,
        last_verified_on=instrument.last_verified_on,
        valid_until=instrument.valid_until,
    )


def _operator_public(session: Session, operator: Operator, locale: Locale) -> OperatorPublic:
    rating, commitment = public_facts(session, operator)
    commitment_public = None
    if commitment is not None:
        text = COMMITMENT_TEXTS.get(commitment.text_version)
        commitment_public = SelfCommitmentPublic(
            text_version=commitment.text_version,
            signed_on=bureau_date(commitment.signed_at),
            text=(text.text_zh if locale == "zh-CN" else text.text_en) if text else "",
        )
    return OperatorPublic(
        id=operator.id or 0,
        uscc=operator.uscc,
        name=public_operator_name(operator.name, operator.legal_representative),
        sector=operator.sector,
        sector_name=sector_name(operator.sector, locale),
        address=operator.address,
        is_demonstration_unit=operator.is_demonstration_unit,
        integrity_class=rating.cls,
        integrity_class_name=rating.name(locale),
        integrity_class_explanation=rating.explanation(locale),
        integrity_class_as_of=rating.as_of,
        self_commitment=commitment_public,
    )


def public_profile(
    session: Session, target: QRTarget, locale: Locale, today: date | None = None
) -> QRProfilePublic:
    """The public profile behind a code: operator, stall and the instruments the code covers."""
    today = today or bureau_date()
    in_use = col(Instrument.status) == InstrumentStatus.in_use
    if target.instrument is not None:
        instruments = [target.instrument]
        total = 1
    else:
        where = (
            col(Instrument.stall_id) == target.stall.id
            if target.stall is not None
            else col(Instrument.operator_id) == target.operator.id
        )
        # One more than a page: most codes cover a few instruments, so the count query is rarely needed.
        instruments = list(
            session.execute(
                select(Instrument)
                .where(where, in_use)
                .order_by(col(Instrument.id))
                .limit(PUBLIC_INSTRUMENT_LIMIT + 1)
            ).scalars()
        )
        total = len(instruments)
        if total > PUBLIC_INSTRUMENT_LIMIT:
            instruments = instruments[:PUBLIC_INSTRUMENT_LIMIT]
            total = int(
                session.execute(
                    select(func.count()).select_from(Instrument).where(where, in_use)
                ).scalar_one()
            )
    stall = target.stall
    return QRProfilePublic(
        kind=target.kind,
        operator=_operator_public(session, target.operator, locale),
        stall=StallPublic(
            id=stall.id or 0,
            number=stall.number,
            name=public_stall_name(stall.name, stall.holder_name),
            holder_name_masked=mask_name(stall.holder_name),
        )
        if stall is not None
        else None,
        instruments=[_instrument_public(i, today, locale) for i in instruments],
        instruments_total=total,
    )


def subject_in_scope(session: Session, scope: Scope, kind: QRKind, subject_id: int) -> Subject:
    """An operator, stall or instrument whose operator lies in the scope; 404 otherwise."""
    row: Subject | None
    if kind is QRKind.operator:
        row = session.get(Operator, subject_id)
        operator_id = row.id if row else None
    elif kind is QRKind.stall:
        row = session.get(Stall, subject_id)
        operator_id = row.market_id if row else None
    else:
        row = session.get(Instrument, subject_id)
        operator_id = row.operator_id if row else None
    if row is None or operator_id is None:
        raise not_found("二维码主体", "QR code subject")
    try:
        operator_service.get_in_scope(session, scope, operator_id)
    except AppError:
        raise not_found("二维码主体", "QR code subject") from None
    return row


def reprint(session: Session, *, subject: Subject, actor: Actor) -> QRCodeRead:
    """Revoke the printed code by bumping the serial and return the new one; audited."""
    kind = kind_of(subject)
    before = snapshot(subject)
    subject.qr_serial += 1
    session.add(subject)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="qr.reprint",
        entity_type=kind.value,
        entity_id=subject.id or 0,
        before={"qr_serial": (before or {}).get("qr_serial")},
        after={"qr_serial": subject.qr_serial},
    )
    return code_of(subject)
