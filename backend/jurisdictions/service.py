"""Load the GB/T 2260 tree and answer ancestor/descendant questions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from backend.jurisdictions.divisions import load_divisions
from backend.jurisdictions.models import DivisionLevel, Jurisdiction


def bureau_name_for(name: str) -> str:
    """The customary name of the division's market-regulation bureau."""
    return f"{name}市场监督管理局"


def sync_divisions(session: Session) -> int:
    """Upsert the maintained code table into ``jurisdiction``; returns how many rows were added or changed."""
    divisions = load_divisions()
    by_code = {d.code: d for d in divisions}
    paths: dict[str, str] = {}

    def path_of(code: str) -> str:
        if code not in paths:
            parent = by_code[code].parent_code
            paths[code] = (path_of(parent) if parent else "/") + code + "/"
        return paths[code]

    existing = {j.code: j for j in session.execute(select(Jurisdiction)).scalars()}
    changed = 0
    # Parents first, so the self-referencing foreign key always finds its row.
    for division in sorted(divisions, key=lambda d: path_of(d.code).count("/")):
        row = existing.get(division.code)
        values: dict[str, Any] = {
            "name": division.name,
            "level": DivisionLevel(division.level),
            "parent_code": division.parent_code,
            "path": path_of(division.code),
            "bureau_name": bureau_name_for(division.name),
        }
        if row is None:
            session.add(Jurisdiction(code=division.code, **values))
            changed += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            session.add(row)
            changed += 1
        if changed and changed % 500 == 0:
            session.flush()
    session.flush()
    return changed


def get(session: Session, code: str) -> Jurisdiction | None:
    """The division with this code, if any."""
    return session.get(Jurisdiction, code)


def ancestors(session: Session, jurisdiction: Jurisdiction) -> list[Jurisdiction]:
    """The division's ancestors from the province down (excluding itself)."""
    codes = [c for c in jurisdiction.path.strip("/").split("/") if c != jurisdiction.code]
    if not codes:
        return []
    rows = {
        j.code: j
        for j in session.execute(select(Jurisdiction).where(col(Jurisdiction.code).in_(codes))).scalars()
    }
    return [rows[c] for c in codes if c in rows]


def children(
    session: Session, parent_code: str | None, level: DivisionLevel | None = None
) -> Sequence[Jurisdiction]:
    """Direct children of a division (provinces when ``parent_code`` is None)."""
    stmt = select(Jurisdiction).where(col(Jurisdiction.parent_code) == parent_code)
    if level is not None:
        stmt = stmt.where(col(Jurisdiction.level) == level)
    return session.execute(stmt.order_by(col(Jurisdiction.code))).scalars().all()


def is_within(child_path: str, scope_path: str) -> bool:
    """Whether a division (by path) is the scope itself or below it."""
    return child_path.startswith(scope_path)


def descendant_codes_stmt(scope_path: str) -> SelectOfScalar[str]:
    """A sub-select of the codes at or below a scope, for filtering scoped queries in SQL."""
    return select(col(Jurisdiction.code)).where(col(Jurisdiction.path).startswith(scope_path))
