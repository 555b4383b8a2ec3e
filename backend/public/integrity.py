"""The integrity class as the public may see it (Art. 10, 18, 19).

The class comes from the rating engine's stored ``OperatorRating`` (``backend.records``); an operator without
a row has the class its management assessment gives with no records (the engine's invariant, see
``backend.records.rating``). A 失信 class is disclosed only once at least one record behind its Art. 13 reasons
has passed the publication review (``IntegrityRecord.public_eligible``, set by the four-eyes gate): Art. 19
asks that the untrustworthy be named only after verification, and Art. 18 that nothing unreviewed be
published. Until then the page says "not yet rated", which reveals nothing either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, and_
from sqlmodel import Session, col, select

from backend.i18n import Locale
from backend.operators.models import Operator, SelfCommitment
from backend.public.explain import deciding_rules, explain
from backend.public.labels import CLASS_BASIS, CLASS_NAMES, NOT_RATED, pick
from backend.records.engine import rate_from_aggregates
from backend.records.models import IntegrityRecord, OperatorRating
from backend.records.rating import MANAGEMENT_SOUND, zero_inputs
from backend.records.rules import ART13_RULES, IntegrityClass, Rule


@dataclass(frozen=True, slots=True)
class PublicClass:
    """A class fit for the public, or None (not rated, or 失信 not yet reviewed for publication).

    ``decided_by`` are the rules that gave the class and may be published: for 失信, only the Art. 13
    conditions whose records passed the publication review.
    """

    cls: IntegrityClass | None
    as_of: date | None
    decided_by: tuple[Rule, ...] = ()

    def name(self, locale: Locale) -> str:
        """The class's name, or "not yet rated"."""
        return pick(CLASS_NAMES[self.cls] if self.cls else NOT_RATED[0], locale)

    def explanation(self, locale: Locale) -> str:
        """Why the operator has its class and what that means, from the rules that decided it."""
        return pick(explain(self.cls, self.decided_by) if self.cls else NOT_RATED[1], locale)

    @staticmethod
    def basis(locale: Locale) -> str:
        """The article the classes come from."""
        return pick(CLASS_BASIS, locale)


_ART13 = frozenset(rule.value for rule in ART13_RULES)


def _art13_record_ids(reasons: Iterable[dict[str, Any]]) -> set[int]:
    ids: set[int] = set()
    for reason in reasons:
        if reason.get("rule") in _ART13:
            ids.update(int(i) for i in reason.get("record_ids", ()) if isinstance(i, int | str))
    return ids


def _reviewed(session: Session, rows: Iterable[OperatorRating]) -> set[int]:
    """Of the records behind each 失信 class, those the publication review cleared (usually none asked)."""
    wanted = set().union(
        *(_art13_record_ids(r.reasons) for r in rows if r.cls is IntegrityClass.UNTRUSTWORTHY)
    )
    if not wanted:
        return set()
    return set(
        session.execute(
            select(col(IntegrityRecord.id)).where(
                col(IntegrityRecord.id).in_(sorted(wanted)), col(IntegrityRecord.public_eligible).is_(True)
            )
        ).scalars()
    )


def _published_art13(reasons: Iterable[dict[str, Any]], reviewed: set[int]) -> tuple[Rule, ...]:
    """The Art. 13 conditions of a 失信 class that rest on at least one reviewed record."""
    found: list[str] = []
    for reason in reasons:
        if reason.get("rule") in _ART13 and _art13_record_ids([reason]) & reviewed:
            found.append(str(reason["rule"]))
    return deciding_rules(found)


def _decide(operator: Operator, row: OperatorRating | None, reviewed: set[int]) -> PublicClass:
    if row is None:
        # What the engine gives with no records, with the rule that gives it (Art. 10 or the unassessed rule).
        cls, rules = rate_from_aggregates(zero_inputs(MANAGEMENT_SOUND[operator.management_assessment]))
        return PublicClass(cls, None, deciding_rules(rules))
    if row.cls is IntegrityClass.UNTRUSTWORTHY:
        published = _published_art13(row.reasons, reviewed)
        return PublicClass(row.cls, row.as_of, published) if published else PublicClass(None, None)
    return PublicClass(row.cls, row.as_of, deciding_rules(str(r.get("rule")) for r in row.reasons))


def public_classes(session: Session, operators: Sequence[Operator]) -> dict[int, PublicClass]:
    """The public class of each operator: one indexed query for any number of operators (two with a 失信)."""
    ids = [o.id for o in operators if o.id is not None]
    if not ids:
        return {}
    rows = {
        r.operator_id: r
        for r in session.execute(
            select(OperatorRating).where(col(OperatorRating.operator_id).in_(ids))
        ).scalars()
    }
    reviewed = _reviewed(session, rows.values())
    return {o.id: _decide(o, rows.get(o.id), reviewed) for o in operators if o.id is not None}


#: ``session.info`` key: facts read together with their operator, for ``public_facts`` in the same request.
_PREFETCHED = "gongping_public_facts"


def _with_facts(*entities: Any, operator_id: int) -> Select[Any]:
    stmt: Select[Any] = (
        select(*entities)
        .select_from(Operator)
        .outerjoin(OperatorRating, col(OperatorRating.operator_id) == col(Operator.id))
        .outerjoin(
            SelfCommitment,
            and_(
                col(SelfCommitment.operator_id) == col(Operator.id),
                col(SelfCommitment.withdrawn_at).is_(None),
            ),
        )
        .where(col(Operator.id) == operator_id)
        # The newest commitment in force, as operators.service.current_commitment picks it.
        .order_by(col(SelfCommitment.signed_at).desc())
        .limit(1)
    )
    return stmt


def operator_with_facts(session: Session, operator_id: int) -> Operator | None:
    """An operator read together with its rating row and commitment (one query instead of two): the
    following ``public_facts`` for it in the same session uses them instead of asking again.
    """
    found = session.execute(
        _with_facts(Operator, OperatorRating, SelfCommitment, operator_id=operator_id)
    ).first()
    if found is None:
        return None
    operator: Operator = found[0]
    session.info.setdefault(_PREFETCHED, {})[operator_id] = (found[1], found[2])
    return operator


def public_facts(session: Session, operator: Operator) -> tuple[PublicClass, SelfCommitment | None]:
    """One operator's public class and its self-commitment in force, in one query (the QR page's path)."""
    prefetched = session.info.get(_PREFETCHED, {}).pop(operator.id, None)
    if prefetched is not None:
        row, commitment = prefetched
    else:
        found = session.execute(
            _with_facts(OperatorRating, SelfCommitment, operator_id=operator.id or 0)
        ).first()
        row, commitment = (found[0], found[1]) if found is not None else (None, None)
    reviewed = _reviewed(session, [row]) if row is not None else set()
    return _decide(operator, row, reviewed), commitment
