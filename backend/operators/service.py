"""Operators, stalls and self-commitments: create and edit inside the caller's scope, every change audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import Actor, snapshot
from backend.auth.models import Account, Role
from backend.auth.scope import Scope
from backend.common.schemas import LonLat
from backend.db import utcnow
from backend.errors import AppError, conflict, forbidden, not_found
from backend.jurisdictions.models import DivisionLevel, Jurisdiction
from backend.operators.commitments import COMMITMENT_TEXTS
from backend.operators.models import Operator, SelfCommitment, Stall
from backend.operators.schemas import (
    OperatorCreate,
    OperatorRead,
    OperatorUpdate,
    SelfCommitmentCreate,
    StallCreate,
    StallUpdate,
)
from backend.records.service import operator_facts_changed, record_commitment_signed


def to_read(operator: Operator) -> OperatorRead:
    """The staff view of an operator."""
    location = (
        LonLat(lon=operator.lon, lat=operator.lat)
        if operator.lon is not None and operator.lat is not None
        else None
    )
    data = operator.model_dump(exclude={"lon", "lat"})
    return OperatorRead(**data, location=location)


def county_in_scope(session: Session, scope: Scope, code: str) -> Jurisdiction:
    """The county an operator is registered in; 422 if unknown or not a county, 403 if outside the scope."""
    jurisdiction = session.get(Jurisdiction, code)
    if jurisdiction is None or jurisdiction.level != DivisionLevel.county:
        raise AppError(
            422,
            "invalid_jurisdiction_code",
            "辖区须为有效的县级行政区划代码",
            "jurisdiction_code must be a valid county-level division code",
            {"jurisdiction_code": code},
        )
    if not scope.covers(jurisdiction.path):
        raise forbidden("该辖区不在您的管辖范围内", "jurisdiction outside your scope")
    return jurisdiction


def create(session: Session, *, data: OperatorCreate, scope: Scope) -> Operator:
    """Register an operator in a county of the caller's scope; the code must be new."""
    county_in_scope(session, scope, data.jurisdiction_code)
    if session.execute(select(col(Operator.id)).where(col(Operator.uscc) == data.uscc)).first() is not None:
        raise conflict(
            "duplicate_uscc", "该统一社会信用代码已登记", "an operator with this code already exists"
        )
    operator = Operator(
        **data.model_dump(exclude={"location"}),
        lon=data.location.lon if data.location else None,
        lat=data.location.lat if data.location else None,
    )
    session.add(operator)
    session.flush()
    audit.service.record(
        session,
        actor=scope.user,
        action="operator.create",
        entity_type="operator",
        entity_id=operator.id or 0,
        after=snapshot(operator),
    )
    return operator


def get_in_scope(session: Session, scope: Scope, operator_id: int) -> Operator:
    """The operator if it lies in the scope; 404 otherwise, so ids outside reveal nothing."""
    row = session.execute(
        select(Operator, col(Jurisdiction.path))
        .join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        .where(col(Operator.id) == operator_id)
    ).first()
    if row is None or not scope.covers(row[1]):
        raise not_found("经营者", "operator")
    operator: Operator = row[0]
    return operator


def update(session: Session, *, operator: Operator, data: OperatorUpdate, scope: Scope) -> Operator:
    """Apply a partial edit, audited with before and after."""
    changes: dict[str, Any] = data.model_dump(exclude_unset=True, exclude={"location"})
    if "location" in data.model_fields_set:
        changes["lon"] = data.location.lon if data.location else None
        changes["lat"] = data.location.lat if data.location else None
    if changes.get("jurisdiction_code"):
        county_in_scope(session, scope, changes["jurisdiction_code"])
    changes = {k: v for k, v in changes.items() if getattr(operator, k) != v}
    if not changes:
        return operator
    before = snapshot(operator)
    for key, value in changes.items():
        setattr(operator, key, value)
    operator.updated_at = utcnow()
    session.add(operator)
    session.flush()
    audit.service.record(
        session,
        actor=scope.user,
        action="operator.update",
        entity_type="operator",
        entity_id=operator.id or 0,
        before=before,
        after=snapshot(operator),
    )
    if changes.keys() & {"management_assessment", "is_demonstration_unit"}:
        # Rating inputs (Art. 8, 10): the demonstration unit's good record, and a re-rating.
        operator_facts_changed(session, operator, before=before or {}, actor=scope.user)
    return operator


