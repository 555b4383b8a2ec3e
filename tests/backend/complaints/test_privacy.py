"""Privacy by construction (Art. 18): no public or operator-facing response model can carry personal data.

Walks every response model of every route under /api/v1/public, every route whose response model is marked
for operators, and every schema class marked ``Audience.PUBLIC`` or ``Audience.OPERATOR`` anywhere in the
app, recursively through nested models, and fails on any field whose name says it holds a complainant's
identity, contact, precise location, original media, EXIF or device data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, get_args

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from backend.common.audience import RESTRICTED_AUDIENCES, Audience, Coarsened
from backend.main import create_app

#: Field names that are personal data wherever they appear.
FORBIDDEN_NAMES = frozenset(
    {
        "lon",
        "lat",
        "lng",
        "long",
        "longitude",
        "latitude",
        "location",
        "coordinates",
        "geotag",
        "ip",
        "username",
    }
)
#: Location names a public schema may carry only when the field coarsens itself (``Coarsened`` marker).
COARSENABLE_NAMES = frozenset({"lon", "lat", "lng", "long", "longitude", "latitude"})
#: Name parts that give away identity, contact, exact location, originals, EXIF or the device.
FORBIDDEN_PARTS = (
    "complainant",
    "filer",
    "account",
    "contact",
    "phone",
    "mobile",
    "email",
    "exif",
    "evidence",
    "original",
    "device",
    "gps",
    "legal_representative",
    "holder_name",  # only the masked form may be shown
    "id_card",
    "address_detail",
    "sha256",
    "password",
    "secret",
)
_MASKED = re.compile(r".*_masked$")


def _is_forbidden(name: str) -> bool:
    if _MASKED.fullmatch(name):
        return False
    lowered = name.lower()
    return lowered in FORBIDDEN_NAMES or any(part in lowered for part in FORBIDDEN_PARTS)


def _coarsened(name: str, field: FieldInfo) -> bool:
    """A coordinate whose own validator rounds it to a coarse grid (Open311's public lat/long)."""
    return name in COARSENABLE_NAMES and any(isinstance(m, Coarsened) for m in field.metadata)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models_in(arg)


def leaks(model: type[BaseModel]) -> list[str]:
    """Every forbidden field reachable from ``model``, as dotted paths (nested models, lists, unions, dicts)."""
    found: list[str] = []
    seen: set[type[BaseModel]] = set()

    def walk(current: type[BaseModel], path: str) -> None:
        if current in seen:
            return
        seen.add(current)
        audience = getattr(current, "__audience__", None)
        if audience in (Audience.FILER, Audience.STAFF):
            found.append(f"{path or current.__name__} (a {audience} schema nested in a restricted one)")
        for name, field in current.model_fields.items():
            here = f"{path}.{name}" if path else f"{current.__name__}.{name}"
            for label in {name, field.alias or name, field.serialization_alias or name}:
                if _is_forbidden(label) and not _coarsened(label, field):
                    found.append(here)
            for nested in _models_in(field.annotation):
                walk(nested, here)

    walk(model, "")
    return found


def _routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)  # FastAPI >= 0.120 keeps included routers nested
        if inner is not None:
            yield from _routes(inner.routes)


def _response_models(route: APIRoute) -> list[type[BaseModel]]:
    candidates = [route.response_model, *(r.get("model") for r in route.responses.values())]
    return [m for c in candidates if c is not None for m in _models_in(c)]


def _all_subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app()


def _restricted_route_models(app: FastAPI) -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {}
    for route in _routes(app.routes):
        for model in _response_models(route):
            if model.__module__.startswith("backend.errors"):
                continue
            public_path = route.path.startswith("/api/v1/public")
            if public_path or getattr(model, "__audience__", None) in RESTRICTED_AUDIENCES:
                models[f"{sorted(route.methods)[0]} {route.path} → {model.__name__}"] = model
    return models


def test_public_routes_exist_and_declare_public_schemas(app: FastAPI) -> None:
    public = [r for r in _routes(app.routes) if r.path.startswith("/api/v1/public")]
    assert public, "no public route found: the walk would prove nothing"
    for route in public:
        assert route.response_model is not None, route.path
        assert getattr(route.response_model, "__audience__", None) == Audience.PUBLIC, route.path


def test_no_public_or_operator_route_returns_personal_data(app: FastAPI) -> None:
    models = _restricted_route_models(app)
    assert any("/api/v1/public/qr/" in k for k in models)
    problems = {where: found for where, model in models.items() if (found := leaks(model))}
    assert problems == {}


