"""The map's data: case points in scope (GeoJSON, coordinates rounded) and the scope's county boundaries from the
geo cache, simplified for the browser. Served by the app, so the page needs no tile server or external host."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

import shapely
from sqlalchemy import Numeric, Text, case, cast, func, literal_column
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


def points_json(session: Session, where: Sequence[Any]) -> tuple[bytes, bool]:
    """Located cases matching ``where`` as a JSON array of {i: id, x: lon, y: lat, s: state, o: overdue}, up to
    ``MAX_POINTS`` (the newest when there are more), and whether cut off.

    The database writes the array (json_agg on PostgreSQL, json_group_array on SQLite): 10,000 points reach the
    app as one text value, where fetching them as rows and building dicts cost several times the query itself.
    """
    located = (
        # Five columns: SQLAlchemy's own select (sqlmodel's typed overloads stop at four).
        sa_select(col(Case.id), col(Complaint.lon), col(Complaint.lat), col(Case.state), col(Case.overdue))
        .join(Complaint, col(Complaint.id) == col(Case.complaint_id))
        .where(*where)
        .where(col(Complaint.lon).is_not(None), col(Complaint.lat).is_not(None))
    )
    # Unsorted first (the map's order is its own); only a scope with more points than drawn sorts, newest kept.
    text, count = _aggregate(session, located.limit(MAX_POINTS + 1).subquery())
    if count <= MAX_POINTS:
        return str(text).encode(), False
    text, _count = _aggregate(session, located.order_by(col(Case.id).desc()).limit(MAX_POINTS).subquery())
    return str(text).encode(), True


def _aggregate(session: Session, rows: Any) -> tuple[str, int]:
    """The rows' JSON array, written by the database, and how many there were."""
    if session.get_bind().dialect.name == "postgresql":
        item = func.json_build_object(
            literal_column("'i'"),
            rows.c.id,
            literal_column("'x'"),
            func.round(cast(rows.c.lon, Numeric), COORD_DECIMALS),
            literal_column("'y'"),
            func.round(cast(rows.c.lat, Numeric), COORD_DECIMALS),
            literal_column("'s'"),
            rows.c.state,
            literal_column("'o'"),
            rows.c.overdue,
        )
        array: Any = cast(func.coalesce(func.json_agg(item), literal_column("'[]'::json")), Text)
    else:
        item = func.json_object(
            "i",
            rows.c.id,
            "x",
            func.round(rows.c.lon, COORD_DECIMALS),
            "y",
            func.round(rows.c.lat, COORD_DECIMALS),
            "s",
            rows.c.state,
            # SQLite keeps booleans as 0/1: JSON's true/false, as on PostgreSQL.
            "o",
            case((rows.c.overdue, func.json("true")), else_=func.json("false")),
        )
        array = func.json_group_array(item)
    text, count = session.execute(sa_select(array, func.count()).select_from(rows)).one()
    return str(text), int(count)


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


@lru_cache(maxsize=64)
def boundaries_gzip(codes: tuple[str, ...]) -> bytes:
    """The outlines gzipped once, at the highest level (they never change): no compression per request."""
    return gzip.compress(boundaries_geojson(codes), compresslevel=9, mtime=0)
