"""Instruments, verification records and the derived verification state."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import Actor, snapshot
from backend.dates import bureau_date
from backend.errors import AppError, conflict
from backend.instruments.catalogue import BY_CODE, CATALOGUE
from backend.instruments.models import (
    Instrument,
    InstrumentStatus,
    InstrumentType,
    VerificationRecord,
    VerificationState,
)
from backend.instruments.schemas import InstrumentCreate, InstrumentUpdate, VerificationCreate
from backend.operators.models import Operator, Stall


def add_months(start: date, months: int) -> date:
    """Calendar month arithmetic, clamping to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def default_valid_until(type_code: str, verified_on: date) -> date | None:
    """The validity a passed verification gives by the catalogue: one period, or the service life."""
    spec = BY_CODE.get(type_code)
    if spec is None:
        return None
    if spec.period_months:
        return add_months(verified_on, spec.period_months) - timedelta(days=1)
    if spec.service_life_years:
        return add_months(verified_on, 12 * spec.service_life_years) - timedelta(days=1)
    return None


def verification_state(
    *,
    last_verified_on: date | None,
    last_passed: bool | None,
    valid_until: date | None,
    today: date,
    due_days: int,
) -> VerificationState:
    """Valid / due within ``due_days`` / overdue / failed / never verified."""
    if last_verified_on is None:
        return VerificationState.never_verified
    if last_passed is False:
        return VerificationState.failed
    if valid_until is None:
        return VerificationState.valid
    if valid_until < today:
        return VerificationState.overdue
    if valid_until <= today + timedelta(days=due_days):
        return VerificationState.due_soon
    return VerificationState.valid


def state_of(instrument: Instrument, today: date, due_days: int) -> VerificationState:
    """The derived verification state of an instrument."""
    return verification_state(
        last_verified_on=instrument.last_verified_on,
        last_passed=instrument.last_passed,
        valid_until=instrument.valid_until,
        today=today,
        due_days=due_days,
    )


def sync_catalogue(session: Session) -> int:
    """Upsert the catalogue rows into ``instrument_type``; returns how many changed."""
    existing = {t.code: t for t in session.execute(select(InstrumentType)).scalars()}
    changed = 0
    for spec in CATALOGUE:
        values: dict[str, Any] = {
            "name_zh": spec.name_zh,
            "name_en": spec.name_en,
            "mandatory": spec.mandatory,
            "period_months": spec.period_months,
            "service_life_years": spec.service_life_years,
            "regulation": spec.regulation,
        }
        row = existing.get(spec.code)
        if row is None:
            session.add(InstrumentType(code=spec.code, **values))
            changed += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            session.add(row)
            changed += 1
    session.flush()
    return changed


def _check_type(type_code: str) -> None:
    if type_code not in BY_CODE:
        raise AppError(
            422,
            "unknown_instrument_type",
            "计量器具类型不存在",
            "unknown instrument type",
            {"type_code": type_code, "known": sorted(BY_CODE)},
        )


def _check_stall(session: Session, operator: Operator, stall_id: int | None) -> None:
    if stall_id is None:
        return
    stall = session.get(Stall, stall_id)
    if stall is None or stall.market_id != operator.id:
        raise AppError(422, "invalid_stall", "摊位不属于该经营者", "stall does not belong to this operator")


def create(session: Session, *, operator: Operator, data: InstrumentCreate, actor: Actor) -> Instrument:
    """Register an instrument of an operator; serials are unique per operator."""
    _check_type(data.type_code)
    _check_stall(session, operator, data.stall_id)
    exists = session.execute(
        select(col(Instrument.id)).where(
            Instrument.operator_id == operator.id, col(Instrument.serial) == data.serial
        )
    ).first()
    if exists is not None:
        raise conflict(
            "duplicate_serial", "该经营者已登记此出厂编号", "serial already registered for this operator"
        )
    instrument = Instrument(operator_id=operator.id or 0, **data.model_dump())
    session.add(instrument)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="instrument.create",
        entity_type="instrument",
        entity_id=instrument.id or 0,
        after=snapshot(instrument),
    )
    return instrument


def update(
    session: Session, *, instrument: Instrument, operator: Operator, data: InstrumentUpdate, actor: Actor
) -> Instrument:
    """Edit an instrument (maker, model, stall, retirement), audited."""
    changes = data.model_dump(exclude_unset=True)
    if "stall_id" in changes:
        _check_stall(session, operator, changes["stall_id"])
    changes = {k: v for k, v in changes.items() if getattr(instrument, k) != v}
    if not changes:
        return instrument
    before = snapshot(instrument)
    for key, value in changes.items():
        setattr(instrument, key, value)
    session.add(instrument)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="instrument.update",
        entity_type="instrument",
        entity_id=instrument.id or 0,
        before=before,
        after=snapshot(instrument),
    )
    return instrument


def record_verification(
    session: Session,
    *,
    instrument: Instrument,
    data: VerificationCreate,
    actor: Actor,
    today: date | None = None,
) -> VerificationRecord:
    """Add a verification result; the newest one becomes the instrument's current state."""
    today = today or bureau_date()
    if data.verified_on > today:
        raise AppError(
            422, "verification_in_future", "检定日期不能晚于今天", "verification date is in the future"
        )
    valid_until = data.valid_until
    if data.passed and valid_until is None:
        valid_until = default_valid_until(instrument.type_code, data.verified_on)
    if not data.passed:
        valid_until = None
    if valid_until is not None and valid_until < data.verified_on:
        raise AppError(
            422, "invalid_valid_until", "有效期不能早于检定日期", "valid_until precedes the verification"
        )
    record = VerificationRecord(
        instrument_id=instrument.id or 0,
        verified_on=data.verified_on,
        passed=data.passed,
        certificate_no=data.certificate_no,
        institution=data.institution,
        valid_until=valid_until,
        recorded_by_id=actor.id,
    )
    session.add(record)
    before = snapshot(instrument)
    if instrument.last_verified_on is None or data.verified_on >= instrument.last_verified_on:
        instrument.last_verified_on = data.verified_on
        instrument.last_passed = data.passed
        instrument.valid_until = valid_until
        session.add(instrument)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="instrument.verification",
        entity_type="instrument",
        entity_id=instrument.id or 0,
        before=before,
        after={**(snapshot(instrument) or {}), "verification": snapshot(record)},
    )
    return record


def history(session: Session, instrument_id: int) -> Sequence[VerificationRecord]:
    """Every verification of an instrument, newest first."""
    return (
        session.execute(
            select(VerificationRecord)
            .where(col(VerificationRecord.instrument_id) == instrument_id)
            .order_by(col(VerificationRecord.verified_on).desc(), col(VerificationRecord.id).desc())
        )
        .scalars()
        .all()
    )


def overdue_in_use(
    session: Session, today: date, after_id: int, batch: int
) -> Sequence[tuple[int, date, int]]:
    """(id, valid_until, operator_id) of in-use instruments whose validity ended before ``today``, by id."""
    rows = session.execute(
        select(col(Instrument.id), col(Instrument.valid_until), col(Instrument.operator_id))
        .where(
            col(Instrument.status) == InstrumentStatus.in_use,
            col(Instrument.valid_until) < today,
            col(Instrument.id) > after_id,
        )
        .order_by(col(Instrument.id))
        .limit(batch)
    ).all()
    return [(int(r[0]), r[1], int(r[2])) for r in rows]
