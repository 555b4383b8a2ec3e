"""The map's data: case points in scope (GeoJSON, coordinates rounded) and the scope's county boundaries from the
geo cache, simplified for the browser. Served by the app, so the page needs no tile server or external host."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

import shapely
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from backend.auth.scope import Scope
from backend.cases.models import Case
from backend.complaints.models import Complaint
from backend.jurisdictions.locator import boundaries
from backend.jurisdictions.models import DivisionLevel, Jurisdiction

#: At most this many points are drawn (clustered); the page says when there are more.
MAX_POINTS: Final = 20_000
#: Decimal places kept: about 100 m, enough to place a case on the county map; the case page has the exact spot.
COORD_DECIMALS: Final = 3
#: Douglas-Peucker tolerance in degrees (about 200 m): boundaries stay recognisable at a fraction of the size.
SIMPLIFY_DEGREES: Final = 0.002
#: Scopes with more counties than this (a province's admins, the national admin) get no boundary layer.
MAX_COUNTIES: Final = 300


def points(session: Session, where: Sequence[Any]) -> tuple[list[dict[str, Any]], bool]:
    """Located cases matching ``where`` as compact rows [id, lon, lat, state, overdue], and whether cut off."""
    rows = session.execute(
        # Five columns: SQLAlchemy's own select (sqlmodel's typed overloads stop at four).
        sa_select(col(Case.id), col(Complaint.lon), col(Complaint.lat), col(Case.state), col(Case.overdue))
        .join(Complaint, col(Complaint.id) == col(Case.complaint_id))
        .where(*where)
        .where(col(Complaint.lon).is_not(None), col(Complaint.lat).is_not(None))
        .order_by(col(Case.id).desc())
        .limit(MAX_POINTS + 1)
    ).all()
    cut = len(rows) > MAX_POINTS
    return [
        {
            "i": int(case_id),
            "x": round(float(lon), COORD_DECIMALS),
            "y": round(float(lat), COORD_DECIMALS),
            "s": str(state.value if hasattr(state, "value") else state),
            "o": bool(overdue),
        }
        for case_id, lon, lat, state, overdue in rows[:MAX_POINTS]
    ], cut


def county_codes(session: Session, scope: Scope) -> list[str]:
    """The counties in the scope, or none when the scope has too many to draw."""
    codes = list(
        session.execute(
            select(col(Jurisdiction.code))
            .where(col(Jurisdiction.level) == DivisionLevel.county)
            .where(col(Jurisdiction.path).startswith(scope.path, autoescape=True))
            .order_by(col(Jurisdiction.code))
            .limit(MAX_COUNTIES + 1)
        ).scalars()
    )
    return [] if len(codes) > MAX_COUNTIES else codes


@lru_cache(maxsize=64)
def boundaries_geojson(codes: tuple[str, ...]) -> bytes:
    """A FeatureCollection of the given counties' simplified outlines (cached: the boundaries never change)."""
    loaded = boundaries()
    wanted = set(codes)
    features = []
    for position, code in enumerate(loaded.index.codes):
        current = loaded.normalisation.normalise(code)
        if current not in wanted:
            continue
        shape = shapely.simplify(loaded.index.geometries[position], SIMPLIFY_DEGREES, preserve_topology=True)
        shape = shapely.set_precision(shape, 10**-4)
        features.append(
            {
                "type": "Feature",
                "properties": {"code": current, "name": loaded.index.name_of(position)},
                "geometry": json.loads(shapely.to_geojson(shape)),
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":")).encode()
