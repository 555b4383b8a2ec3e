"""Exception types raised by the geo library.

Input errors subclass ``ValueError`` so the API can map them to 422 without knowing this module; each carries
a short machine ``code`` and a Simplified Chinese ``message_zh`` next to the English ``str()``.
"""

from __future__ import annotations

from dataclasses import dataclass


class GeoInputError(ValueError):
    """A caller supplied an unusable value (coordinate, coordinate system, distance)."""

    code: str = "invalid_geo_input"

    def __init__(self, message: str, message_zh: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message_zh = message_zh
        if code is not None:
            self.code = code


class InvalidCoordinateError(GeoInputError):
    """Longitude/latitude is not a finite number inside its valid range."""

    code = "invalid_coordinate"


class UnknownCoordSystemError(GeoInputError):
    """The coordinate system name is not one of wgs84, gcj02, bd09."""

    code = "unknown_coord_system"


class InvalidDistanceError(GeoInputError):
    """A distance (accuracy radius, threshold) is negative, not finite or implausibly large."""

    code = "invalid_distance"


class InvalidCodeError(GeoInputError):
    """A value is not a well-formed GB/T 2260 six-digit administrative division code."""

    code = "invalid_division_code"


@dataclass(frozen=True, slots=True)
class BoundaryProblem:
    """One defect found while validating boundary input."""

    kind: str
    detail: str
    feature: int | None = None
    code: str | None = None

    def __str__(self) -> str:
        where = []
        if self.feature is not None:
            where.append(f"feature {self.feature}")
        if self.code is not None:
            where.append(f"code {self.code}")
        prefix = f"[{', '.join(where)}] " if where else ""
        return f"{prefix}{self.kind}: {self.detail}"


class BoundaryError(Exception):
    """Boundary input failed validation; ``problems`` lists every defect found, not just the first."""

    def __init__(self, problems: list[BoundaryProblem], *, source: str = "boundary input") -> None:
        self.problems = list(problems)
        self.source = source
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = f"\n  … and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{shown}{more}")


class CacheError(Exception):
    """A boundary cache file is missing, unreadable, corrupt or from an incompatible format version."""