def test_no_schema_marked_public_or_operator_has_personal_data(app: FastAPI) -> None:
    marked = [
        m for m in set(_all_subclasses(BaseModel)) if getattr(m, "__audience__", None) in RESTRICTED_AUDIENCES
    ]
    names = {m.__name__ for m in marked}
    assert {"ComplaintOperatorView", "QRProfilePublic", "OperatorPublic", "SimilarCounts"} <= names
    assert {"OperatorSearchPublic", "OperatorSummaryPublic", "Open311Request", "Open311Service"} <= names
    problems = {m.__qualname__: found for m in marked if (found := leaks(m))}
    assert problems == {}


def test_public_paths_in_the_openapi_document_carry_no_personal_data(app: FastAPI) -> None:
    document = app.openapi()
    components = document["components"]["schemas"]
    bad: list[str] = []

    def walk(schema: Any, where: str, seen: set[str]) -> None:
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen and name not in ("ErrorResponse", "ErrorDetail"):
                    walk(components[name], name, seen | {name})
                return
            for prop in schema.get("properties", {}):
                if _is_forbidden(prop):
                    bad.append(f"{where}.{prop}")
            for value in schema.values():
                walk(value, where, seen)
        elif isinstance(schema, list):
            for value in schema:
                walk(value, where, seen)

    for path, operations in document["paths"].items():
        if path.startswith("/api/v1/public"):
            for operation in operations.values():
                walk(operation.get("responses", {}), path, set())
    assert bad == []


# ---- the walker itself catches leaks ----------------------------------------------------------------------


class _Contact(BaseModel):
    phone: str


class _Filer(BaseModel):
    __audience__ = Audience.FILER
    name: str


class _Leaky(BaseModel):
    name: str
    holder_name_masked: str
    people: list[_Contact]
    where: dict[str, _Contact] | None
    lat: float
    who: _Filer | None = None


def test_the_walker_finds_nested_and_direct_leaks() -> None:
    found = leaks(_Leaky)
    assert "_Leaky.lat" in found and "_Leaky.people.phone" in found
    assert any(f.startswith("_Leaky.who") and "filer" in f for f in found)
    assert not any("holder_name_masked" in f for f in found)
    assert "_Leaky.where.phone" in found or "_Leaky.people.phone" in found  # a model is walked once


class _Coarse(BaseModel):
    lat: Annotated[float, Coarsened(grid_m=100)]
    long: Annotated[float, Coarsened(grid_m=100)]
    location: Annotated[str, Coarsened(grid_m=100)]


class _Precise(BaseModel):
    lat: float
    long: float


def test_only_marked_coordinates_pass_the_walker() -> None:
    assert leaks(_Precise) == ["_Precise.lat", "_Precise.long"]
    assert leaks(_Coarse) == ["_Coarse.location"]  # the marker exempts coordinates, nothing else


def test_public_routes_outside_api_v1_are_walked_too(app: FastAPI) -> None:
    models = _restricted_route_models(app)
    assert any(k.startswith("GET /open311/v2/requests") for k in models)
    assert any(k.startswith("GET /api/v1/public/operators") for k in models)


def test_coarsened_public_coordinates_really_are_coarse() -> None:
    from datetime import UTC, datetime

    from backend.open311.schemas import Open311Request

    request = Open311Request.model_validate(
        {
            "service_request_id": "1",
            "status": "open",
            "status_notes": None,
            "service_name": None,
            "service_code": "other",
            "description": None,
            "agency_responsible": None,
            "service_notice": None,
            "requested_datetime": datetime.now(UTC),
            "updated_datetime": None,
            "expected_datetime": None,
            "address": None,
            "address_id": None,
            "zipcode": None,
            "lat": 30.2795678,
            "long": 120.1052345,
            "media_url": None,
        }
    )
    assert (request.lat, request.long) == (30.28, 120.105)
    for name in ("lat", "long"):
        assert _coarsened(name, Open311Request.model_fields[name])


@pytest.mark.parametrize(
    "name",
    [
        "contact_phone",
        "account_id",
        "exif",
        "original_key",
        "lon",
        "long",
        "device_id",
        "legal_representative",
    ],
)
def test_forbidden_names(name: str) -> None:
    assert _is_forbidden(name)


@pytest.mark.parametrize(
    "name", ["name", "sector", "valid_until", "holder_name_masked", "category", "photo_count"]
)
def test_allowed_names(name: str) -> None:
    assert not _is_forbidden(name)