def list_in_scope(
    session: Session,
    scope: Scope,
    *,
    q: str | None,
    sector: str | None,
    jurisdiction_code: str | None,
    limit: int,
    offset: int,
    stall: str | None = None,
) -> tuple[Sequence[Operator], int]:
    """Operators in the scope, filtered, newest first; ``stall`` finds the markets with a stall of that number
    or whose holder's name contains it (how a bureau finds a market from a complaint about "stall A02")."""
    stmt = select(Operator).join(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
    stmt = stmt.where(col(Jurisdiction.path).startswith(scope.path))
    if jurisdiction_code:
        target = session.get(Jurisdiction, jurisdiction_code)
        if target is None:
            return [], 0
        stmt = stmt.where(col(Jurisdiction.path).startswith(target.path))
    if sector:
        stmt = stmt.where(col(Operator.sector) == sector)
    if q:
        term = q.strip()
        stmt = stmt.where(
            or_(
                col(Operator.name).contains(term, autoescape=True),
                col(Operator.uscc) == term.upper(),
            )
        )
    if stall:
        term = stall.strip()
        stmt = stmt.where(
            col(Operator.id).in_(
                select(col(Stall.market_id)).where(
                    or_(
                        col(Stall.number) == term.upper(),
                        col(Stall.number) == term,
                        col(Stall.holder_name).contains(term, autoescape=True),
                    )
                )
            )
        )
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(stmt.order_by(col(Operator.id).desc()).limit(limit).offset(offset)).scalars().all()
    return rows, int(total)


def add_stall(session: Session, *, market: Operator, data: StallCreate, actor: Actor) -> Stall:
    """Add a stall to a market; stall numbers are unique within the market."""
    exists = session.execute(
        select(col(Stall.id)).where(col(Stall.market_id) == market.id, col(Stall.number) == data.number)
    ).first()
    if exists is not None:
        raise conflict(
            "duplicate_stall_number", "该市场已有此摊位号", "stall number already used in this market"
        )
    stall = Stall(market_id=market.id or 0, **data.model_dump())
    session.add(stall)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="stall.create",
        entity_type="stall",
        entity_id=stall.id or 0,
        after=snapshot(stall),
    )
    return stall


def update_stall(session: Session, *, stall: Stall, data: StallUpdate, actor: Actor) -> Stall:
    """Edit a stall, audited."""
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if getattr(stall, k) != v}
    if not changes:
        return stall
    before = snapshot(stall)
    for key, value in changes.items():
        setattr(stall, key, value)
    session.add(stall)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="stall.update",
        entity_type="stall",
        entity_id=stall.id or 0,
        before=before,
        after=snapshot(stall),
    )
    return stall


def stall_in_scope(session: Session, scope: Scope, stall_id: int) -> tuple[Stall, Operator]:
    """A stall and its market if the market lies in the scope; 404 otherwise."""
    stall = session.get(Stall, stall_id)
    if stall is None:
        raise not_found("摊位", "stall")
    try:
        market = get_in_scope(session, scope, stall.market_id)
    except AppError:
        raise not_found("摊位", "stall") from None
    return stall, market


def sign_commitment(
    session: Session, *, operator: Operator, data: SelfCommitmentCreate, actor: Actor
) -> SelfCommitment:
    """Record a signed self-commitment (a good record of Art. 8); an earlier one is superseded."""
    if data.text_version not in COMMITMENT_TEXTS:
        raise AppError(
            422,
            "unknown_commitment_version",
            "承诺书版本不存在",
            "unknown commitment text version",
            {"versions": sorted(COMMITMENT_TEXTS)},
        )
    current = current_commitment(session, operator.id or 0)
    if current is not None:
        current.withdrawn_at = utcnow()
        session.add(current)
    commitment = SelfCommitment(
        operator_id=operator.id or 0, text_version=data.text_version, signer=data.signer, account_id=actor.id
    )
    session.add(commitment)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="self_commitment.sign",
        entity_type="operator",
        entity_id=operator.id or 0,
        before=snapshot(current),
        after=snapshot(commitment),
    )
    # Signing is the good record of Art. 8, written in the same transaction so it exists exactly when the
    # commitment does.
    record_commitment_signed(session, operator=operator, commitment=commitment, actor=actor)
    return commitment


def current_commitment(session: Session, operator_id: int) -> SelfCommitment | None:
    """The operator's commitment in force, if any."""
    return session.execute(
        select(SelfCommitment)
        .where(col(SelfCommitment.operator_id) == operator_id, col(SelfCommitment.withdrawn_at).is_(None))
        .order_by(col(SelfCommitment.signed_at).desc())
        .limit(1)
    ).scalar_one_or_none()


def active_user_ids(session: Session, operator_id: int) -> tuple[int, ...]:
    """The operator's active user accounts: who the app's inbox and push reach."""
    return tuple(
        session.execute(
            select(col(Account.id))
            .where(
                col(Account.operator_id) == operator_id,
                col(Account.role) == Role.operator,
                col(Account.is_active),
            )
            .order_by(col(Account.id))
        ).scalars()
    )
