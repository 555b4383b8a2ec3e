"""Routes match in the order their routers are included (``backend.main``): the order is chosen for speed (the
most requested first), so it must never decide which route answers. Every route's own path reaches it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from backend.main import create_app

_PARAM = re.compile(r"{[^}]+}")


def _in_order(routes: Sequence[Any]) -> Iterator[Route]:
    """The app's routes in matching order, descending into included routers (as ``backend.errors`` does)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from _in_order(original.routes)
        elif isinstance(route, Route) and route.methods:
            yield route


def _first_full_match(routes: list[Route], method: str, path: str) -> Route | None:
    return next(
        (r for r in routes if method in (r.methods or ()) and r.path_regex.match(path) is not None), None
    )


def test_every_route_is_reached_by_its_own_path() -> None:
    app: FastAPI = create_app()
    routes = list(_in_order(app.routes))
    assert len(routes) > 150
    hidden = []
    for route in routes:
        for filler in ("1", "x"):
            path = _PARAM.sub(filler, route.path)
            for method in route.methods or ():
                first = _first_full_match(routes, method, path)
                if first is not route:
                    hidden.append(f"{method} {path}: {route.path} is behind {first.path if first else None}")
    assert not hidden, "\n".join(hidden)
