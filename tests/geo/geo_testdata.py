"""Synthetic county layouts for geo tests, written as GeoJSON (imported by conftest and the test modules)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Feature = dict[str, Any]

# A 2x2 block of 0.1° squares near 110°E 30°N, codes ascending west→east, south→north:
#   420103 | 420104      y 30.1 .. 30.2
#   420101 | 420102      y 30.0 .. 30.1
#  x 110.0..110.1 | 110.1..110.2
X0, Y0, STEP = 110.0, 30.0, 0.1
BLOCK = {
    "420101": (X0, Y0),
    "420102": (X0 + STEP, Y0),
    "420103": (X0, Y0 + STEP),
    "420104": (X0 + STEP, Y0 + STEP),
}


def rectangle(x0: float, y0: float, x1: float, y1: float) -> list[list[list[float]]]:
    """Polygon coordinates of an axis-aligned rectangle (GeoJSON, closed ring)."""
    return [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]


def feature(code: object, coordinates: Any, *, kind: str = "Polygon", name: str | None = None) -> Feature:
    """A GeoJSON Feature with the code under "code" (and a name unless None)."""
    properties: dict[str, Any] = {"code": code}
    if name is not None:
        properties["name"] = name
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": kind, "coordinates": coordinates},
    }


def block_features() -> list[Feature]:
    """The 2x2 block as GeoJSON features, named after their codes."""
    return [
        feature(code, rectangle(x, y, x + STEP, y + STEP), name=f"县{code[-2:]}")
        for code, (x, y) in BLOCK.items()
    ]


def write_geojson(path: Path, features: Sequence[Feature], **extra: Any) -> Path:
    """Write a FeatureCollection and return its path."""
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features), **extra}), "utf-8")
    return path
