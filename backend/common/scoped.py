"""Load one row by id inside a staff member's scope, or 404: the one implementation every staff route uses.

A row is in scope through its own jurisdiction (cases, inspection plans) or through its operator's (records,
correction requests, interviews). Outside the scope it is a 404 exactly like a missing id, so ids never reveal
that a row exists (DEVELOPING.md, Scope). A row with no jurisdiction (a case in the national triage queue) is
visible to admins only.

``staff_loader`` turns this into a FastAPI dependency bound to a path parameter, so a router writes
``case: StaffCase`` and the step it takes is the only thing left in the route.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from sqlmodel import Session, SQLModel, col, select

from backend.auth.dependencies import StaffScope
from backend.auth.scope import Scope
from backend.db import SessionDep
from backend.errors import not_found
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator

M = TypeVar("M", bound=SQLModel)
#: How a row reaches its jurisdiction: its own ``jurisdiction_code``, or its ``operator_id``'s.
Via = Literal["jurisdiction", "operator"]


def load_scoped(
    session: Session, scope: Scope, model: type[M], row_id: int, what: tuple[str, str], *, via: Via
) -> M:
    """The row of ``model`` with id ``row_id`` if it lies in ``scope``; 404 naming ``what`` (zh, en) otherwise."""
    table: Any = model
    if via == "operator":
        stmt = (
            select(model, col(Jurisdiction.path))
            .join(Operator, col(Operator.id) == table.operator_id)
            .outerjoin(Jurisdiction, col(Jurisdiction.code) == col(Operator.jurisdiction_code))
        )
    else:
        stmt = select(model, col(Jurisdiction.path)).outerjoin(
            Jurisdiction, col(Jurisdiction.code) == table.jurisdiction_code
        )
    row = session.execute(stmt.where(table.id == row_id)).first()
    if row is None:
        raise not_found(*what)
    path: str | None = row[1]
    # Admins ("/") see every row, unplaced ones included; anyone else only rows placed inside their scope.
    if scope.path != "/" and (path is None or not scope.covers(path)):
        raise not_found(*what)
    found: M = row[0]
    return found


def staff_loader(model: type[M], what: tuple[str, str], *, id_param: str, via: Via) -> Callable[..., M]:
    """A dependency that loads ``model`` by the path parameter ``id_param`` in the caller's staff scope."""

    def load(session: Session, scope: Scope, **path: int) -> M:
        return load_scoped(session, scope, model, path[id_param], what, via=via)

    # FastAPI reads the signature: the session and staff scope dependencies, and the id from the path.
    load.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("session", inspect.Parameter.KEYWORD_ONLY, annotation=SessionDep),
            inspect.Parameter("scope", inspect.Parameter.KEYWORD_ONLY, annotation=StaffScope),
            inspect.Parameter(id_param, inspect.Parameter.KEYWORD_ONLY, annotation=int),
        ],
        return_annotation=model,
    )
    load.__name__ = f"staff_{model.__name__.lower()}_{id_param}"
    return load
