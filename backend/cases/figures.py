"""Which figure and legal basis a deadline has where it runs: the cited regulation's, the deployment's settings,
or the nearest bureau's own rule (``DeadlineRule``), in that order of precedence from last to first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session, col, select

from backend import audit
from backend.audit.service import Actor, snapshot
from backend.cases.deadlines import DEADLINE_SPECS, DeadlineSpec, with_figures
from backend.cases.models import DeadlineRule
from backend.config import Settings, get_settings
from backend.db import utcnow
from backend.errors import AppError, not_found
from backend.jurisdictions import service as jurisdictions
from backend.jurisdictions.models import Jurisdiction


def check_deployment_figures(settings: Settings) -> None:
    """Refuse deployment deadline figures that name no deadline (called by every entry point at start-up)."""
    for name, figures in (
        ("GONGPING_DEADLINE_WORKING_DAYS", settings.deadline_working_days),
        ("GONGPING_DEADLINE_EXTENSION_WORKING_DAYS", settings.deadline_extension_working_days),
    ):
        unknown = sorted(set(figures) - set(DEADLINE_SPECS))
        if unknown:
            raise ValueError(
                f"{name} 中的期限名称 {unknown} 无效，须为 {sorted(DEADLINE_SPECS)} 之一 / unknown deadline "
                f"names {unknown} in {name}"
            )


class BasisSource(StrEnum):
    """Where a deadline's figure comes from."""

    statute = "statute"  # the regulation the spec cites
    deployment = "deployment"  # GONGPING_DEADLINE_WORKING_DAYS / _EXTENSION_WORKING_DAYS
    bureau = "bureau"  # a bureau's DeadlineRule for its jurisdiction and below


@dataclass(frozen=True, slots=True)
class Effective:
    """A deadline spec as it applies in one jurisdiction, with where its figure comes from."""

    spec: DeadlineSpec
    source: BasisSource
    # The jurisdiction whose rule applies (``source`` bureau only).
    rule_jurisdiction: str | None = None


def spec_for_key(key: str) -> DeadlineSpec:
    """The statutory spec of ``key``; 422 ``unknown_deadline`` otherwise."""
    spec = DEADLINE_SPECS.get(key)
    if spec is None:
        raise AppError(
            422,
            "unknown_deadline",
            "没有该名称的期限",
            "no deadline has this key",
            {"key": key, "allowed": sorted(DEADLINE_SPECS)},
        )
    return spec


def _deployment(spec: DeadlineSpec) -> DeadlineSpec | None:
    settings = get_settings()
    days = settings.deadline_working_days.get(spec.key)
    extension = settings.deadline_extension_working_days.get(spec.key)
    if days is None and extension is None:
        return None
    days = spec.working_days if days is None else days
    extension = spec.extension_working_days if extension is None else extension
    return with_figures(
        spec,
        working_days=days,
        extension_working_days=extension,
        legal_basis_zh=(
            f"本系统部署配置：{days}个工作日"
            + (f"，经负责人批准可延长{extension}个工作日" if extension else "")
            + f"。原依据：{spec.legal_basis_zh}"
        ),
        legal_basis_en=(
            f"This deployment's configuration: {days} working days"
            + (f", extendable by {extension} with the bureau head's approval" if extension else "")
            + f". Original basis: {spec.legal_basis_en}"
        ),
    )


def _chain(session: Session, code: str | None) -> list[Jurisdiction]:
    """The jurisdiction and its ancestors, nearest first."""
    jurisdiction = session.get(Jurisdiction, code) if code else None
    if jurisdiction is None:
        return []
    return [jurisdiction, *reversed(jurisdictions.ancestors(session, jurisdiction))]


def effective(session: Session, spec: DeadlineSpec, jurisdiction_code: str | None) -> Effective:
    """``spec`` as it applies in ``jurisdiction_code``: the nearest bureau rule, else settings, else the law."""
    chain = _chain(session, jurisdiction_code)
    if chain:
        rules = {
            rule.jurisdiction_code: rule
            for rule in session.execute(
                select(DeadlineRule).where(
                    col(DeadlineRule.key) == spec.key,
                    col(DeadlineRule.jurisdiction_code).in_([j.code for j in chain]),
                )
            ).scalars()
        }
        for division in chain:
            rule = rules.get(division.code)
            if rule is not None:
                return Effective(_bureau(spec, rule, division), BasisSource.bureau, division.code)
    deployed = _deployment(spec)
    if deployed is not None:
        return Effective(deployed, BasisSource.deployment)
    return Effective(spec, BasisSource.statute)


def _bureau(spec: DeadlineSpec, rule: DeadlineRule, division: Jurisdiction) -> DeadlineSpec:
    extension = rule.extension_working_days
    return with_figures(
        spec,
        working_days=rule.working_days,
        extension_working_days=extension,
        legal_basis_zh=(
            f"{division.bureau_name}规定（{rule.legal_basis_zh}）：{rule.working_days}个工作日"
            + (f"，经负责人批准可延长{extension}个工作日" if extension else "")
            + f"。原依据：{spec.legal_basis_zh}"
        ),
        legal_basis_en=(
            f"Rule of {division.bureau_name} ({rule.legal_basis_en}): {rule.working_days} working days"
            + (f", extendable by {extension} with the bureau head's approval" if extension else "")
            + f". Original basis: {spec.legal_basis_en}"
        ),
    )


def effective_all(session: Session, jurisdiction_code: str | None) -> list[Effective]:
    """Every deadline as it applies in ``jurisdiction_code``, in the order of ``DEADLINE_SPECS``."""
    return [effective(session, spec, jurisdiction_code) for spec in DEADLINE_SPECS.values()]


def rules_of(session: Session, jurisdiction_code: str) -> Sequence[DeadlineRule]:
    """A bureau's own rules, by key."""
    return (
        session.execute(
            select(DeadlineRule)
            .where(col(DeadlineRule.jurisdiction_code) == jurisdiction_code)
            .order_by(col(DeadlineRule.key))
        )
        .scalars()
        .all()
    )


def set_rule(
    session: Session,
    *,
    jurisdiction: Jurisdiction,
    key: str,
    working_days: int,
    extension_working_days: int,
    legal_basis_zh: str,
    legal_basis_en: str,
    actor: Actor,
) -> DeadlineRule:
    """Set (or replace) a bureau's figure for one deadline, audited; deadlines already running keep theirs."""
    spec = spec_for_key(key)
    if extension_working_days and spec.extension_working_days == 0:
        raise AppError(
            422,
            "not_extendable",
            "该期限的法定依据不允许延长",
            "the legal basis of this deadline allows no extension",
            {"key": key},
        )
    row = session.execute(
        select(DeadlineRule).where(
            col(DeadlineRule.jurisdiction_code) == jurisdiction.code, col(DeadlineRule.key) == key
        )
    ).scalar_one_or_none()
    before = snapshot(row) if row is not None else None
    if row is None:
        row = DeadlineRule(
            jurisdiction_code=jurisdiction.code,
            key=key,
            working_days=working_days,
            legal_basis_zh=legal_basis_zh,
            legal_basis_en=legal_basis_en,
        )
    row.working_days = working_days
    row.extension_working_days = extension_working_days
    row.legal_basis_zh, row.legal_basis_en = legal_basis_zh, legal_basis_en
    row.updated_by_id = actor.id
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="deadline_rule.set",
        entity_type="deadline_rule",
        entity_id=row.id or 0,
        before=before,
        after=snapshot(row),
    )
    return row


def delete_rule(session: Session, *, jurisdiction: Jurisdiction, key: str, actor: Actor) -> None:
    """Remove a bureau's figure (the deployment's or the law's applies again), audited; 404 when none."""
    spec_for_key(key)
    row = session.execute(
        select(DeadlineRule).where(
            col(DeadlineRule.jurisdiction_code) == jurisdiction.code, col(DeadlineRule.key) == key
        )
    ).scalar_one_or_none()
    if row is None:
        raise not_found("期限规则", "deadline rule")
    before = snapshot(row)
    session.delete(row)
    session.flush()
    audit.service.record(
        session,
        actor=actor,
        action="deadline_rule.delete",
        entity_type="deadline_rule",
        entity_id=row.id or 0,
        before=before,
        after=None,
    )
